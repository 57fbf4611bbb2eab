//! The operators' read model: what the API (`/api/v1/funnels`, `/insights`, `/journeys`),
//! the dashboard and `handoff report` all present, computed once here from the journey
//! table and its rollups (through [`Journeys`]), never from raw events: a flow's funnel
//! with conversion, time to session and drop-off by root cause; ranked insights; a journey
//! with its events in order and its diagnosis; a page of journeys matching a search.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::DomainError;
use crate::clock::{Millis, parse_time, rfc3339};
use crate::domain::JourneyId;
use crate::observe::diagnosis::{CAUSES, cause, steps_of};
use crate::observe::insights::{Insight, baseline_drops, rank, segment_insights};
use crate::observe::{Environment, FLOWS, JourneyFacts, Outcome, Phase, RootCause, diagnose};
use crate::storage::{FunnelCounts, FunnelQuery, JourneyQuery, JourneyRecord, Journeys, Segment, StoredEvent};

/// 400 `invalid-query`, naming the parameter.
fn invalid_query(message: impl Into<String>) -> DomainError {
    DomainError::invalid("invalid-query", message)
}

/// An optional time parameter: RFC 3339 or milliseconds since the epoch.
pub fn time_param(name: &str, value: Option<&str>) -> Result<Option<Millis>, DomainError> {
    value
        .map(|v| {
            parse_time(v)
                .ok_or_else(|| invalid_query(format!("{name} must be RFC 3339 or milliseconds since the epoch")))
        })
        .transpose()
}

// --- funnels -------------------------------------------------------------------------

/// One step of the funnel.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelStep {
    /// Step name, e.g. `scanned`.
    pub name: String,
    /// Journeys that reached it (observed, or implied by a later step).
    pub count: u64,
    /// Share of the flow's journeys that reached it (0–1).
    pub conversion: f64,
    /// Share of the previous step's journeys that reached it (0–1).
    pub step_conversion: f64,
    /// Median time from the first event to this step, in ms (the session step only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<Millis>,
    /// 90th percentile of that time, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<Millis>,
    /// 99th percentile of that time, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<Millis>,
}

/// Journeys that ended without a session, by root cause.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DropOff {
    /// Root cause code.
    pub root_cause: String,
    /// Journeys.
    pub count: u64,
    /// Share of the flow's unsuccessful finished journeys (0–1).
    pub share: f64,
    /// The fix to test first.
    pub action: Option<String>,
}

/// One segment's funnel.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SegmentFunnel {
    /// The segment's value (`unknown` when no device reported it).
    pub segment: String,
    /// Journeys in it.
    pub journeys: u64,
    /// Its steps.
    pub steps: Vec<FunnelStep>,
}

/// A flow's funnel.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelResponse {
    /// The flow.
    pub flow: String,
    /// Journeys of the flow in the window.
    pub journeys: u64,
    /// Its steps in order.
    pub steps: Vec<FunnelStep>,
    /// Unsuccessful journeys by root cause, most first.
    pub drop_off: Vec<DropOff>,
    /// Per segment, largest first, when `by` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Vec<SegmentFunnel>>,
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0 }
}

/// Time-to-session percentiles the session step carries.
const PERCENTILES: [f64; 3] = [0.5, 0.9, 0.99];

fn steps_view(flow: &str, counts: &FunnelCounts, times: [Option<Millis>; 3]) -> Vec<FunnelStep> {
    let names = steps_of(Some(flow));
    names
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let count = counts.reached.get(i).copied().unwrap_or(0);
            let previous = if i == 0 { counts.journeys } else { counts.reached.get(i - 1).copied().unwrap_or(0) };
            let last = i + 1 == names.len();
            FunnelStep {
                name: step.name.to_owned(),
                count,
                conversion: share(count, counts.journeys),
                step_conversion: share(count, previous),
                p50_ms: if last { times[0] } else { None },
                p90_ms: if last { times[1] } else { None },
                p99_ms: if last { times[2] } else { None },
            }
        })
        .collect()
}

