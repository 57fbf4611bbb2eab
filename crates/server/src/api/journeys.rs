//! `GET /journeys/{journeyId}` and `GET /journeys`: the operator's support lookup. A
//! journey is read from its stored facts (kept up to date as events arrive) and diagnosed
//! on the way out; its events come in the order they happened, each device's clock
//! corrected onto the server's. Both need the operator token.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use handoff_core::DomainError;
use handoff_core::clock::{Millis, rfc3339};
use handoff_core::domain::JourneyId;
use handoff_core::observe::diagnosis::CAUSES;
use handoff_core::observe::{Environment, FLOWS, JourneyFacts, Outcome, Phase, RootCause, diagnose};
use handoff_core::storage::{JourneyQuery, JourneyRecord, Journeys, StoredEvent};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{invalid_query, time_query};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Operator;
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/journeys", get(search)).route("/journeys/{journey_id}", get(one))
}

/// The environment of one device of a journey.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentView {
    /// Operating system.
    pub os: Option<String>,
    /// Browser.
    pub browser: Option<String>,
    /// `desktop`, `phone`, `tablet`, …
    pub form_factor: Option<String>,
    /// Native app version (`attrs.appVersion`).
    pub app_version: Option<String>,
}

/// The devices of a journey.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Segments {
    /// The desktop (or the device that signs in).
    pub desktop: Option<SegmentView>,
    /// The phone.
    pub mobile: Option<SegmentView>,
}

/// One event of a journey.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// Its id: the client's `eventId` (unique within the journey) or one the server made.
    pub event_id: String,
    /// Event name.
    pub name: String,
    /// `desktop`, `mobile` or `server`.
    pub device: String,
    /// The flow it named.
    pub flow: Option<String>,
    /// The emitter's clock.
    pub ts: String,
    /// The server's clock on receipt.
    pub received_at: String,
    /// Its time on the server's clock (the emitter's clock corrected by its offset).
    pub at: String,
    /// `false` for a client event using a server-only name: stored and shown, never evidence.
    pub trusted: bool,
    /// Free attributes.
    #[schema(value_type = Object)]
    pub attrs: serde_json::Value,
}

/// A journey with its diagnosis.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JourneyView {
    /// The journey.
    pub journey_id: String,
    /// The flow tried last.
    pub flow: Option<String>,
    /// `open` while events may still come, `finished` after a session or the idle time.
    pub state: &'static str,
    /// `success`, `abandoned` or `failed`; null while open without a session.
    pub outcome: Option<Outcome>,
    /// Why it did not succeed; null on success and while open.
    pub root_cause: Option<RootCause>,
    /// The phases of the flow that happened: `observed` only when an event shows it.
    pub phases: Vec<Phase>,
    /// The identifier typed, when the server's decision saw one.
    pub identifier: Option<String>,
    /// First event (server clock).
    pub started_at: String,
    /// Latest event received.
    pub last_activity_at: String,
    /// When it was finished.
    pub finished_at: Option<String>,
    /// First event to session, in ms.
    pub time_to_session_ms: Option<Millis>,
    /// The devices' environments.
    pub segments: Segments,
    /// Events in the order they happened (only in the single-journey answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
}

