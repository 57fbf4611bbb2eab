//! `/login…`: sign-in ceremonies. `start` gathers the client's signals, asks the decision
//! engine which method to offer and returns the request options that fit it; `finish`
//! verifies the assertion and starts a session; `failure` lets the SDK report a ceremony
//! that failed in the browser, so repeated failures stop the passkey offer there.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use handoff_core::device::{DeviceHeaders, DeviceInfo, FormFactor};
use handoff_core::domain::{CeremonyId, CredentialId, Identifier, JourneyId};
use handoff_core::intelligence::ClientSignals;
use handoff_core::passkeys::{LoginFailure, LoginFinish, LoginStart, NewSession, SessionMethod};

use super::dto::{
    ClientEnvironment, FinishRequest, LoginFailureRequest, LoginFinishResponse, LoginStartRequest, LoginStartResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientContext, MaybeUser, replace_session, session_token};
use crate::limits::{identifier_key, ip_key};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login/start", post(start))
        .route("/login/finish", post(finish))
        .route("/login/failure", post(failure))
}

/// The client's signals: request headers first (they cannot be skewed by a script), the
/// SDK's report where headers are silent. Anything missing stays unknown.
fn client_signals(ctx: &ClientContext, env: Option<&ClientEnvironment>) -> ClientSignals {
    let mut device = ctx.device.clone();
    let capability = |name: &str| env?.capabilities.as_ref()?.get(name)?.as_bool();
    if let Some(ua) = env.and_then(|e| e.user_agent_data.as_ref()) {
        if device.os == "unknown" || ctx.user_agent.is_none() {
            let hinted = DeviceInfo::from_headers(&DeviceHeaders {
                user_agent: None,
                ch_platform: ua.platform.as_deref(),
                ch_mobile: None,
            });
            if hinted.os != "unknown" {
                device.os = hinted.os;
            }
        }
        let tablet = ua.form_factors.as_ref().is_some_and(|f| f.iter().any(|x| x.eq_ignore_ascii_case("tablet")));
        if tablet {
            device.form_factor = FormFactor::Tablet;
        } else if device.form_factor == FormFactor::Unknown {
            device.form_factor = match ua.mobile {
                Some(true) => FormFactor::Phone,
                Some(false) => FormFactor::Desktop,
                None => FormFactor::Unknown,
            };
        }
    }
    ClientSignals {
        device,
        device_id: ctx.device_id.clone(),
        hybrid_transport: capability("hybridTransport"),
        platform_authenticator: env
            .and_then(|e| e.platform_authenticator)
            .or_else(|| capability("userVerifyingPlatformAuthenticator"))
            .or_else(|| capability("passkeyPlatformAuthenticator")),
        conditional_mediation: env.and_then(|e| e.conditional_mediation).or_else(|| capability("conditionalGet")),
        last_credential_id: env.and_then(|e| e.last_credential_id.as_deref()).and_then(|c| CredentialId::parse(c).ok()),
        requested: None,
    }
}

