//! Recovery (PRODUCT §7): `/email-code/start|finish`, `/recovery-codes` (make, count,
//! redeem) and the operator's `/recovery-links`. Each success starts a *recovery session*
//! (it may add one passkey on this device; anything else sensitive needs a passkey ceremony
//! here first). Asking for codes is rate-limited per address and per identifier, entering
//! them per address, wrong recovery codes per identifier; email answers are the same for
//! unknown identifiers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use handoff_core::clock::rfc3339;
use handoff_core::domain::{Identifier, JourneyId, UserId};
use handoff_core::passkeys::{NewSession, SessionMethod};
use handoff_core::recovery::MailContext;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientContext, Operator, SignedIn, replace_session};
use crate::limits::{identifier_key, ip_key};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/email-code/start", post(email_start))
        .route("/email-code/finish", post(email_finish))
        .route("/email-code/{attempt_id}", axum::routing::get(email_delivery))
        .route("/recovery-codes", post(make_codes).get(codes_left))
        .route("/recovery-codes/redeem", post(redeem_code))
        .route("/recovery-links", post(make_link))
}

fn journey_of(raw: Option<&str>) -> Result<Option<JourneyId>, ApiError> {
    Ok(raw.map(JourneyId::parse).transpose()?)
}

fn ip_of(client: &ClientContext) -> String {
    ip_key(client.ip.as_deref().and_then(|ip| ip.parse().ok()))
}

/// Who asks, for a mail's text: the browser, OS and (with a GeoIP database) place.
pub(crate) fn mail_context(state: &AppState, client: &ClientContext) -> MailContext {
    MailContext {
        browser: Some(client.device.browser.clone()),
        os: Some(client.device.os.clone()),
        place: state.qr.place_of(client.ip.as_deref()).and_then(|p| p.label()),
    }
}

/// Starts a recovery session for `user` in this browser and records it in the journey (the
/// email code, recovery code and operator link all end here).
pub(crate) async fn recovery_session(
    state: &AppState,
    jar: CookieJar,
    client: ClientContext,
    user: UserId,
    method: SessionMethod,
    journey: JourneyId,
) -> Result<CookieJar, ApiError> {
    let new = NewSession { user_id: user, user_agent: client.user_agent, ip: client.ip, method, passkey_grant: true };
    let jar = replace_session(state, jar, new).await?;
    state.metrics.sign_in(method.as_str(), true);
    state.passkeys.note_session_established(journey, method.as_str()).await;
    Ok(jar)
}

/// `POST /email-code/start` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailCodeStart {
    /// The identifier typed (an email address for the code to arrive).
    pub identifier: String,
    /// The sign-in's journey, when the page has one.
    #[serde(default)]
    pub journey_id: Option<String>,
}

/// The attempt to finish with the mailed code.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailCodeStarted {
    /// Send it back with the code.
    pub attempt_id: String,
    /// Its journey.
    pub journey_id: String,
    /// How long the code works, in seconds.
    pub expires_in: u64,
}

/// Mail a one-time code (202 whether or not the identifier has an account).
#[utoipa::path(post, path = "/api/v1/email-code/start", tag = "recovery", request_body = EmailCodeStart,
    responses((status = 202, description = "a code is mailed when the account exists; the same answer either way", body = EmailCodeStarted),
              (status = 400, description = "invalid-identifier, email-disabled", body = ErrorBody),
              (status = 429, description = "rate-limited per address or identifier", body = ErrorBody)))]
pub async fn email_start(
    State(state): State<AppState>,
    client: ClientContext,
    ApiJson(req): ApiJson<EmailCodeStart>,
) -> Result<(StatusCode, Json<EmailCodeStarted>), ApiError> {
    let identifier = Identifier::parse(&req.identifier)?;
    let journey = journey_of(req.journey_id.as_deref())?;
    let limits = &state.limits;
    state
        .rate
        .check_all(&[
            (&limits.email_code_ip, ip_of(&client)),
            (&limits.email_code_identifier, identifier_key(identifier.as_str())),
        ])
        .await?;
    let asker = mail_context(&state, &client);
    let (attempt_id, journey) = state.recovery.start_email_code(&identifier, journey, &asker).await?;
    state.mail_wake.notify_one();
    let expires_in = state.recovery.settings().email_code_ttl.as_secs();
    Ok((StatusCode::ACCEPTED, Json(EmailCodeStarted { attempt_id, journey_id: journey.to_string(), expires_in })))
}

