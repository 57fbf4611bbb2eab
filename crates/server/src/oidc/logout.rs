//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): with a valid
//! `id_token_hint` the Handoff session of this browser ends at once; without one the person
//! confirms first, so that a link on another site cannot sign anyone out. The browser goes
//! back only to a `post_logout_redirect_uri` registered for the hinted client.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use handoff_core::oidc::authorize::answer_url;

use super::{internal, message, page, pairs, see_other};
use crate::extract::{cleared_session_cookie, session_token};
use crate::state::AppState;

/// `GET /oauth2/logout`.
pub async fn by_query(State(state): State<AppState>, jar: CookieJar, RawQuery(query): RawQuery) -> Response {
    logout(&state, jar, &pairs(query.unwrap_or_default().as_bytes()), false).await
}

/// `POST /oauth2/logout` (the confirmation form, or an application's form post).
pub async fn by_form(State(state): State<AppState>, jar: CookieJar, headers: HeaderMap, body: Bytes) -> Response {
    let form = pairs(&body);
    let confirmed = form.iter().any(|(k, v)| k == "confirm" && v == "yes")
        && crate::dashboard::auth::same_origin(&headers, &state.http.origins);
    logout(&state, jar, &form, confirmed).await
}

async fn logout(state: &AppState, jar: CookieJar, params: &[(String, String)], confirmed: bool) -> Response {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let mut client = None;
    if let Some(hint) = get("id_token_hint") {
        match state.oidc.logout_hint(hint).await {
            Ok(Some(found)) => client = Some(found),
            Ok(None) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    "This sign-out link is not valid",
                    "The id_token_hint was not issued by this server.",
                    None,
                );
            }
            Err(e) => return internal(&e),
        }
    }
    if let Some(id) = get("client_id") {
        match &client {
            Some(hinted) if hinted.id != id => {
                return message(
                    StatusCode::BAD_REQUEST,
                    "This sign-out link is not valid",
                    "client_id and id_token_hint name different applications.",
                    None,
                );
            }
            Some(_) => {}
            None => match state.oidc.clients().get(id).await {
                Ok(found) => client = found,
                Err(e) => return internal(&e),
            },
        }
    }
    let target = match get("post_logout_redirect_uri") {
        None => None,
        Some(uri) if client.as_ref().is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri)) => {
            let mut answer = Vec::new();
            if let Some(s) = get("state") {
                answer.push(("state", s));
            }
            Some(answer_url(uri, &answer))
        }
        Some(_) => {
            return message(
                StatusCode::BAD_REQUEST,
                "This sign-out link is not valid",
                "post_logout_redirect_uri is not registered for the application named by id_token_hint or client_id.",
                None,
            );
        }
    };
    let token = session_token(&jar, state);
    if token.is_some() && get("id_token_hint").is_none() && !confirmed {
        let fields: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| ["client_id", "post_logout_redirect_uri", "state"].contains(&k.as_str()))
            .cloned()
            .collect();
        let client_name = client.as_ref().map(|c| c.name.clone());
        return page(
            StatusCode::OK,
            "provider/logout.html",
            "Sign out",
            "",
            minijinja::context! { client => client_name, fields },
        );
    }
    if let Some(token) = token
        && let Err(e) = state.sessions.revoke(&token).await
    {
        return internal(&e);
    }
    tracing::info!(client = client.as_ref().map(|c| c.id.as_str()), "signed out through the provider");
    let jar = jar.add(cleared_session_cookie(state));
    match target {
        Some(url) => (jar, see_other(&url)).into_response(),
        None => (jar, message(StatusCode::OK, "You are signed out", "This browser is no longer signed in.", None))
            .into_response(),
    }
}
