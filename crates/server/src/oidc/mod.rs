//! The OpenID Connect provider's HTTP side (PRODUCT §6.1): discovery, JWKS, the
//! authorization endpoint with its consent and error pages, the token, userinfo,
//! revocation and introspection endpoints, and RP-initiated logout. Each handler parses the
//! request into the parameters `handoff_core::oidc` takes and shapes the answer as the
//! RFCs say (JSON errors on the token side, pages or redirects on the browser side).

mod authorize;
mod device;
mod logout;
mod token;

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, PRAGMA, REFERRER_POLICY};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Value;
use serde_json::json;

use crate::state::AppState;

/// Routes of the provider.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/oauth2/jwks", get(jwks))
        .route("/oauth2/authorize", get(authorize::by_query).post(authorize::by_form))
        .route("/oauth2/authorize/continue", get(authorize::resume))
        .route("/oauth2/authorize/consent", post(authorize::consent))
        .route("/oauth2/device_authorization", post(device::authorize))
        .route("/device", get(device::page))
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/revoke", post(token::revoke))
        .route("/oauth2/introspect", post(token::introspect))
        .route("/oauth2/userinfo", get(token::userinfo).post(token::userinfo))
        .route("/oauth2/logout", get(logout::by_query).post(logout::by_form))
}

/// OIDC Discovery 1.0 and RFC 8414 metadata.
async fn discovery(State(state): State<AppState>) -> Response {
    let issuer = &state.oidc.settings().issuer;
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "end_session_endpoint": format!("{issuer}/oauth2/logout"),
        "device_authorization_endpoint": format!("{issuer}/oauth2/device_authorization"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", handoff_core::oidc::device::DEVICE_GRANT_TYPE],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "scopes_supported": handoff_core::oidc::authorize::SCOPES,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr",
                             "preferred_username", "name", "email", "email_verified"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    });
    ([(CACHE_CONTROL, "public, max-age=300")], axum::Json(body)).into_response()
}

/// The published signing keys.
async fn jwks(State(state): State<AppState>) -> Response {
    match state.oidc.keys().jwks().await {
        Ok(keys) => ([(CACHE_CONTROL, "public, max-age=60")], axum::Json(keys)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "reading the signing keys failed");
            no_store_json(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "temporarily_unavailable"}))
        }
    }
}

/// Form or query pairs in order, repeats kept (so that they can be refused).
pub(crate) fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).map(|(k, v)| (k.into_owned(), v.into_owned())).take(100).collect()
}

/// JSON that no cache keeps (RFC 6749 §5.1).
pub(crate) fn no_store_json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")], axum::Json(body)).into_response()
}

/// 303 to `location` (a client's redirect URI, or a page of ours).
pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            (StatusCode::SEE_OTHER, [(LOCATION, value), (CACHE_CONTROL, HeaderValue::from_static("no-store"))])
                .into_response()
        }
        Err(_) => message(
            StatusCode::BAD_REQUEST,
            "This address cannot be opened",
            "The answer's address is not valid.",
            None,
        ),
    }
}

/// Pages send forms only to us (and, for consent, on to the application: `form_action`).
fn page_csp(form_action: &str) -> String {
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self' {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Renders a provider page.
pub(crate) fn page(status: StatusCode, template: &str, title: &str, form_action: &str, ctx: Value) -> Response {
    let ctx = minijinja::context! { title => title, site => "Handoff", ..ctx };
    match crate::templates::render(template, ctx) {
        Ok(html) => {
            let csp = HeaderValue::from_str(&page_csp(form_action))
                .unwrap_or(HeaderValue::from_static("default-src 'none'; form-action 'self'"));
            (
                status,
                [
                    (CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
                    (CONTENT_SECURITY_POLICY, csp),
                    (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                    // The server-wide `no-referrer` makes browsers post forms with
                    // `Origin: null`, which the consent and sign-out forms' origin check refuses.
                    (REFERRER_POLICY, HeaderValue::from_static("same-origin")),
                ],
                html,
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering a provider page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                "The page could not be drawn; the error has been logged.",
            )
                .into_response()
        }
    }
}

/// A page that says what happened; `back` links on.
pub(crate) fn message(status: StatusCode, heading: &str, text: &str, back: Option<&str>) -> Response {
    page(status, "provider/message.html", heading, "", minijinja::context! { heading, message => text, back })
}

/// The page for a failure of ours (logged once here).
pub(crate) fn internal(e: &handoff_core::DomainError) -> Response {
    tracing::error!(error = %e, "the provider could not answer");
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The sign-in could not go on because of a problem on this server. It has been logged; try again in a moment.",
        None,
    )
}
