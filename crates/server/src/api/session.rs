//! `/session`: who is signed in, and signing out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use handoff_core::clock::rfc3339;

use super::dto::{PasskeyView, SessionResponse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{SignedIn, cleared_session_cookie, session_token};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/session", get(current).delete(sign_out))
}

/// The signed-in user with their passkeys.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = SessionResponse), (status = 401, description = "not-signed-in", body = ErrorBody)))]
pub async fn current(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
) -> Result<Json<SessionResponse>, ApiError> {
    let account = state.passkeys.account(user.user_id).await?;
    let passkeys = state.passkeys.passkeys(user.user_id).await?;
    let catalog = state.passkeys.catalog();
    Ok(Json(SessionResponse {
        user_id: account.id.to_string(),
        identifier: account.identifier.to_string(),
        display_name: account.display_name.as_str().to_owned(),
        account_created_at: rfc3339(account.created_at),
        signed_in_at: rfc3339(user.created_at),
        passkeys: passkeys.into_iter().map(|p| PasskeyView::of(p, catalog)).collect(),
    }))
}

/// Sign out: the server-side session is deleted and the cookie cleared. Idempotent.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", responses((status = 204, description = "signed out")))]
pub async fn sign_out(State(state): State<AppState>, jar: CookieJar) -> Result<(CookieJar, StatusCode), ApiError> {
    if let Some(token) = session_token(&jar) {
        state.sessions.revoke(&token).await?;
    }
    Ok((jar.add(cleared_session_cookie(&state)), StatusCode::NO_CONTENT))
}