/// How the code's mail is going.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailDelivery {
    /// `queued`, `retrying` (the mail server could not be reached or deferred it), `sent`
    /// (accepted by the mail server) or `failed` (refused for good).
    pub delivery: &'static str,
}

/// How the mail of an email code is going, so the page can say when it failed.
#[utoipa::path(get, path = "/api/v1/email-code/{attempt_id}", tag = "recovery", params(("attempt_id" = String, Path)),
    responses((status = 200, body = EmailDelivery), (status = 400, description = "invalid-attempt-id", body = ErrorBody)))]
pub async fn email_delivery(
    State(state): State<AppState>,
    axum::extract::Path(attempt_id): axum::extract::Path<String>,
) -> Result<Json<EmailDelivery>, ApiError> {
    if attempt_id.len() != 32 || !attempt_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(handoff_core::DomainError::invalid(
            "invalid-attempt-id",
            "attemptId is not one this server gave out",
        )
        .into());
    }
    Ok(Json(EmailDelivery { delivery: state.recovery.email_code_delivery(&attempt_id).await? }))
}

/// `POST /email-code/finish` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailCodeFinish {
    /// From `start`.
    pub attempt_id: String,
    /// The 6 digits from the mail.
    pub code: String,
}

/// Signed in by a recovery method.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverySignedIn {
    /// The account.
    pub user_id: String,
    /// Its identifier.
    pub identifier: String,
    /// The journey.
    pub journey_id: String,
    /// `recovery-code` only: unused codes left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codes_left: Option<u64>,
}

async fn signed_in_body(
    state: &AppState,
    user: UserId,
    journey: JourneyId,
    codes_left: Option<u64>,
) -> Result<RecoverySignedIn, ApiError> {
    let account = state.passkeys.account(user).await?;
    Ok(RecoverySignedIn {
        user_id: user.to_string(),
        identifier: account.identifier.to_string(),
        journey_id: journey.to_string(),
        codes_left,
    })
}

/// Sign in with the mailed code: a recovery session.
#[utoipa::path(post, path = "/api/v1/email-code/finish", tag = "recovery", request_body = EmailCodeFinish,
    responses((status = 200, description = "signed in (a recovery session); sets the session cookie", body = RecoverySignedIn),
              (status = 400, description = "code-wrong (with triesLeft), too-many-tries, invalid-code, invalid-attempt-id", body = ErrorBody),
              (status = 410, description = "code-expired", body = ErrorBody),
              (status = 429, description = "rate-limited", body = ErrorBody)))]
pub async fn email_finish(
    State(state): State<AppState>,
    client: ClientContext,
    jar: CookieJar,
    ApiJson(req): ApiJson<EmailCodeFinish>,
) -> Result<(CookieJar, Json<RecoverySignedIn>), ApiError> {
    state.rate.check(&state.limits.code_entry_ip, &ip_of(&client)).await?;
    let (user, journey) = state.recovery.finish_email_code(req.attempt_id.trim(), &req.code).await?;
    let jar = recovery_session(&state, jar, client, user, SessionMethod::EmailCode, journey).await?;
    Ok((jar, Json(signed_in_body(&state, user, journey, None).await?)))
}

/// New recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodes {
    /// Ten single-use codes (`XXXX-XXXX-XXXX`); earlier ones stop working.
    pub codes: Vec<String>,
}

