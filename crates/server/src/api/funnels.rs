//! `GET /funnels`: a flow's steps with how many journeys reached each, conversion, time to
//! session and the drop-off by root cause, optionally broken down by a segment. Computed
//! from the journey table (each row keeps a bitmask of the steps it reached and its root
//! cause), never from raw events. Operator token required.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use handoff_core::observe::FLOWS;
use handoff_core::observe::views::{self, FunnelResponse, parse_segment};
use handoff_core::storage::{FunnelQuery, Segment};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{invalid_query, time_query};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Operator;
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/funnels", get(funnel))
}

/// Funnel filters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct FunnelParams {
    /// `passkey-local`, `cross-device`, `qr-approval`, `fallback` or `device-grant`.
    pub flow: Option<String>,
    /// Journeys started at or after (RFC 3339 or ms since the epoch).
    pub from: Option<String>,
    /// Journeys started before.
    pub to: Option<String>,
    /// Break down by `os`, `browser`, `formFactor`, `appVersion`, `mobileOs`, `mobileBrowser` or `client` (the OIDC client signed in to).
    pub by: Option<String>,
}

/// A flow's funnel: steps, conversion, time to session, drop-off by root cause, breakdown.
#[utoipa::path(get, path = "/api/v1/funnels", tag = "journeys", params(FunnelParams),
    security(("operator" = [])),
    responses((status = 200, body = FunnelResponse),
              (status = 400, description = "invalid-query", body = ErrorBody),
              (status = 401, description = "operator-token-required", body = ErrorBody),
              (status = 403, description = "operator-token-invalid", body = ErrorBody)))]
pub async fn funnel(
    _: Operator,
    State(state): State<AppState>,
    Query(p): Query<FunnelParams>,
) -> Result<Json<FunnelResponse>, ApiError> {
    let flow = match p.flow.as_deref() {
        Some(f) if FLOWS.contains(&f) => f.to_owned(),
        _ => return Err(invalid_query(format!("flow is required: one of {}", FLOWS.join(", ")))),
    };
    let by = match p.by.as_deref() {
        None | Some("") => None,
        Some(b) => Some(parse_segment(b).ok_or_else(|| {
            let names: Vec<&str> = Segment::ALL.iter().map(|(n, _)| *n).collect();
            invalid_query(format!("by must be one of {}", names.join(", ")))
        })?),
    };
    let query =
        FunnelQuery { flow, from: time_query("from", p.from.as_deref())?, to: time_query("to", p.to.as_deref())?, by };
    Ok(Json(views::funnel(state.journeys.as_ref(), &query).await?))
}
