//! `/login…`: sign-in ceremonies. `start` returns the decision and the request options;
//! `finish` verifies the assertion and starts a session.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use handoff_core::domain::{CeremonyId, Identifier, JourneyId};
use handoff_core::passkeys::{LoginFinish, LoginStart, NewSession};

use super::dto::{FinishRequest, LoginFinishResponse, LoginStartRequest, LoginStartResponse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientContext, session_cookie};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/login/start", post(start)).route("/login/finish", post(finish))
}

/// Start a sign-in: identifier-first when `identifier` is given, usernameless otherwise.
#[utoipa::path(post, path = "/api/v1/login/start", tag = "login",
    request_body = LoginStartRequest,
    responses((status = 200, body = LoginStartResponse),
              (status = 400, description = "invalid identifier, journey id or body", body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginStartRequest>,
) -> Result<Json<LoginStartResponse>, ApiError> {
    let identifier = req.identifier.as_deref().map(Identifier::parse).transpose()?;
    let journey_id = req.journey_id.as_deref().map(JourneyId::parse).transpose()?;
    let started = state.passkeys.start_login(LoginStart { identifier, journey_id }).await?;
    Ok(Json(LoginStartResponse {
        journey_id: started.journey_id.to_string(),
        decision: started.decision,
        ceremony_id: Some(started.ceremony_id.to_string()),
        public_key: Some(started.public_key),
    }))
}

/// Finish a sign-in; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/login/finish", tag = "login",
    request_body = FinishRequest,
    responses((status = 200, description = "signed in; sets the session cookie", body = LoginFinishResponse),
              (status = 400, description = "the assertion did not verify (invalid-signature, origin-mismatch, rp-id-mismatch, challenge-mismatch, user-not-verified, malformed-credential, credential-not-allowed)", body = ErrorBody),
              (status = 401, description = "unknown-credential: no account holds this passkey", body = ErrorBody),
              (status = 403, description = "counter-regression: possibly cloned authenticator (recorded)", body = ErrorBody),
              (status = 404, description = "ceremony-not-found: unknown or already used", body = ErrorBody),
              (status = 410, description = "ceremony-expired", body = ErrorBody)))]
pub async fn finish(
    State(state): State<AppState>,
    client: ClientContext,
    jar: CookieJar,
    ApiJson(req): ApiJson<FinishRequest>,
) -> Result<(CookieJar, Json<LoginFinishResponse>), ApiError> {
    let input = LoginFinish {
        ceremony_id: CeremonyId::parse(&req.ceremony_id)?,
        credential: req.credential,
        device: client.device,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
    };
    let account = state.passkeys.finish_login(input).await?;
    let token =
        state.sessions.start(NewSession { user_id: account.id, user_agent: client.user_agent, ip: client.ip }).await?;
    let body = LoginFinishResponse { user_id: account.id.to_string(), identifier: account.identifier.to_string() };
    Ok((jar.add(session_cookie(&token, &state)), Json(body)))
}
