//! `/device/…`: the confirming side of a device sign-in (RFC 8628, PRODUCT §6.2), called by
//! the verification page (`/device`) in a browser where the person is signed in. Entering
//! codes is rate-limited per address, and wrong codes per address and per account, because
//! a user code is short enough to guess (RFC 8628 §5.1); approving needs a step-up.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use handoff_core::clock::rfc3339;
use handoff_core::oidc::device::{Confirmer, DeviceView};
use handoff_core::oidc::device_model::{ClaimVia, DeviceState};
use handoff_core::{DomainError, device::DeviceInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::qr::{AccountView, same_origin};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientContext, SignedIn};
use crate::limits::ip_key;
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/device/claim", post(claim))
        .route("/device/approve", post(approve))
        .route("/device/deny", post(deny))
}

/// The confirming browser's request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceCodeRequest {
    /// The code the device shows (`XXXX-XXXX`; case, spaces and dashes do not matter).
    pub user_code: String,
    /// Claim only: `scanned` when the code came from the device's QR (the person then picks
    /// it among three before approving), `typed` (default) when the person typed it.
    #[serde(default)]
    pub via: Option<String>,
    /// Approve only, for a scanned code: the code picked among the three choices.
    #[serde(default)]
    pub pick: Option<String>,
}

/// The device that asks, as the confirming browser sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRequesterView {
    /// Its IP address.
    pub ip: Option<String>,
    /// Its approximate place, when the server has a GeoIP database that knows the address.
    pub place: Option<String>,
    /// What it said it is (its user agent, parsed), e.g. "curl" or "Chrome on Linux".
    pub software: String,
    /// When it asked (RFC 3339).
    pub requested_at: String,
}

/// The application that asks.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceClientView {
    /// `client_id`.
    pub id: String,
    /// Its name, as registered.
    pub name: String,
}

/// What the confirmation shows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceClaimResponse {
    /// `claimed` (or the state it is in when this browser opens it again).
    pub state: DeviceState,
    /// The sign-in's journey.
    pub journey_id: String,
    /// The application.
    pub client: DeviceClientView,
    /// What it asks for.
    pub scope: Vec<String>,
    /// The device.
    pub device: DeviceRequesterView,
    /// The account approving would sign in.
    pub account: AccountView,
    /// For a scanned code: three codes, one of them on the device's screen; the person
    /// picks it. Absent for a typed code (typing it was the confirmation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    /// When the sign-in ends (RFC 3339).
    pub expires_at: String,
}

/// The state after approving or denying.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceStateResponse {
    /// `approved`, `denied`, …
    pub state: DeviceState,
}

fn confirmer(user: handoff_core::passkeys::SessionUser, client: &ClientContext) -> Confirmer {
    Confirmer { session: user, ip: client.ip.clone(), user_agent: client.user_agent.clone() }
}

fn software(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|u| !u.trim().is_empty()) else { return "unknown".into() };
    let device = DeviceInfo::from_user_agent(ua);
    match (device.browser.as_str(), device.os.as_str()) {
        ("unknown", _) => ua.split([' ', '/']).next().unwrap_or("unknown").chars().take(40).collect(),
        (browser, "unknown") => browser.to_owned(),
        (browser, os) => format!("{browser} on {os}"),
    }
}

/// A signed-in browser enters or scans a device's code and gets the confirmation.
#[utoipa::path(post, path = "/api/v1/device/claim", tag = "device", request_body = DeviceCodeRequest,
    responses((status = 200, body = DeviceClaimResponse),
              (status = 400, description = "invalid-user-code", body = ErrorBody),
              (status = 401, description = "not-signed-in", body = ErrorBody),
              (status = 403, description = "cross-origin-request", body = ErrorBody),
              (status = 404, description = "device-code-not-found (counts as a wrong code)", body = ErrorBody),
              (status = 409, description = "device-code-claimed by another browser, or device-wrong-state", body = ErrorBody),
              (status = 410, description = "device-code-expired", body = ErrorBody),
              (status = 429, description = "rate-limited: too many codes or wrong codes", body = ErrorBody)))]