/// The segment with this query-string name (`os`, `browser`, …).
pub fn parse_segment(name: &str) -> Option<Segment> {
    Segment::ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// A flow's funnel from the journey table (shared by the API and `handoff report`).
pub async fn funnel(journeys: &dyn Journeys, q: &FunnelQuery) -> Result<FunnelResponse, DomainError> {
    let flow = q.flow.clone();
    let mut query = FunnelQuery { by: None, ..q.clone() };
    let steps = steps_of(Some(&flow)).len();
    let total = journeys.funnel(&query, steps).await?.pop().unwrap_or(FunnelCounts {
        segment: None,
        journeys: 0,
        reached: vec![0; steps],
    });
    let times = journeys.time_to_session(&query, &PERCENTILES).await?;
    let times = [0, 1, 2].map(|i| times.get(i).copied().flatten());
    let drops = journeys.drop_offs(&query).await?;
    let failed: u64 = drops.iter().map(|(_, n)| n).sum();
    let drop_off = drops
        .into_iter()
        .map(|(code, count)| DropOff {
            action: cause(&code).map(|c| c.action.to_owned()),
            share: share(count, failed),
            root_cause: code,
            count,
        })
        .collect();
    let breakdown = match q.by {
        None => None,
        Some(segment) => {
            query.by = Some(segment);
            let rows = journeys.funnel(&query, steps).await?;
            Some(
                rows.iter()
                    .map(|r| SegmentFunnel {
                        segment: r.segment.clone().unwrap_or_else(|| "unknown".into()),
                        journeys: r.journeys,
                        steps: steps_view(&flow, r, [None; 3]),
                    })
                    .collect(),
            )
        }
    };
    Ok(FunnelResponse { steps: steps_view(&flow, &total, times), journeys: total.journeys, flow, drop_off, breakdown })
}

// --- insights ------------------------------------------------------------------------

/// Ranked insights.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InsightList {
    /// Strongest first.
    pub insights: Vec<Insight>,
}

const DAY: i64 = 86_400_000;

/// The window insights read: `to` defaults to `now`, `from` to a week before `to`.
pub fn insight_window(from: Option<Millis>, to: Option<Millis>, now: Millis) -> (Millis, Millis) {
    let to = to.unwrap_or(now);
    (from.unwrap_or(to - 7 * DAY), to)
}

/// Insights of journeys started in `[from, to)`; the baseline is the window of the same
/// length just before (shared by the API and `handoff report`).
pub async fn insights(journeys: &dyn Journeys, from: Millis, to: Millis) -> Result<Vec<Insight>, DomainError> {
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

// --- journeys ------------------------------------------------------------------------

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
    /// The application (OIDC client id) the sign-in was for, when it came through the
    /// provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
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
    /// `passkey-local`, `cross-device`, `qr-approval`, `fallback` or `device-grant`.
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
                let server_only = crate::observe::journey::SERVER_ONLY.contains(&e.name.as_str());
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
            client: f.client.clone(),
        },
        events,
    }
}

/// One journey with its events in order and its diagnosis, or `None` when none was
/// recorded (the API's answer and the dashboard's timeline).
pub async fn journey_view(journeys: &dyn Journeys, id: JourneyId) -> Result<Option<JourneyView>, DomainError> {
    let Some(record) = journeys.journey(id).await? else { return Ok(None) };
    let events = journeys.events_of(id).await?;
    Ok(Some(view(&record, Some(events))))
}

const OUTCOMES: &[&str] = &["success", "abandoned", "failed"];

fn one_of(name: &str, value: Option<String>, allowed: &[&str]) -> Result<Option<String>, DomainError> {
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

/// The page of journeys a search asks for, newest first; a bad filter is a 400 naming the
/// parameter (the API's answer and the dashboard's search).
pub async fn journey_page(journeys: &dyn Journeys, q: JourneySearch) -> Result<JourneyPage, DomainError> {
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
        from: time_param("from", q.from.as_deref())?,
        to: time_param("to", q.to.as_deref())?,
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
