//! `GET /insights`: ranked statements of where a segment's sign-ins differ from the rest
//! of its flow, and segments that dropped against their own earlier baseline, each with
//! its numbers, sample size and significance (see `core::observe::insights`). Read from
//! the journey table's finished journeys. Operator token required.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use handoff_core::clock::now_ms;
use handoff_core::observe::views::{self, InsightList, insight_window};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{invalid_query, time_query};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Operator;
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/insights", get(insights))
}

/// The window.
#[derive(Debug, Deserialize, IntoParams)]
pub struct InsightParams {
    /// Journeys started at or after (RFC 3339 or ms; default: 7 days ago).
    pub from: Option<String>,
    /// Journeys started before (default: now).
    pub to: Option<String>,
}

/// Where a segment differs from the rest, and drops against a segment's own baseline.
#[utoipa::path(get, path = "/api/v1/insights", tag = "journeys", params(InsightParams),
    security(("operator" = [])),
    responses((status = 200, body = InsightList),
              (status = 400, description = "invalid-query", body = ErrorBody),
              (status = 401, description = "operator-token-required", body = ErrorBody),
              (status = 403, description = "operator-token-invalid", body = ErrorBody)))]
pub async fn insights(
    _: Operator,
    State(state): State<AppState>,
    Query(p): Query<InsightParams>,
) -> Result<Json<InsightList>, ApiError> {
    let (from, to) =
        insight_window(time_query("from", p.from.as_deref())?, time_query("to", p.to.as_deref())?, now_ms());
    if from >= to {
        return Err(invalid_query("from must be before to"));
    }
    Ok(Json(InsightList { insights: views::insights(state.journeys.as_ref(), from, to).await? }))
}
