//! `GET /journeys/{journeyId}` and `GET /journeys`: the operator's support lookup. A
//! journey is read from its stored facts (kept up to date as events arrive) and diagnosed
//! on the way out; its events come in the order they happened, each device's clock
//! corrected onto the server's. Both need the operator token.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use handoff_core::domain::JourneyId;
use handoff_core::observe::views::{JourneyPage, JourneySearch, JourneyView, journey_page, journey_view};

use crate::error::{ApiError, ErrorBody};
use crate::extract::Operator;
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/journeys", get(search)).route("/journeys/{journey_id}", get(one))
}

/// One journey: events in order, phases observed or inferred, outcome, root cause,
/// evidence, action and segments.
#[utoipa::path(get, path = "/api/v1/journeys/{journeyId}", tag = "journeys",
    params(("journeyId" = String, Path, description = "the journey's UUID")),
    security(("operator" = [])),
    responses((status = 200, body = JourneyView),
              (status = 400, description = "invalid-journey-id", body = ErrorBody),
              (status = 401, description = "operator-token-required", body = ErrorBody),
              (status = 403, description = "operator-token-invalid", body = ErrorBody),
              (status = 404, description = "journey-not-found", body = ErrorBody)))]
pub async fn one(
    _: Operator,
    State(state): State<AppState>,
    Path(journey_id): Path<String>,
) -> Result<Json<JourneyView>, ApiError> {
    let id = JourneyId::parse(&journey_id)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid-journey-id", "journeyId is not a UUID"))?;
    let view = journey_view(state.journeys.as_ref(), id).await?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "journey-not-found", format!("no journey {id} has been recorded"))
    })?;
    Ok(Json(view))
}

/// Journeys matching the filters, newest first (support lookup).
#[utoipa::path(get, path = "/api/v1/journeys", tag = "journeys", params(JourneySearch),
    security(("operator" = [])),
    responses((status = 200, body = JourneyPage),
              (status = 400, description = "invalid-query", body = ErrorBody),
              (status = 401, description = "operator-token-required", body = ErrorBody),
              (status = 403, description = "operator-token-invalid", body = ErrorBody)))]
pub async fn search(
    _: Operator,
    State(state): State<AppState>,
    Query(q): Query<JourneySearch>,
) -> Result<Json<JourneyPage>, ApiError> {
    Ok(Json(journey_page(state.journeys.as_ref(), q).await?))
}
