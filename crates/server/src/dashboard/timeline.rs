//! One journey's timeline (`GET /dashboard/journeys/{id}`), for support: what the
//! diagnosis says (outcome, root cause, class, whether an event shows it or the evidence
//! points to it, the evidence and the fix to test first), the flow's phases — each marked
//! in words as observed, inferred (and from which later step) or not reached, never by
//! colour alone — and every event in the order it happened. The journey is read through
//! `core::observe::views::journey_view`, the function behind `GET /api/v1/journeys/{id}`, so the
//! page and the API cannot disagree; this module only arranges it for reading.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use handoff_core::clock::rfc3339;
use handoff_core::domain::JourneyId;
use handoff_core::observe::diagnosis::steps_of;
use handoff_core::observe::{Basis, CauseClass};
use serde::Serialize;

use super::views::{duration, internal};
use super::{Operator, render};
use crate::state::AppState;
use handoff_core::observe::views::{EventView, JourneyView, SegmentView, journey_view};

/// Attributes shown per event (the API has them all).
const MAX_ATTRS: usize = 12;
/// Longest attribute value shown.
const MAX_VALUE_CHARS: usize = 160;

/// `observed` / `inferred`.
pub fn basis_word(b: Basis) -> &'static str {
    match b {
        Basis::Observed => "observed",
        Basis::Inferred => "inferred",
    }
}

#[derive(Debug, Serialize)]
struct PhaseRow {
    name: &'static str,
    /// `observed`, `inferred` or `not-reached` (also the CSS class).
    status: &'static str,
    /// What the page says about it.
    label: String,
    at: Option<String>,
}

#[derive(Debug, Serialize)]
struct EventRow {
    at: String,
    device: String,
    name: String,
    trusted: bool,
    ts: String,
    received_at: String,
    attrs: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
struct CauseView {
    code: &'static str,
    class: &'static str,
    basis: &'static str,
    basis_explained: &'static str,
    evidence: Vec<String>,
    action: &'static str,
}

#[derive(Debug, Serialize)]
struct Timeline {
    journey_id: String,
    identifier: Option<String>,
    flow: Option<String>,
    state: &'static str,
    outcome: Option<&'static str>,
    cause: Option<CauseView>,
    started_at: String,
    last_activity_at: String,
    finished_at: Option<String>,
    time_to_session: String,
    desktop: Option<String>,
    mobile: Option<String>,
    idle_seconds: u64,
    phases: Vec<PhaseRow>,
    events: Vec<EventRow>,
    search_link: Option<String>,
}

fn environment(s: Option<&SegmentView>) -> Option<String> {
    let s = s?;
    let parts: Vec<&str> =
        [s.os.as_deref(), s.browser.as_deref(), s.form_factor.as_deref()].into_iter().flatten().collect();
    let mut text = parts.join(" · ");
    if let Some(v) = &s.app_version {
        text.push_str(&format!(" · app {v}"));
    }
    (!text.is_empty()).then_some(text)
}

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(MAX_VALUE_CHARS - 1).collect();
    out.push('…');
    out
}

fn attrs(v: &serde_json::Value) -> Vec<(String, String)> {
    match v {
        serde_json::Value::Object(map) => map
            .iter()
            .take(MAX_ATTRS)
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (clip(k), clip(&text))
            })
            .collect(),
        serde_json::Value::Null => Vec::new(),
        other => vec![("value".into(), clip(&other.to_string()))],
    }
}

fn event_row(e: &EventView) -> EventRow {
    EventRow {
        at: e.at.clone(),
        device: e.device.clone(),
        name: e.name.clone(),
        trusted: e.trusted,
        ts: e.ts.clone(),
        received_at: e.received_at.clone(),
        attrs: attrs(&e.attrs),
    }
}

/// Every step of the journey's flow, each observed, inferred or not reached.
fn phase_rows(j: &JourneyView) -> Vec<PhaseRow> {
    steps_of(j.flow.as_deref())
        .iter()
        .map(|step| match j.phases.iter().find(|p| p.name == step.name) {
            Some(p) if p.observed => PhaseRow {
                name: step.name,
                status: "observed",
                label: format!("observed — shown by {}", p.evidence),
                at: p.at.map(rfc3339),
            },
            Some(p) => {
                PhaseRow {
                    name: step.name, status: "inferred", label: format!("inferred — {}", p.evidence), at: None
                }
            }
            None => PhaseRow {
                name: step.name,
                status: "not-reached",
                label: "not reached — no event shows it and no later step implies it".into(),
                at: None,
            },
        })
        .collect()
}

fn timeline_view(j: &JourneyView, idle_seconds: u64) -> Timeline {
    let cause = j.root_cause.as_ref().map(|r| CauseView {
        code: r.code,
        class: match r.class {
            CauseClass::UserAbandonment => "user abandonment",
            CauseClass::TechnicalFailure => "technical failure",
        },
        basis: basis_word(r.basis),
        basis_explained: match r.basis {
            Basis::Observed => "an event shows it",
            Basis::Inferred => "timing, errors or the environment point to it; no event shows it",
        },
        evidence: r.evidence.clone(),
        action: r.action,
    });
    let search_link = j.identifier.as_ref().map(|i| {
        let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("identifier", i).finish();
        format!("/dashboard/journeys?{q}")
    });
    Timeline {
        journey_id: j.journey_id.clone(),
        identifier: j.identifier.clone(),
        flow: j.flow.clone(),
        state: j.state,
        outcome: j.outcome.map(|o| o.as_str()),
        cause,
        started_at: j.started_at.clone(),
        last_activity_at: j.last_activity_at.clone(),
        finished_at: j.finished_at.clone(),
        time_to_session: duration(j.time_to_session_ms),
        desktop: environment(j.segments.desktop.as_ref()),
        mobile: environment(j.segments.mobile.as_ref()),
        idle_seconds,
        phases: phase_rows(j),
        events: j.events.as_deref().unwrap_or_default().iter().map(event_row).collect(),
        search_link,
    }
}

/// `GET /dashboard/journeys/{id}`.
pub async fn timeline(_: Operator, State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let Ok(id) = JourneyId::parse(&raw) else {
        return render::message(
            StatusCode::BAD_REQUEST,
            true,
            "Not a journey id",
            "The journey id in this address is not a UUID. Copy it again from the search results or the API.",
        );
    };
    match journey_view(state.journeys.as_ref(), id).await {
        Ok(Some(j)) => {
            let page = timeline_view(&j, state.journey_idle.as_secs());
            render::page(StatusCode::OK, "timeline.html", &format!("Journey {id}"), true, &page)
        }
        Ok(None) => render::message(
            StatusCode::NOT_FOUND,
            true,
            "Journey not found",
            &format!("No journey {id} has been recorded. Events may still be on their way; search again shortly."),
        ),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attributes_read_as_text_and_are_clipped() {
        let a = attrs(&json!({"errorName": "NotAllowedError", "elapsedMs": 1200, "long": "x".repeat(500)}));
        assert!(a.contains(&("errorName".into(), "NotAllowedError".into())));
        assert!(a.contains(&("elapsedMs".into(), "1200".into())));
        assert!(a.iter().all(|(_, v)| v.chars().count() <= MAX_VALUE_CHARS));
        assert!(attrs(&json!(null)).is_empty());
        assert_eq!(attrs(&json!([1, 2])), vec![("value".to_owned(), "[1,2]".to_owned())]);
    }
}
