//! The public HTTP API v1 (PRODUCT.md §5), one router per area, merged under `/api/v1`.
//! Unknown paths get a JSON 404 so integrators never parse an HTML error page.

pub mod dto;
pub mod events;
pub mod funnels;
pub mod insights;
pub mod journeys;
pub mod login;
pub mod passkeys;
pub mod qr;
pub mod session;

use axum::Router;
use axum::extract::DefaultBodyLimit;

use crate::error::ApiError;
use crate::state::AppState;

/// Largest request body accepted, in bytes. A WebAuthn response with an RSA key and a
/// full attestation chain is well under this.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// All `/api/v1` routes.
pub fn router() -> Router<AppState> {
    let v1 = Router::new()
        .merge(passkeys::router())
        .merge(login::router())
        .merge(session::router())
        .merge(qr::router())
        .merge(events::router())
        .merge(journeys::router())
        .merge(funnels::router())
        .merge(insights::router())
        .merge(crate::openapi::router())
        .fallback(|| async { ApiError::not_found() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new().nest("/api/v1", v1)
}
