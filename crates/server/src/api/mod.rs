//! The public HTTP API v1 (PRODUCT.md §5), one router per area, merged under `/api/v1`.
//! Unknown paths get a JSON 404 so integrators never parse an HTML error page.

pub mod clients;
pub mod cors;
pub mod device;
pub mod dto;
pub mod events;
pub mod funnels;
pub mod insights;
pub mod journeys;
pub mod login;
pub mod passkeys;
pub mod qr;
pub mod recovery;
pub mod session;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;

use axum::http::StatusCode;
use handoff_core::clock::{Millis, parse_time};

use crate::error::ApiError;
use crate::state::AppState;

/// 400 `invalid-query` with a sentence naming the parameter.
pub(crate) fn invalid_query(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid-query", message)
}

/// An optional time query parameter: RFC 3339 or milliseconds since the epoch.
pub(crate) fn time_query(name: &str, value: Option<&str>) -> Result<Option<Millis>, ApiError> {
    value
        .map(|v| {
            parse_time(v)
                .ok_or_else(|| invalid_query(format!("{name} must be RFC 3339 or milliseconds since the epoch")))
        })
        .transpose()
}

/// Largest request body accepted, in bytes. A WebAuthn response with an RSA key and a
/// full attestation chain is well under this.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// All `/api/v1` routes.
pub fn router() -> Router<AppState> {
    let v1 = Router::new()
        .merge(passkeys::router())
        .merge(clients::router())
        .merge(webhooks::router())
        .merge(login::router())
        .merge(session::router())
        .merge(qr::router())
        .merge(device::router())
        .merge(recovery::router())
        .merge(events::router())
        .merge(journeys::router())
        .merge(funnels::router())
        .merge(insights::router())
        .merge(crate::openapi::router())
        .fallback(|| async { ApiError::not_found() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new().nest("/api/v1", v1)
}