/// Make ten recovery codes for the signed-in account (needs a step-up).
#[utoipa::path(post, path = "/api/v1/recovery-codes", tag = "recovery",
    responses((status = 200, body = RecoveryCodes),
              (status = 401, description = "not-signed-in or reauth-required (a passkey ceremony on this device first)", body = ErrorBody)))]
pub async fn make_codes(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let codes = state.recovery.create_recovery_codes(&user).await?;
    Ok(Json(RecoveryCodes { codes }))
}

/// How many recovery codes are left.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodesLeft {
    /// Unused recovery codes of the signed-in account.
    pub codes_left: u64,
}

/// How many unused recovery codes the signed-in account has.
#[utoipa::path(get, path = "/api/v1/recovery-codes", tag = "recovery",
    responses((status = 200, body = CodesLeft), (status = 401, description = "not-signed-in", body = ErrorBody)))]
pub async fn codes_left(State(state): State<AppState>, SignedIn(user): SignedIn) -> Result<Json<CodesLeft>, ApiError> {
    Ok(Json(CodesLeft { codes_left: state.recovery.recovery_codes_left(user.user_id).await? }))
}

/// `POST /recovery-codes/redeem` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedeemCode {
    /// The account's identifier.
    pub identifier: String,
    /// One of its recovery codes (case, spaces and dashes do not matter).
    pub code: String,
    /// The sign-in's journey, when the page has one.
    #[serde(default)]
    pub journey_id: Option<String>,
}

/// Sign in with a recovery code: a recovery session; says how many codes are left.
#[utoipa::path(post, path = "/api/v1/recovery-codes/redeem", tag = "recovery", request_body = RedeemCode,
    responses((status = 200, description = "signed in (a recovery session); sets the session cookie", body = RecoverySignedIn),
              (status = 400, description = "code-wrong (also for an unknown identifier)", body = ErrorBody),
              (status = 429, description = "rate-limited: too many wrong codes for this identifier", body = ErrorBody)))]
pub async fn redeem_code(
    State(state): State<AppState>,
    client: ClientContext,
    jar: CookieJar,
    ApiJson(req): ApiJson<RedeemCode>,
) -> Result<(CookieJar, Json<RecoverySignedIn>), ApiError> {
    let identifier = Identifier::parse(&req.identifier)?;
    let journey = journey_of(req.journey_id.as_deref())?;
    let key = identifier_key(identifier.as_str());
    state.rate.check(&state.limits.code_entry_ip, &ip_of(&client)).await?;
    state.rate.peek(&state.limits.recovery_code_failures, &key).await?;
    let result = state.recovery.redeem_recovery_code(&identifier, &req.code, journey).await;
    if matches!(result, Err(handoff_core::DomainError::CodeWrong { .. })) {
        state.rate.record(&state.limits.recovery_code_failures, &key).await?;
    }
    let (user, left, journey) = result?;
    let jar = recovery_session(&state, jar, client, user, SessionMethod::RecoveryCode, journey).await?;
    Ok((jar, Json(signed_in_body(&state, user, journey, Some(left)).await?)))
}

/// `POST /recovery-links` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MakeLink {
    /// The account's identifier.
    pub identifier: String,
}

/// A recovery link.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkMade {
    /// Give it to the person (it signs in once).
    pub url: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
}

/// Operator: a single-use sign-in link for an account, valid 15 minutes.
#[utoipa::path(post, path = "/api/v1/recovery-links", tag = "recovery", request_body = MakeLink,
    security(("operator" = [])),
    responses((status = 201, body = LinkMade),
              (status = 400, description = "unknown-account, invalid-identifier", body = ErrorBody),
              (status = 401, description = "operator-token-required", body = ErrorBody)))]
pub async fn make_link(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(req): ApiJson<MakeLink>,
) -> Result<(StatusCode, Json<LinkMade>), ApiError> {
    let identifier = Identifier::parse(&req.identifier)?;
    let (url, expires_at) = state.recovery.make_recovery_link(&identifier).await?;
    Ok((StatusCode::CREATED, Json(LinkMade { url, expires_at: rfc3339(expires_at) })))
}
