//! `/passkeys…`: registration ceremonies and the signed-in user's passkeys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use handoff_core::domain::{CeremonyId, CredentialId, Identifier};
use handoff_core::passkeys::{NewSession, RegistrationFinish, RegistrationStart, SessionMethod};

use super::dto::{
    CeremonyResponse, FinishRequest, PasskeyList, PasskeyView, ProviderView, RegistrationFinishResponse,
    RegistrationStartRequest,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientContext, MaybeUser, SignedIn, replace_session};
use crate::limits::{identifier_key, ip_key};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/passkeys/registration/start", post(start))
        .route("/passkeys/registration/finish", post(finish))
        .route("/passkeys", get(list))
        .route("/passkeys/{credential_id}", delete(remove))
        .route("/passkeys/append/skip", post(skip_append))
}

/// Start registering a passkey.
#[utoipa::path(post, path = "/api/v1/passkeys/registration/start", tag = "passkeys",
    request_body = RegistrationStartRequest,
    responses((status = 200, body = CeremonyResponse),
              (status = 400, description = "invalid identifier or body", body = ErrorBody),
              (status = 401, description = "reauth-required: adding a passkey to the signed-in account needs a passkey check on this device within the step-up window", body = ErrorBody),
              (status = 409, description = "identifier-taken: the identifier belongs to another account", body = ErrorBody),
              (status = 429, description = "rate-limited: too many sign-up starts from this client or for this identifier (Retry-After)", body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    client: ClientContext,
    ApiJson(req): ApiJson<RegistrationStartRequest>,
) -> Result<Json<CeremonyResponse>, ApiError> {
    let ip = client.ip.as_deref().and_then(|ip| ip.parse().ok());
    let identifier = Identifier::parse(&req.identifier);
    let mut limits = vec![(&state.limits.registration_ip, ip_key(ip))];
    if let Ok(identifier) = &identifier {
        limits.push((&state.limits.registration_identifier, identifier_key(identifier.as_str())));
    }
    state.rate.check_all(&limits).await?;
    let identifier = identifier?;
    let input = RegistrationStart { identifier, display_name: req.display_name };
    let started = state.passkeys.start_registration(input, user.as_ref()).await?;
    Ok(Json(CeremonyResponse { ceremony_id: started.ceremony_id.to_string(), public_key: started.public_key }))
}

/// Finish registering a passkey; signs the account in.
#[utoipa::path(post, path = "/api/v1/passkeys/registration/finish", tag = "passkeys",
    request_body = FinishRequest,
    responses((status = 200, description = "registered; a sign-up sets the session cookie, a passkey added to the signed-in account keeps its session", body = RegistrationFinishResponse),
              (status = 401, description = "reauth-required: the step-up expired during the ceremony", body = ErrorBody),
              (status = 400, description = "the response did not verify (origin-mismatch, challenge-mismatch, user-not-verified, malformed-credential, …)", body = ErrorBody),
              (status = 404, description = "ceremony-not-found: unknown or already used", body = ErrorBody),
              (status = 409, description = "credential-exists or identifier-taken", body = ErrorBody),
              (status = 410, description = "ceremony-expired", body = ErrorBody)))]
pub async fn finish(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    mut client: ClientContext,
    jar: CookieJar,
    ApiJson(req): ApiJson<FinishRequest>,
) -> Result<(CookieJar, Json<RegistrationFinishResponse>), ApiError> {
    let ceremony_id = CeremonyId::parse(&req.ceremony_id)?;
    let (jar, device_id) = client.ensure_device_id(jar, &state)?;
    // Only a sign-up that will mail a verification link needs to say who asked.
    let asker = state.recovery.settings().verify_email.then(|| crate::api::recovery::mail_context(&state, &client));
    let input = RegistrationFinish {
        ceremony_id,
        credential: req.credential,
        device: client.device,
        device_id: Some(device_id),
    };
    let done = state.passkeys.finish_registration(input, user.as_ref()).await?;
    let body = RegistrationFinishResponse {
        user_id: done.user_id.to_string(),
        credential_id: done.credential_id.to_base64url(),
        provider: ProviderView::of(&done.aaguid, state.passkeys.catalog()),
    };
    if !done.new_account {
        // A passkey added to the signed-in account: the session stays as it was made (a
        // new passkey proves nothing about who holds the account, so it is no step-up).
        return Ok((jar, Json(body)));
    }
    let new = NewSession {
        user_id: done.user_id,
        user_agent: client.user_agent,
        ip: client.ip,
        method: SessionMethod::Passkey,
        passkey_grant: false,
    };
    let jar = replace_session(&state, jar, new).await?;
    // Email verification at sign-up (when turned on): the account exists either way; a
    // mail that cannot be queued is logged, never a failed sign-up.
    if let Some(asker) = asker {
        let account = state.passkeys.account(done.user_id).await?;
        match state.recovery.send_verification(done.user_id, &account.identifier, &asker).await {
            Ok(true) => state.mail_wake.notify_one(),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "could not queue the address verification mail"),
        }
    }
    Ok((jar, Json(body)))
}

/// The signed-in user's passkeys and where each lives.
#[utoipa::path(get, path = "/api/v1/passkeys", tag = "passkeys",
    responses((status = 200, body = PasskeyList), (status = 401, description = "not-signed-in", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, SignedIn(user): SignedIn) -> Result<Json<PasskeyList>, ApiError> {
    let passkeys = state.passkeys.passkeys(user.user_id).await?;
    let catalog = state.passkeys.catalog();
    Ok(Json(PasskeyList { passkeys: passkeys.into_iter().map(|p| PasskeyView::of(p, catalog)).collect() }))
}

/// "Not now" on the offer to create a passkey on this device; later offers respect the
/// skip cooldown and caps.
#[utoipa::path(post, path = "/api/v1/passkeys/append/skip", tag = "passkeys",
    responses((status = 204, description = "recorded"), (status = 401, description = "not-signed-in", body = ErrorBody)))]
pub async fn skip_append(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    mut client: ClientContext,
    jar: CookieJar,
) -> Result<(CookieJar, StatusCode), ApiError> {
    let (jar, device_id) = client.ensure_device_id(jar, &state)?;
    state.passkeys.skip_append(user.user_id, &device_id).await?;
    Ok((jar, StatusCode::NO_CONTENT))
}

/// Delete one of the signed-in user's passkeys.
#[utoipa::path(delete, path = "/api/v1/passkeys/{credential_id}", tag = "passkeys",
    params(("credential_id" = String, Path, description = "base64url credential id")),
    responses((status = 204, description = "deleted"),
              (status = 400, description = "invalid-credential-id", body = ErrorBody),
              (status = 401, description = "not-signed-in, or reauth-required: no passkey check on this device within the step-up window", body = ErrorBody),
              (status = 404, description = "passkey-not-found", body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Path(credential_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = CredentialId::parse(&credential_id)?;
    state.passkeys.delete_passkey(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
