//! The device side of RFC 8628: `POST /oauth2/device_authorization` (a form body with
//! client authentication, answered in JSON or with an RFC 6749 §5.2 error; rate-limited per
//! address) and the verification page `GET /device`, which records that a scanned code's
//! page opened and then serves the page that claims, shows and approves it
//! (`assets/device.js`, calling `api/device.rs`).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use handoff_core::oidc::device::DeviceRequester;
use serde::Deserialize;
use serde_json::json;

use super::no_store_json;
use super::token::{Form, error_response};
use crate::extract::ClientContext;
use crate::limits::ip_key;
use crate::state::AppState;

/// `POST /oauth2/device_authorization`.
pub async fn authorize(
    State(state): State<AppState>,
    client: ClientContext,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = ip_key(client.ip.as_deref().and_then(|ip| ip.parse().ok()));
    if let Err(refused) = state.rate.check(&state.limits.device_authorization, &ip).await {
        return no_store_json(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": "temporarily_unavailable", "error_description": refused.message()}),
        );
    }
    let result = async {
        let form = Form::parse(&headers, &body)?;
        let creds = form.credentials(&headers)?;
        let device = DeviceRequester {
            place: state.qr.place_of(client.ip.as_deref()).and_then(|p| p.label()),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        };
        state.oidc.device_authorize(&creds, form.get("scope").as_deref(), device).await
    }
    .await;
    match result {
        Ok(answer) => no_store_json(StatusCode::OK, serde_json::to_value(answer).unwrap_or_default()),
        Err(e) => error_response(&headers, e),
    }
}

/// The verification page's query.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// Present when the QR (`verification_uri_complete`) was scanned.
    user_code: Option<String>,
}

/// `GET /device`: the verification page.
pub async fn page(State(state): State<AppState>, client: ClientContext, Query(q): Query<PageQuery>) -> Response {
    if let Some(code) = q.user_code.as_deref() {
        state.oidc.device_page_opened(code, client.ip.as_deref(), client.user_agent.as_deref()).await;
    }
    crate::pages::device_page()
}