pub async fn claim(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    client: ClientContext,
    headers: HeaderMap,
    ApiJson(req): ApiJson<DeviceCodeRequest>,
) -> Result<Json<DeviceClaimResponse>, ApiError> {
    same_origin(&state, &headers)?;
    let ip = ip_key(client.ip.as_deref().and_then(|ip| ip.parse().ok()));
    let account_key = user.user_id.to_string();
    let limits = &state.limits;
    state.rate.check(&limits.device_entry, &ip).await?;
    state.rate.peek(&limits.device_wrong_codes, &ip).await?;
    state.rate.peek(&limits.device_wrong_codes, &account_key).await?;
    let via = match req.via.as_deref() {
        None | Some("typed") => ClaimVia::Typed,
        Some("scanned") => ClaimVia::Scanned,
        Some(other) => {
            return Err(
                DomainError::invalid("invalid-via", format!("via must be typed or scanned, not {other:?}")).into()
            );
        }
    };
    let user_id = user.user_id;
    let result = state.oidc.device_claim(&req.user_code, via, &confirmer(user, &client)).await;
    if matches!(result, Err(DomainError::DeviceCodeNotFound | DomainError::Invalid { .. })) {
        state.rate.record(&limits.device_wrong_codes, &ip).await?;
        state.rate.record(&limits.device_wrong_codes, &account_key).await?;
    }
    let DeviceView { authorization: a, client: app, choices } = result?;
    let account = state.passkeys.account(user_id).await?;
    Ok(Json(DeviceClaimResponse {
        state: a.state,
        journey_id: a.journey_id.to_string(),
        client: DeviceClientView { id: app.id, name: app.name },
        scope: a.scope.split(' ').map(str::to_owned).collect(),
        device: DeviceRequesterView {
            place: state.qr.place_of(a.device_ip.as_deref()).and_then(|p| p.label()),
            ip: a.device_ip.clone(),
            software: software(a.device_ua.as_deref()),
            requested_at: rfc3339(a.created_at),
        },
        account: AccountView {
            identifier: account.identifier.to_string(),
            display_name: account.display_name.as_str().into(),
        },
        choices: choices.map(Vec::from),
        expires_at: rfc3339(a.expires_at),
    }))
}

/// Approve the device sign-in this browser claimed. Needs a user-verified passkey
/// ceremony in this browser within the step-up window (else 401 `reauth-required`); for a
/// scanned code, the code picked among the three (a wrong pick stops the sign-in).
#[utoipa::path(post, path = "/api/v1/device/approve", tag = "device", request_body = DeviceCodeRequest,
    responses((status = 200, body = DeviceStateResponse),
              (status = 400, description = "wrong-code (the sign-in is stopped), pick-required, invalid-user-code", body = ErrorBody),
              (status = 401, description = "not-signed-in or reauth-required", body = ErrorBody),
              (status = 403, description = "cross-origin-request", body = ErrorBody),
              (status = 409, description = "device-code-claimed or device-wrong-state", body = ErrorBody),
              (status = 410, description = "device-code-expired", body = ErrorBody),
              (status = 429, description = "rate-limited", body = ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    client: ClientContext,
    headers: HeaderMap,
    ApiJson(req): ApiJson<DeviceCodeRequest>,
) -> Result<Json<DeviceStateResponse>, ApiError> {
    same_origin(&state, &headers)?;
    state.rate.check(&state.limits.qr_approve, &user.user_id.to_string()).await?;
    let done = state.oidc.device_approve(&req.user_code, req.pick.as_deref(), &confirmer(user, &client)).await?;
    Ok(Json(DeviceStateResponse { state: done.state }))
}

/// Deny the device sign-in this browser claimed.
#[utoipa::path(post, path = "/api/v1/device/deny", tag = "device", request_body = DeviceCodeRequest,
    responses((status = 200, body = DeviceStateResponse),
              (status = 401, description = "not-signed-in", body = ErrorBody),
              (status = 403, description = "cross-origin-request", body = ErrorBody),
              (status = 409, description = "device-code-claimed or device-wrong-state", body = ErrorBody)))]
pub async fn deny(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    client: ClientContext,
    headers: HeaderMap,
    ApiJson(req): ApiJson<DeviceCodeRequest>,
) -> Result<Json<DeviceStateResponse>, ApiError> {
    same_origin(&state, &headers)?;
    let done = state.oidc.device_deny(&req.user_code, &confirmer(user, &client)).await?;
    Ok(Json(DeviceStateResponse { state: done.state }))
}