/// A page of journeys.
#[derive(Debug, Serialize, ToSchema)]
pub struct JourneyPage {
    /// Newest first.
    pub journeys: Vec<JourneyView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Search filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct JourneySearch {
    /// Exact identifier.
    pub identifier: Option<String>,
    /// Started at or after (RFC 3339 or ms since the epoch).
    pub from: Option<String>,
    /// Started before (RFC 3339 or ms since the epoch).
    pub to: Option<String>,
    /// `success`, `abandoned` or `failed`.
    pub outcome: Option<String>,
    /// A root cause code, e.g. `scan-failure`.
    pub root_cause: Option<String>,
    /// `passkey-local`, `cross-device`, `qr-approval` or `fallback`.
    pub flow: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next` of the previous page.
    pub cursor: Option<String>,
}

fn segment(env: Option<&Environment>) -> Option<SegmentView> {
    env.map(|e| SegmentView {
        os: e.os.clone(),
        browser: e.browser.clone(),
        form_factor: e.form_factor.clone(),
        app_version: e.app_version.clone(),
    })
}

fn view(record: &JourneyRecord, events: Option<Vec<StoredEvent>>) -> JourneyView {
    let f: &JourneyFacts = &record.facts;
    let d = diagnose(f, record.finished_at.is_some());
    let events = events.map(|mut list| {
        list.sort_by_key(|e| (f.corrected(&e.device, e.ts), e.received_at));
        list.into_iter()
            .map(|e| {
                let server_only = handoff_core::observe::journey::SERVER_ONLY.contains(&e.name.as_str());
                EventView {
                    attrs: e.attrs_value(),
                    at: rfc3339(f.corrected(&e.device, e.ts)),
                    trusted: !server_only || e.device == "server",
                    event_id: e.event_id,
                    name: e.name,
                    device: e.device,
                    flow: e.flow,
                    ts: rfc3339(e.ts),
                    received_at: rfc3339(e.received_at),
                }
            })
            .collect()
    });
    JourneyView {
        journey_id: record.journey_id.to_string(),
        flow: d.flow,
        state: if record.finished_at.is_some() || d.outcome == Some(Outcome::Success) { "finished" } else { "open" },
        outcome: d.outcome,
        root_cause: d.root_cause,
        phases: d.phases,
        identifier: f.identifier.clone(),
        started_at: rfc3339(f.started_at()),
        last_activity_at: rfc3339(f.last_received),
        finished_at: record.finished_at.map(rfc3339),
        time_to_session_ms: f.time_to_session(),
        segments: Segments {
            desktop: segment(f.environment.get("desktop")),
            mobile: segment(f.environment.get("mobile")),
        },
        events,
    }
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

/// One journey with its events in order and its diagnosis, or `None` when none was
/// recorded (the API's answer and the dashboard's timeline).
pub async fn journey_view(journeys: &dyn Journeys, id: JourneyId) -> Result<Option<JourneyView>, DomainError> {
    let Some(record) = journeys.journey(id).await? else { return Ok(None) };
    let events = journeys.events_of(id).await?;
    Ok(Some(view(&record, Some(events))))
}

const OUTCOMES: &[&str] = &["success", "abandoned", "failed"];

fn one_of(name: &str, value: Option<String>, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => {
            Err(invalid_query(format!("{name} must be one of {}", allowed.join(", "))))
        }
        other => Ok(other),
    }
}

fn parse_cursor(cursor: &str) -> Option<(Millis, JourneyId)> {
    let (at, id) = cursor.split_once('_')?;
    Some((at.parse().ok()?, JourneyId::parse(id).ok()?))
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
    Ok(Json(search_page(state.journeys.as_ref(), q).await?))
}

/// The page of journeys a search asks for, newest first; a bad filter is a 400 naming the
/// parameter (the API's answer and the dashboard's search).
pub async fn search_page(journeys: &dyn Journeys, q: JourneySearch) -> Result<JourneyPage, ApiError> {
    let causes: Vec<&str> = CAUSES.iter().map(|c| c.code).collect();
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(invalid_query("limit must be between 1 and 200"));
    }
    let after = match q.cursor.as_deref() {
        Some(c) => Some(parse_cursor(c).ok_or_else(|| invalid_query("cursor is not one this server gave"))?),
        None => None,
    };
    let query = JourneyQuery {
        identifier: q.identifier.filter(|i| !i.is_empty()),
        from: time_query("from", q.from.as_deref())?,
        to: time_query("to", q.to.as_deref())?,
        outcome: one_of("outcome", q.outcome, OUTCOMES)?,
        root_cause: one_of("rootCause", q.root_cause, &causes)?,
        flow: one_of("flow", q.flow, FLOWS)?,
        after,
        // One more than asked tells whether there is a next page.
        limit: limit + 1,
    };
    let mut found = journeys.search(&query).await?;
    let more = found.len() > limit as usize;
    found.truncate(limit as usize);
    let next = if more { found.last().map(|j| format!("{}_{}", j.facts.started_at(), j.journey_id)) } else { None };
    Ok(JourneyPage { journeys: found.iter().map(|j| view(j, None)).collect(), next })
}
