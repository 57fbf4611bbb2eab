//! `GET /insights`: ranked statements of where a segment's sign-ins differ from the rest
//! of its flow, and segments that dropped against their own earlier baseline, each with
//! its numbers, sample size and significance (see `core::observe::insights`). Read from
//! the journey table's finished journeys. Operator token required.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use handoff_core::DomainError;
use handoff_core::clock::{Millis, now_ms};
use handoff_core::observe::insights::{Insight, baseline_drops, rank, segment_insights};
use handoff_core::storage::{Journeys, Segment};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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

/// Ranked insights.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InsightList {
    /// Strongest first.
    pub insights: Vec<Insight>,
}

const DAY: i64 = 86_400_000;

/// The window insights read: `to` defaults to now, `from` to a week before `to`.
pub fn window(from: Option<Millis>, to: Option<Millis>) -> (Millis, Millis) {
    let to = to.unwrap_or_else(now_ms);
    (from.unwrap_or(to - 7 * DAY), to)
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
    let (from, to) = window(time_query("from", p.from.as_deref())?, time_query("to", p.to.as_deref())?);
    if from >= to {
        return Err(invalid_query("from must be before to"));
    }
    Ok(Json(InsightList { insights: compute(state.journeys.as_ref(), from, to).await? }))
}

/// Insights of journeys started in `[from, to)`; the baseline is the window of the same
/// length just before (shared by the API and `handoff report`).
pub async fn compute(journeys: &dyn Journeys, from: Millis, to: Millis) -> Result<Vec<Insight>, DomainError> {
    let earlier_from = from - (to - from);
    // Two scans (this window and the one before), seen along each segment dimension.
    let now = journeys.outcome_counts(from, to).await?;
    let before = journeys.outcome_counts(earlier_from, from).await?;
    let mut found = Vec::new();
    for (i, (name, _)) in Segment::ALL.iter().enumerate() {
        let now: Vec<_> = now.iter().map(|c| c.along(i)).collect();
        let before: Vec<_> = before.iter().map(|c| c.along(i)).collect();
        found.extend(segment_insights(name, &now));
        found.extend(baseline_drops(name, &now, &before));
    }
    Ok(rank(found))
}
