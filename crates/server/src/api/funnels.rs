//! `GET /funnels`: a flow's steps with how many journeys reached each, conversion, time to
//! session and the drop-off by root cause, optionally broken down by a segment. Computed
//! from the journey table (each row keeps a bitmask of the steps it reached and its root
//! cause), never from raw events. Operator token required.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use handoff_core::DomainError;
use handoff_core::clock::Millis;
use handoff_core::observe::FLOWS;
use handoff_core::observe::diagnosis::{cause, steps_of};
use handoff_core::storage::{FunnelCounts, FunnelQuery, Journeys, Segment};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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
    /// `passkey-local`, `cross-device`, `qr-approval` or `fallback`.
    pub flow: Option<String>,
    /// Journeys started at or after (RFC 3339 or ms since the epoch).
    pub from: Option<String>,
    /// Journeys started before.
    pub to: Option<String>,
    /// Break down by `os`, `browser`, `formFactor`, `appVersion`, `mobileOs` or `mobileBrowser`.
    pub by: Option<String>,
}

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
    Ok(Json(build_funnel(state.journeys.as_ref(), &query).await?))
}

/// The segment with this query-string name (`os`, `browser`, …).
pub fn parse_segment(name: &str) -> Option<Segment> {
    Segment::ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// A flow's funnel from the journey table (shared by the API and `handoff report`).
pub async fn build_funnel(journeys: &dyn Journeys, q: &FunnelQuery) -> Result<FunnelResponse, DomainError> {
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
