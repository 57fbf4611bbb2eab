//! `/session`: who is signed in, and signing out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use handoff_core::clock::rfc3339;
use handoff_core::passkeys::SessionMethod;

use super::dto::{PasskeyView, SessionResponse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{SignedIn, cleared_session_cookie, session_token};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/session", get(current).delete(sign_out))
        .route("/sessions", get(list).delete(end_all))
        .route("/sessions/{session_id}", axum::routing::delete(end))
}

/// One signed-in device.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Opaque id (for ending it).
    pub id: String,
    /// True for the session making this request.
    pub current: bool,
    /// When it started (RFC 3339).
    pub created_at: String,
    /// How it was made: `passkey`, `cross-device` or `qr-approval`.
    pub method: SessionMethod,
    /// When the user last confirmed with a passkey on that device (RFC 3339); absent when
    /// they never did (a session made by QR approval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// The device, from its user agent.
    pub device: handoff_core::device::DeviceInfo,
    /// Its IP address when it started.
    pub ip: Option<String>,
}

/// `GET /sessions`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<SessionView>,
}

/// The signed-in user's devices (live sessions), newest first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "session",
    responses((status = 200, body = SessionList), (status = 401, description = "not-signed-in", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, SignedIn(user): SignedIn) -> Result<Json<SessionList>, ApiError> {
    let sessions = state.sessions.of_user(user.user_id).await?;
    let views = sessions
        .into_iter()
        .map(|s| SessionView {
            id: s.token_digest.chars().take(32).collect(),
            current: s.token_digest == user.session_digest,
            created_at: rfc3339(s.created_at),
            method: s.method,
            verified_at: (s.verified_at > 0).then(|| rfc3339(s.verified_at)),
            device: s
                .user_agent
                .as_deref()
                .map(handoff_core::device::DeviceInfo::from_user_agent)
                .unwrap_or_else(handoff_core::device::DeviceInfo::unknown),
            ip: s.ip,
        })
        .collect();
    Ok(Json(SessionList { sessions: views }))
}

/// Sign out one of the signed-in user's devices.
#[utoipa::path(delete, path = "/api/v1/sessions/{session_id}", tag = "session",
    params(("session_id" = String, Path, description = "id from GET /sessions")),
    responses((status = 204, description = "ended"), (status = 400, description = "invalid-session-id", body = ErrorBody),
              (status = 401, description = "not-signed-in, or reauth-required: ending another device's session needs a passkey check on this device within the step-up window", body = ErrorBody),
              (status = 404, description = "session-not-found", body = ErrorBody)))]
pub async fn end(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    axum::extract::Path(session_id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.sessions.end(&user, &session_id).await? {
        tracing::info!(user = %user.user_id, "signed out a device");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "session-not-found", "no such signed-in device for this account"))
    }
}

/// `DELETE /sessions`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EndedSessions {
    /// How many sessions ended (this one included).
    pub ended: u64,
}

/// Sign out everywhere: every session of the account ends, this one included (the cookie
/// is cleared). Needs a passkey check on this device within the step-up window.
#[utoipa::path(delete, path = "/api/v1/sessions", tag = "session",
    responses((status = 200, description = "ended; the session cookie is cleared", body = EndedSessions),
              (status = 401, description = "not-signed-in, or reauth-required", body = ErrorBody)))]
pub async fn end_all(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    jar: CookieJar,
) -> Result<(CookieJar, Json<EndedSessions>), ApiError> {
    let ended = state.sessions.end_all(&user).await?;
    tracing::info!(user = %user.user_id, ended, "signed out everywhere");
    Ok((jar.add(cleared_session_cookie(&state)), Json(EndedSessions { ended })))
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
    let now = state.clock.now_ms();
    Ok(Json(SessionResponse {
        user_id: account.id.to_string(),
        identifier: account.identifier.to_string(),
        display_name: account.display_name.as_str().to_owned(),
        account_created_at: rfc3339(account.created_at),
        signed_in_at: rfc3339(user.created_at),
        method: user.method,
        recovery: user.method.is_recovery(),
        step_up_until: user.step_up_until.filter(|&until| until > now).map(rfc3339),
        may_add_passkey: user.stepped_up(now) || user.may_add_passkey(now),
        passkeys: passkeys.into_iter().map(|p| PasskeyView::of(p, catalog)).collect(),
    }))
}

/// Sign out: the server-side session is deleted and the cookie cleared. Idempotent.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", responses((status = 204, description = "signed out")))]
pub async fn sign_out(State(state): State<AppState>, jar: CookieJar) -> Result<(CookieJar, StatusCode), ApiError> {
    if let Some(token) = session_token(&jar, &state) {
        state.sessions.revoke(&token).await?;
    }
    Ok((jar.add(cleared_session_cookie(&state)), StatusCode::NO_CONTENT))
}
