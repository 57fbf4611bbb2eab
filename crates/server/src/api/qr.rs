//! `/qr…`: Handoff QR approval. The desktop creates an attempt (and gets the redemption
//! secret as an `HttpOnly; SameSite=Strict` cookie scoped to the attempt's path), waits by
//! server-sent events or long-polling, and redeems; the signed-in phone claims, approves or
//! denies by the token in the QR. Creating is rate-limited per client, approving per user;
//! event streams and long-polls are capped (`connections.rs`).

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use handoff_core::clock::rfc3339;
use handoff_core::domain::{Identifier, JourneyId};
use handoff_core::passkeys::{NewSession, SessionMethod};
use handoff_core::qr::{PhoneSession, QrAttempt, QrState, Requester};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientContext, SignedIn, replace_session};
use crate::limits::ip_key;
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/qr", post(create))
        .route("/qr/claim", post(claim))
        .route("/qr/approve", post(approve))
        .route("/qr/deny", post(deny))
        .route("/qr/{qr_id}", get(status))
        .route("/qr/{qr_id}/events", get(events))
        .route("/qr/{qr_id}/redeem", post(redeem))
        .route("/qr/{qr_id}/rotate", post(rotate))
        .route("/qr/{qr_id}/cancel", post(cancel))
}

fn cookie_name(id: Uuid) -> String {
    format!("handoff_qr_{}", id.simple())
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| handoff_core::DomainError::invalid("invalid-qr-id", "qrId is not a UUID").into())
}

fn client_ip(client: &ClientContext) -> Option<IpAddr> {
    client.ip.as_deref().and_then(|ip| ip.parse().ok())
}

fn redeem_secret(jar: &CookieJar, id: Uuid) -> Option<String> {
    jar.get(&cookie_name(id)).map(|c| c.value().to_owned())
}

/// `POST /qr` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QrCreateRequest {
    /// The journey this attempt continues.
    #[serde(default)]
    pub journey_id: Option<String>,
    /// The identifier the person typed, if any.
    #[serde(default)]
    pub identifier: Option<String>,
}

/// A code to show.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QrCodeResponse {
    /// The attempt.
    pub qr_id: String,
    /// Its journey.
    pub journey_id: String,
    /// The URL in the QR (`/q/{token}` on this origin): also the "trouble scanning?" link.
    pub url: String,
    /// The QR as SVG (with quiet zone).
    pub svg: String,
    /// The two-digit number to show beside the QR.
    pub match_code: String,
    /// When the attempt ends (RFC 3339).
    pub expires_at: String,
    /// When this code stops working and must be rotated (RFC 3339).
    pub code_expires_at: String,
    /// Seconds the attempt has left.
    pub expires_in: i64,
}

/// The state of an attempt, for the desktop.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QrStatusResponse {
    /// The attempt.
    pub qr_id: String,
    /// `created`, `scanned`, `approved`, `denied`, `redeemed`, `expired`, `cancelled` or `rejected`.
    pub state: QrState,
    /// When the attempt ends (RFC 3339).
    pub expires_at: String,
    /// When the current code stops working (RFC 3339).
    pub code_expires_at: String,
    /// Why it was denied, rejected or expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn status_of(a: &QrAttempt) -> QrStatusResponse {
    QrStatusResponse {
        qr_id: a.id.to_string(),
        state: a.state,
        expires_at: rfc3339(a.expires_at),
        code_expires_at: rfc3339(a.token_expires_at),
        reason: a.reason.clone(),
    }
}

