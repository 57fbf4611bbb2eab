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
        .route("/session/token", axum::routing::post(proof))
        .route("/session/token/verify", axum::routing::post(verify_proof))
}

/// `POST /session/token`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProofRequest {
    /// The application the proof is for (its `aud`).
    pub client_id: String,
}

/// A sign-in proof.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProofResponse {
    /// A JWT (`typ` `handoff-proof+jwt`) signed with the provider's keys: `iss`, `sub`,
    /// `aud` (the client), `amr`, `auth_time`, `sid`, `iat`, `exp` (≤ 2 min), `jti`.
    pub token: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
}

/// A signed proof of who is signed in, for the application's backend (PRODUCT §6.3).
#[utoipa::path(post, path = "/api/v1/session/token", tag = "session", request_body = ProofRequest,
    responses((status = 200, body = ProofResponse), (status = 400, description = "unknown-client", body = ErrorBody),
              (status = 401, description = "not-signed-in", body = ErrorBody)))]
pub async fn proof(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    crate::extract::ApiJson(request): crate::extract::ApiJson<ProofRequest>,
) -> Result<Json<ProofResponse>, ApiError> {
    let (token, exp) = state.oidc.session_proof(&user, &request.client_id).await?;
    Ok(Json(ProofResponse { token, expires_at: rfc3339(exp.saturating_mul(1000)) }))
}

/// `POST /session/token/verify`: the application's backend, with its client credentials
/// (HTTP Basic, or `clientId` and `clientSecret` in the body).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyProofRequest {
    /// The proof from `POST /session/token`.
    pub token: String,
    /// The client, when not in `Authorization: Basic`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its secret, when not in `Authorization: Basic`.
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// A proof that checked out.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct VerifiedProof {
    /// Always true (a refused proof is a 400 `invalid-proof`).
    pub valid: bool,
    /// The proof's claims.
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Checks a sign-in proof for the authenticated client and uses up its `jti`: a second
/// check of the same proof is refused (`replayed`).
#[utoipa::path(post, path = "/api/v1/session/token/verify", tag = "session", request_body = VerifyProofRequest,
    responses((status = 200, body = VerifiedProof),
              (status = 400, description = "invalid-proof: the message names why (bad-signature, not-a-proof, wrong-issuer, wrong-audience, expired, replayed)", body = ErrorBody),
              (status = 401, description = "invalid-client", body = ErrorBody)))]
pub async fn verify_proof(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    crate::extract::ApiJson(request): crate::extract::ApiJson<VerifyProofRequest>,
) -> Result<Json<VerifiedProof>, ApiError> {
    use handoff_core::oidc::tokens::ClientCredentials;
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(ClientCredentials::parse_basic);
    let creds = ClientCredentials { basic, client_id: request.client_id, client_secret: request.client_secret };
    let client = match state.oidc.authenticate(&creds).await {
        Ok(client) if client.confidential() => client,
        Ok(_) | Err(handoff_core::oidc::OAuthError { internal: None, .. }) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid-client",
                "client authentication failed (a confidential client's id and secret are needed)",
            ));
        }
        Err(handoff_core::oidc::OAuthError { internal: Some(e), .. }) => return Err(e.into()),
    };
    match state.oidc.verify_proof(&client, &request.token).await? {
        Ok(claims) => Ok(Json(VerifiedProof { valid: true, claims })),
        Err(reason) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid-proof", format!("the proof is refused: {reason}")))
        }
    }
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