/// Start a sign-in: identifier-first when `identifier` is given, usernameless otherwise.
/// The decision says which method to offer; `ceremonyId`/`publicKey` are present when it
/// runs a passkey ceremony (`local`, `try-once`, `cross-device`, or usernameless).
#[utoipa::path(post, path = "/api/v1/login/start", tag = "login",
    request_body = LoginStartRequest,
    responses((status = 200, description = "the decision, and the ceremony when it runs one; sets the handoff_device cookie", body = LoginStartResponse),
              (status = 400, description = "invalid identifier, journey id or body", body = ErrorBody),
              (status = 429, description = "rate-limited: too many sign-in starts from this client or for this identifier (Retry-After)", body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    mut ctx: ClientContext,
    jar: CookieJar,
    ApiJson(req): ApiJson<LoginStartRequest>,
) -> Result<(CookieJar, Json<LoginStartResponse>), ApiError> {
    let ip = ctx.ip.as_deref().and_then(|ip| ip.parse().ok());
    // Both limits in one count (one statement on PostgreSQL); a malformed identifier still
    // counts against the client.
    let identifier = req.identifier.as_deref().map(Identifier::parse).transpose();
    let mut limits = vec![(&state.limits.login_ip, ip_key(ip))];
    if let Ok(Some(identifier)) = &identifier {
        limits.push((&state.limits.login_identifier, identifier_key(identifier.as_str())));
    }
    state.rate.check_all(&limits).await?;
    let identifier = identifier?;
    let journey_id = req.journey_id.as_deref().map(JourneyId::parse).transpose()?;
    let (jar, _) = ctx.ensure_device_id(jar, &state)?;
    let mut client = client_signals(&ctx, req.client.as_ref());
    client.requested = req.prefer;
    let started = state.passkeys.start_login(LoginStart { identifier, journey_id, client }).await?;
    state.metrics.decision(started.decision.verdict.as_str());
    let (ceremony_id, public_key) = match started.ceremony {
        Some((id, options)) => (Some(id.to_string()), Some(options)),
        None => (None, None),
    };
    let body = LoginStartResponse {
        journey_id: started.journey_id.to_string(),
        decision: started.decision,
        ceremony_id,
        public_key,
    };
    Ok((jar, Json(body)))
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
    MaybeUser(current): MaybeUser,
    client: ClientContext,
    jar: CookieJar,
    ApiJson(req): ApiJson<FinishRequest>,
) -> Result<(CookieJar, Json<LoginFinishResponse>), ApiError> {
    let input = LoginFinish {
        ceremony_id: CeremonyId::parse(&req.ceremony_id)?,
        credential: req.credential,
        device: client.device,
        device_id: client.device_id,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
    };
    let done = match state.passkeys.finish_login(input).await {
        Ok(done) => done,
        Err(e) => {
            if !e.is_internal() {
                state.metrics.sign_in("passkey", false);
            }
            return Err(e.into());
        }
    };
    // Signing in again as the user already signed in here (a phone confirming it is
    // still them before approving a QR code) refreshes that session instead of starting
    // a second one.
    // That is also the step-up of PRODUCT §8: a passkey ceremony in this browser.
    let jar = match (session_token(&jar, &state), current) {
        (Some(token), Some(user)) if user.user_id == done.account.id && state.sessions.reverify(&token).await? => jar,
        _ => {
            let method = if done.flow == "cross-device" { SessionMethod::CrossDevice } else { SessionMethod::Passkey };
            let new = NewSession {
                user_id: done.account.id,
                user_agent: client.user_agent,
                ip: client.ip,
                method,
                passkey_grant: false,
            };
            replace_session(&state, jar, new).await?
        }
    };
    state.passkeys.note_session(done.journey_id, done.flow).await;
    state.metrics.sign_in(done.flow, true);
    let body = LoginFinishResponse {
        user_id: done.account.id.to_string(),
        identifier: done.account.identifier.to_string(),
        journey_id: done.journey_id.to_string(),
        flow: done.flow.to_owned(),
        append_offer: done.append_offer,
    };
    Ok((jar, Json(body)))
}

/// Report a passkey ceremony that failed in the browser (`NotAllowedError`, `AbortError`,
/// …). The ceremony is used up; the failure counts towards falling back in this browser.
#[utoipa::path(post, path = "/api/v1/login/failure", tag = "login",
    request_body = LoginFailureRequest,
    responses((status = 204, description = "recorded"),
              (status = 400, description = "invalid ceremony id or error name", body = ErrorBody),
              (status = 404, description = "ceremony-not-found: unknown or already used", body = ErrorBody),
              (status = 410, description = "ceremony-expired", body = ErrorBody)))]
pub async fn failure(
    State(state): State<AppState>,
    client: ClientContext,
    ApiJson(req): ApiJson<LoginFailureRequest>,
) -> Result<StatusCode, ApiError> {
    let name = req.error_name.trim();
    let valid = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(handoff_core::DomainError::invalid(
            "invalid-error-name",
            "errorName must be a DOMException name such as NotAllowedError (letters and digits, at most 64)",
        )
        .into());
    }
    if req.elapsed_ms.is_some_and(|ms| ms > handoff_core::observe::MAX_ELAPSED_MS.unsigned_abs()) {
        return Err(handoff_core::DomainError::invalid(
            "invalid-elapsed-ms",
            "elapsedMs must be a number of milliseconds from 0 to 86400000 (a day)",
        )
        .into());
    }
    let input = LoginFailure {
        ceremony_id: CeremonyId::parse(&req.ceremony_id)?,
        error_name: name.to_owned(),
        elapsed_ms: req.elapsed_ms,
        device: client.device,
    };
    state.passkeys.report_failure(input).await?;
    state.metrics.sign_in("passkey", false);
    Ok(StatusCode::NO_CONTENT)
}