/// The page origin for QR URLs: the request's own `Origin` when it is configured, else the first.
fn public_origin(state: &AppState, headers: &HeaderMap) -> String {
    let configured = &state.http.origins;
    let asked = headers.get("origin").and_then(|v| v.to_str().ok());
    asked
        .and_then(|o| configured.iter().find(|c| c.trim_end_matches('/') == o))
        .or_else(|| configured.first())
        .map(|o| o.trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

fn render(url: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::with_error_correction_level(url, qrcode::EcLevel::M)
        .map_err(|e| handoff_core::DomainError::Internal(format!("QR encoding failed: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(264, 264)
        .quiet_zone(true)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

fn code_response(
    state: &AppState,
    headers: &HeaderMap,
    a: &QrAttempt,
    token: &str,
) -> Result<QrCodeResponse, ApiError> {
    let url = format!("{}/q/{token}", public_origin(state, headers));
    let now = state.clock.now_ms();
    Ok(QrCodeResponse {
        qr_id: a.id.to_string(),
        journey_id: a.journey_id.to_string(),
        svg: render(&url)?,
        url,
        match_code: format!("{:02}", a.match_code),
        expires_at: rfc3339(a.expires_at),
        code_expires_at: rfc3339(a.token_expires_at),
        expires_in: ((a.expires_at - now) / 1000).max(0),
    })
}

/// Start a QR approval on this desktop.
#[utoipa::path(post, path = "/api/v1/qr", tag = "qr", request_body = QrCreateRequest,
    responses((status = 200, description = "the code; sets the attempt's redemption cookie", body = QrCodeResponse),
              (status = 400, description = "invalid identifier or journey id, or qr-disabled", body = ErrorBody),
              (status = 429, description = "rate-limited (Retry-After)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    mut client: ClientContext,
    headers: HeaderMap,
    jar: CookieJar,
    ApiJson(req): ApiJson<QrCreateRequest>,
) -> Result<(CookieJar, Json<QrCodeResponse>), ApiError> {
    state.rate.check(&state.limits.qr_create, &ip_key(client_ip(&client))).await?;
    let identifier = req.identifier.as_deref().map(Identifier::parse).transpose()?;
    let named = req.journey_id.as_deref().map(JourneyId::parse).transpose()?;
    // The attempt's server events go only into a journey this browser started.
    let (jar, device) = client.ensure_device_id(jar, &state)?;
    let journey = Some(state.passkeys.journey_for(named, Some(&device)));
    let requester = Requester { device: client.device, ip: client.ip, user_agent: client.user_agent };
    let new = state.qr.create(identifier, journey, requester).await?;
    state.metrics.qr("created", 1);
    let body = code_response(&state, &headers, &new.attempt, new.token.expose())?;
    // Outlives the attempt, so the desktop can still read why it ended.
    let ttl = state.qr.config().ttl.as_secs() + 600;
    let cookie = Cookie::build((cookie_name(new.attempt.id), new.redeem_secret.expose().to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.http.secure_cookies)
        .path(format!("/api/v1/qr/{}", new.attempt.id))
        .max_age(time::Duration::seconds(i64::try_from(ttl).unwrap_or(900)))
        .build();
    Ok((jar.add(cookie), Json(body)))
}

/// `?wait=N`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct WaitQuery {
    /// Long-poll: wait up to N seconds (at most 30) for the state to change.
    pub wait: Option<u64>,
}

/// The attempt's state (the desktop's cookie is required); `?wait=N` long-polls.
#[utoipa::path(get, path = "/api/v1/qr/{qr_id}", tag = "qr", params(("qr_id" = String, Path), WaitQuery),
    responses((status = 200, body = QrStatusResponse),
              (status = 403, description = "redeem-refused: this browser did not start the attempt", body = ErrorBody),
              (status = 404, description = "qr-not-found", body = ErrorBody),
              (status = 429, description = "too-many-streams (long-polls count as streams)", body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    Path(qr_id): Path<String>,
    Query(q): Query<WaitQuery>,
    client: ClientContext,
    jar: CookieJar,
) -> Result<Json<QrStatusResponse>, ApiError> {
    let id = parse_id(&qr_id)?;
    let secret = redeem_secret(&jar, id);
    let mut sub = state.notifier.subscribe(id);
    let first = state.qr.status(id, secret.as_deref()).await?;
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(30));
    if wait.is_zero() || first.state.is_final() {
        return Ok(Json(status_of(&first)));
    }
    let _slot = state.streams.acquire(client_ip(&client), id)?;
    let deadline = tokio::time::Instant::now()
        + wait.min(Duration::from_millis(
            u64::try_from((first.expires_at - state.clock.now_ms()).max(0)).unwrap_or(0) + 1000,
        ));
    loop {
        match tokio::time::timeout_at(deadline, sub.changed()).await {
            Ok(true) => {
                let now = state.qr.status(id, secret.as_deref()).await?;
                if now.state != first.state {
                    return Ok(Json(status_of(&now)));
                }
            }
            _ => return Ok(Json(status_of(&state.qr.status(id, secret.as_deref()).await?))),
        }
    }
}

/// When a stream waiting on an attempt that ends at `expires_at` looks on its own: a
/// second after the end.
fn deadline_of(expires_at: handoff_core::clock::Millis, now: handoff_core::clock::Millis) -> tokio::time::Instant {
    let left = expires_at.saturating_sub(now).clamp(0, 600_000);
    tokio::time::Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(0) + 1_000)
}

/// Server-sent events of the attempt's state: one `state` event now and one per change,
/// heartbeats every 15 s, closed after a final state.
#[utoipa::path(get, path = "/api/v1/qr/{qr_id}/events", tag = "qr", params(("qr_id" = String, Path)),
    responses((status = 200, description = "text/event-stream of `state` events with QrStatusResponse data"),
              (status = 403, description = "redeem-refused", body = ErrorBody), (status = 404, description = "qr-not-found", body = ErrorBody),
              (status = 429, description = "too-many-streams: this address or attempt has the most streams open", body = ErrorBody),
              (status = 503, description = "server-busy: the server holds the most streams it may", body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Path(qr_id): Path<String>,
    client: ClientContext,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    let id = parse_id(&qr_id)?;
    let secret = redeem_secret(&jar, id);
    let sub = state.notifier.subscribe(id);
    let first = state.qr.status(id, secret.as_deref()).await?;
    // Held by the stream: given back when it ends or the desktop goes away.
    let slot = state.streams.acquire(client_ip(&client), id)?;
    let event = |a: &QrAttempt| {
        Event::default()
            .event("state")
            .json_data(status_of(a))
            .unwrap_or_else(|_| Event::default().comment("encoding failed"))
    };
    let initial = event(&first);
    let done = first.state.is_final();
    // A waiting desktop costs nothing until its attempt changes: every change is published
    // (the janitor publishes expiries), so the stream reads the database only when woken,
    // and once at the attempt's end in case that publication was missed.
    let expiry = deadline_of(first.expires_at, state.clock.now_ms());
    let stream = futures_util::stream::unfold(
        (Some(initial), sub, first.state, done, state, secret, expiry),
        move |(pending, mut sub, last, done, state, secret, mut wake_by)| async move {
            if let Some(e) = pending {
                return Some((Ok::<_, std::convert::Infallible>(e), (None, sub, last, done, state, secret, wake_by)));
            }
            if done {
                return None;
            }
            loop {
                match tokio::time::timeout_at(wake_by, sub.changed()).await {
                    Ok(false) => return None,
                    Ok(true) => {}
                    // Past the end and still not final: look again every few seconds.
                    Err(_) => wake_by = tokio::time::Instant::now() + Duration::from_secs(5),
                }
                let now = state.qr.status(id, secret.as_deref()).await.ok()?;
                if now.state != last {
                    let final_state = now.state.is_final();
                    return Some((Ok(event(&now)), (None, sub, now.state, final_state, state, secret, wake_by)));
                }
            }
        },
    );
    let stream = futures_util::StreamExt::map(stream, move |item| {
        let _held = &slot;
        item
    });
    let mut response = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    // Proxies must not buffer the stream.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    response.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Redeem an approved attempt: this desktop is signed in.
#[utoipa::path(post, path = "/api/v1/qr/{qr_id}/redeem", tag = "qr", params(("qr_id" = String, Path)),
    responses((status = 200, description = "signed in; sets the session cookie", body = crate::api::dto::LoginFinishResponse),
              (status = 403, description = "redeem-refused: no or another desktop's cookie", body = ErrorBody),
              (status = 409, description = "qr-wrong-state: not approved (yet), or already redeemed", body = ErrorBody),
              (status = 410, description = "qr-expired", body = ErrorBody)))]
pub async fn redeem(
    State(state): State<AppState>,
    Path(qr_id): Path<String>,
    client: ClientContext,
    jar: CookieJar,
) -> Result<(CookieJar, Json<crate::api::dto::LoginFinishResponse>), ApiError> {
    let id = parse_id(&qr_id)?;
    let (attempt, user) = state.qr.redeem(id, redeem_secret(&jar, id).as_deref()).await?;
    state.metrics.qr("redeemed", 1);
    state.metrics.sign_in("qr-approval", true);
    state.notifier.publish(id).await;
    let account = state.passkeys.account(user).await?;
    // No passkey ceremony ran in this browser: the session cannot take sensitive actions
    // until it steps up, except adding one passkey here when the approver allowed it.
    let new = NewSession {
        user_id: user,
        user_agent: client.user_agent,
        ip: client.ip,
        method: SessionMethod::QrApproval,
        passkey_grant: attempt.allow_passkey && state.qr.config().session_may_add_passkey,
    };
    let jar = replace_session(&state, jar, new).await?;
    state.passkeys.note_session_established(attempt.journey_id, "qr-approval").await;
    let body = crate::api::dto::LoginFinishResponse {
        user_id: user.to_string(),
        identifier: account.identifier.to_string(),
        journey_id: attempt.journey_id.to_string(),
        flow: "qr-approval".into(),
        append_offer: None,
    };
    Ok((jar, Json(body)))
}

/// A new code for the same attempt; the old code stops working.
#[utoipa::path(post, path = "/api/v1/qr/{qr_id}/rotate", tag = "qr", params(("qr_id" = String, Path)),
    responses((status = 200, body = QrCodeResponse), (status = 403, description = "redeem-refused", body = ErrorBody),
              (status = 409, description = "qr-wrong-state: already scanned", body = ErrorBody), (status = 410, description = "qr-expired", body = ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    Path(qr_id): Path<String>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Json<QrCodeResponse>, ApiError> {
    let id = parse_id(&qr_id)?;
    let (attempt, token) = state.qr.rotate(id, redeem_secret(&jar, id).as_deref()).await?;
    Ok(Json(code_response(&state, &headers, &attempt, token.expose())?))
}

/// The desktop gives up on the attempt (new code or another method).
#[utoipa::path(post, path = "/api/v1/qr/{qr_id}/cancel", tag = "qr", params(("qr_id" = String, Path)),
    responses((status = 200, body = QrStatusResponse), (status = 403, description = "redeem-refused", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(qr_id): Path<String>,
    jar: CookieJar,
) -> Result<Json<QrStatusResponse>, ApiError> {
    let id = parse_id(&qr_id)?;
    let done = state.qr.cancel(id, redeem_secret(&jar, id).as_deref()).await?;
    state.notifier.publish(id).await;
    Ok(Json(status_of(&done)))
}

/// The phone's request body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QrTokenRequest {
    /// The token from the QR's URL.
    pub token: String,
    /// The number picked (approve only), as shown: two digits.
    #[serde(default)]
    pub match_code: Option<String>,
    /// Approve only: "also let this computer save a passkey". The computer's session may
    /// then add one passkey on itself without a passkey check, when the operator allows
    /// it (`passkeyGrantOffered` in the claim). Default false.
    #[serde(default)]
    pub allow_passkey: bool,
}

/// The desktop as the phone sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequesterView {
    /// OS of the requesting computer.
    pub os: String,
    /// Its browser.
    pub browser: String,
    /// Its form factor.
    pub form_factor: String,
    /// Its IP address.
    pub ip: Option<String>,
    /// Its approximate place ("London, England, United Kingdom"), when the server has a
    /// GeoIP database that knows the address.
    pub place: Option<String>,
    /// When it asked (RFC 3339).
    pub requested_at: String,
}

/// What the phone shows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QrClaimResponse {
    /// The attempt's state.
    pub state: QrState,
    /// The journey of the attempt (the phone's events carry it).
    pub journey_id: String,
    /// Who is asking.
    pub requester: RequesterView,
    /// The account this phone would approve as.
    pub account: AccountView,
    /// The identifier typed on the computer, if any (a mismatch means "wrong account").
    pub requested_identifier: Option<String>,
    /// Three two-digit numbers; one is on the computer's screen.
    pub match_choices: Vec<String>,
    /// The computer and this phone seem to be far apart (by place when the server has a
    /// GeoIP database, else by network).
    pub far_apart: bool,
    /// Distance between the computer's and this phone's places in km, when both are known.
    pub distance_km: Option<u32>,
    /// When the attempt ends (RFC 3339).
    pub expires_at: String,
    /// The operator lets the approver allow the computer to save a passkey without a
    /// passkey check (show the "also let this computer save a passkey" choice).
    pub passkey_grant_offered: bool,
    /// Why approving will be refused, when it will: `wrong-account` (this phone is signed
    /// in to another account than the one typed on the computer) or `far-apart` (the
    /// operator refuses far-apart approvals). Only Deny makes sense then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

/// An account, briefly.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    /// Identifier.
    pub identifier: String,
    /// Display name.
    pub display_name: String,
}

fn phone_of(user: &handoff_core::passkeys::SessionUser, client: &ClientContext) -> PhoneSession {
    PhoneSession {
        session_digest: user.session_digest.clone(),
        user_id: user.user_id,
        verified_at: user.verified_at,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
    }
}

/// Refuses state-changing phone requests from other origins (CSRF). Browsers send `Origin`
/// on every cross-origin POST; a request without one is not from a browser page.
pub(crate) fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get("origin").and_then(|v| v.to_str().ok()) {
        Some(o) if !state.http.origins.iter().any(|c| c.trim_end_matches('/') == o) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-origin-request",
            format!("requests from {o} are not accepted; open the link on this site"),
        )),
        _ => Ok(()),
    }
}

/// A signed-in phone claims the QR it scanned (first scan only).
#[utoipa::path(post, path = "/api/v1/qr/claim", tag = "qr", request_body = QrTokenRequest,
    responses((status = 200, body = QrClaimResponse),
              (status = 401, description = "not-signed-in", body = ErrorBody),
              (status = 403, description = "cross-origin-request", body = ErrorBody),
              (status = 404, description = "qr-not-found (unknown or rotated code)", body = ErrorBody),
              (status = 409, description = "qr-already-scanned by another device", body = ErrorBody),
              (status = 410, description = "qr-expired", body = ErrorBody)))]
pub async fn claim(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    client: ClientContext,
    headers: HeaderMap,
    ApiJson(req): ApiJson<QrTokenRequest>,
) -> Result<Json<QrClaimResponse>, ApiError> {
    same_origin(&state, &headers)?;
    let view = state.qr.claim(req.token.trim(), &phone_of(&user, &client)).await?;
    state.metrics.qr("scanned", 1);
    state.notifier.publish(view.attempt.id).await;
    let account = state.passkeys.account(user.user_id).await?;
    let a = &view.attempt;
    Ok(Json(QrClaimResponse {
        state: a.state,
        journey_id: a.journey_id.to_string(),
        requester: RequesterView {
            os: a.requester.device.os.clone(),
            browser: a.requester.device.browser.clone(),
            form_factor: a.requester.device.form_factor.as_str().into(),
            ip: a.requester.ip.clone(),
            place: view.desktop_place.as_ref().and_then(|p| p.label()),
            requested_at: rfc3339(a.created_at),
        },
        account: AccountView {
            identifier: account.identifier.to_string(),
            display_name: account.display_name.as_str().into(),
        },
        requested_identifier: a.identifier.clone(),
        match_choices: view.match_choices.iter().map(|n| format!("{n:02}")).collect(),
        far_apart: view.far_apart,
        distance_km: view.separation.distance_km,
        expires_at: rfc3339(a.expires_at),
        passkey_grant_offered: state.qr.config().session_may_add_passkey,
        refusal: view.refusal.map(str::to_owned),
    }))
}

/// Approve on the phone with the number shown on the computer. Needs a user-verified
/// passkey sign-in in this phone session within the last 2 minutes (else 401 `reauth-required`).
#[utoipa::path(post, path = "/api/v1/qr/approve", tag = "qr", request_body = QrTokenRequest,
    responses((status = 200, body = QrStatusResponse),
              (status = 400, description = "wrong-number: the attempt is stopped", body = ErrorBody),
              (status = 401, description = "not-signed-in or reauth-required", body = ErrorBody),
              (status = 403, description = "wrong-account or far-apart: the operator refuses this approval (the attempt is stopped); or cross-origin-request", body = ErrorBody),
              (status = 409, description = "qr-already-scanned / qr-wrong-state", body = ErrorBody),
              (status = 410, description = "qr-expired", body = ErrorBody),
              (status = 429, description = "rate-limited", body = ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    client: ClientContext,
    headers: HeaderMap,
    ApiJson(req): ApiJson<QrTokenRequest>,
) -> Result<Json<QrStatusResponse>, ApiError> {
    same_origin(&state, &headers)?;
    state.rate.check(&state.limits.qr_approve, &user.user_id.to_string()).await?;
    let code = req
        .match_code
        .as_deref()
        .and_then(|c| c.trim().parse::<u8>().ok())
        .filter(|n| (10..=99).contains(n))
        .ok_or_else(|| {
            handoff_core::DomainError::invalid("invalid-match-code", "matchCode must be the two-digit number picked")
        })?;
    let result = state.qr.approve(req.token.trim(), code, &phone_of(&user, &client), req.allow_passkey).await;
    if result.is_ok() {
        state.metrics.qr("approved", 1);
    }
    if let Some(id) = match &result {
        Ok(a) => Some(a.id),
        Err(
            handoff_core::DomainError::WrongMatchCode
            | handoff_core::DomainError::QrWrongAccount
            | handoff_core::DomainError::QrFarApart,
        ) => state.qr.id_of_token(req.token.trim()).await,
        Err(_) => None,
    } {
        state.notifier.publish(id).await;
    }
    Ok(Json(status_of(&result?)))
}

/// Deny on the phone.
#[utoipa::path(post, path = "/api/v1/qr/deny", tag = "qr", request_body = QrTokenRequest,
    responses((status = 200, body = QrStatusResponse), (status = 401, description = "not-signed-in", body = ErrorBody),
              (status = 403, description = "cross-origin-request", body = ErrorBody), (status = 409, description = "qr-wrong-state", body = ErrorBody)))]
pub async fn deny(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    client: ClientContext,
    headers: HeaderMap,
    ApiJson(req): ApiJson<QrTokenRequest>,
) -> Result<Json<QrStatusResponse>, ApiError> {
    same_origin(&state, &headers)?;
    let done = state.qr.deny(req.token.trim(), &phone_of(&user, &client)).await?;
    state.metrics.qr("denied", 1);
    state.notifier.publish(done.id).await;
    Ok(Json(status_of(&done)))
}
