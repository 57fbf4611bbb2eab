//! The token side: `/oauth2/token`, `/oauth2/revoke`, `/oauth2/introspect` (form bodies,
//! client authentication, RFC 6749 §5.2 JSON errors) and `/oauth2/userinfo` (bearer
//! token, RFC 6750 errors).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use handoff_core::oidc::tokens::ClientCredentials;
use handoff_core::oidc::{OAuthError, TokenRequest};
use serde_json::json;

use super::{no_store_json, pairs};
use crate::state::AppState;

/// The longest parameter value the token side reads.
const MAX_PARAM: usize = 4096;

/// A form body's parameters, each at most once.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        let form_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        });
        if !form_type {
            return Err(OAuthError::new("invalid_request", "the body must be application/x-www-form-urlencoded"));
        }
        let params = pairs(body);
        for (i, (name, value)) in params.iter().enumerate() {
            if value.len() > MAX_PARAM {
                return Err(OAuthError::new(
                    "invalid_request",
                    format!("parameter {name} is longer than {MAX_PARAM} characters"),
                ));
            }
            if params[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(OAuthError::new("invalid_request", format!("parameter {name} is given more than once")));
            }
        }
        Ok(Self(params))
    }

    pub(super) fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
    }

    pub(super) fn credentials(&self, headers: &HeaderMap) -> Result<ClientCredentials, OAuthError> {
        let basic = match headers.get(AUTHORIZATION) {
            None => None,
            Some(value) => {
                let parsed = value.to_str().ok().and_then(ClientCredentials::parse_basic);
                Some(parsed.ok_or_else(|| {
                    OAuthError::new("invalid_client", "the Authorization header is not HTTP Basic client credentials")
                })?)
            }
        };
        Ok(ClientCredentials { basic, client_id: self.get("client_id"), client_secret: self.get("client_secret") })
    }
}

/// An RFC 6749 §5.2 error response.
pub(super) fn error_response(headers: &HeaderMap, e: OAuthError) -> Response {
    if let Some(internal) = &e.internal {
        tracing::error!(error = %internal, "the token endpoint could not answer");
        return no_store_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "server_error", "error_description": e.description}),
        );
    }
    let body = json!({"error": e.error, "error_description": e.description});
    if e.error == "invalid_client" {
        let mut response = no_store_json(StatusCode::UNAUTHORIZED, body);
        if headers.contains_key(AUTHORIZATION) {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Basic realm=\"handoff\""));
        }
        return response;
    }
    no_store_json(StatusCode::BAD_REQUEST, body)
}

/// `POST /oauth2/token`.
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let form = Form::parse(&headers, &body)?;
        let creds = form.credentials(&headers)?;
        let request = TokenRequest {
            grant_type: form.get("grant_type"),
            code: form.get("code"),
            redirect_uri: form.get("redirect_uri"),
            code_verifier: form.get("code_verifier"),
            refresh_token: form.get("refresh_token"),
            scope: form.get("scope"),
            device_code: form.get("device_code"),
        };
        state.oidc.token(&creds, &request).await
    }
    .await;
    match result {
        Ok(tokens) => no_store_json(StatusCode::OK, serde_json::to_value(tokens).unwrap_or_default()),
        Err(e) => error_response(&headers, e),
    }
}

/// `POST /oauth2/revoke` (RFC 7009): 200 whether or not the token was live.
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let form = Form::parse(&headers, &body)?;
        let creds = form.credentials(&headers)?;
        state.oidc.revoke(&creds, form.get("token").as_deref(), form.get("token_type_hint").as_deref()).await
    }
    .await;
    match result {
        Ok(()) => no_store_json(StatusCode::OK, json!({})),
        Err(e) => error_response(&headers, e),
    }
}

/// `POST /oauth2/introspect` (RFC 7662), confidential clients only.
pub async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let form = Form::parse(&headers, &body)?;
        let creds = form.credentials(&headers)?;
        state.oidc.introspect(&creds, form.get("token").as_deref(), form.get("token_type_hint").as_deref()).await
    }
    .await;
    match result {
        Ok(answer) => no_store_json(StatusCode::OK, answer),
        Err(e) => error_response(&headers, e),
    }
}

fn bearer_error(status: StatusCode, error: &str, description: &str) -> Response {
    let challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    let mut response = no_store_json(status, json!({"error": error, "error_description": description}));
    if let Ok(value) = axum::http::HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// `GET` or `POST /oauth2/userinfo`: the bearer token in `Authorization` (or, for POST, in
/// a form body's `access_token`, RFC 6750 §2.2).
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let from_header = headers.get(AUTHORIZATION).map(|v| {
        v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))).map(str::trim)
    });
    let token = match from_header {
        Some(Some(token)) => token.to_owned(),
        Some(None) => {
            return bearer_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the Authorization header is not a bearer token",
            );
        }
        None => match Form::parse(&headers, &body).ok().and_then(|f| f.get("access_token")) {
            Some(token) => token,
            None => return bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", "no access token was sent"),
        },
    };
    match state.oidc.userinfo(&token).await {
        Ok(Some(claims)) => no_store_json(StatusCode::OK, serde_json::Value::Object(claims)),
        Ok(None) => {
            bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", "the access token is unknown, expired or revoked")
        }
        Err(e) => {
            tracing::error!(error = %e, "userinfo could not answer");
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": "server_error"}))).into_response()
        }
    }
}
