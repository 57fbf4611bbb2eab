//! The overview (`GET /dashboard`) and the journey search (`GET /dashboard/journeys`).
//! The overview shows, for the chosen window, each flow's funnel as a chart and a table,
//! its breakdown by one segment, why the others did not sign in (root causes with the fix
//! to test first) and time to session, then the insights; the numbers come from
//! `report::funnels` and `report::insights`, the same as `GET /api/v1/funnels` and
//! `handoff report`. A bad query value is answered on the page, naming the parameter.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use handoff_core::clock::{Millis, now_ms, parse_time_or_age, rfc3339};
use handoff_core::domain::JourneyId;
use handoff_core::observe::FLOWS;
use handoff_core::observe::diagnosis::CAUSES;
use handoff_core::storage::Segment;
use serde::{Deserialize, Serialize};

use super::auth::Access;
use super::charts::{Bar, bar_chart};
use super::render::{self, SignIn};
use super::{Operator, timeline};
use crate::report::{self, ReportRequest};
use crate::state::AppState;
use handoff_core::observe::views::{
    FunnelResponse, FunnelStep, JourneySearch, JourneyView, journey_page, parse_segment,
};

/// The window the overview shows when none is given.
const DEFAULT_FROM: &str = "7d";
/// Rows per page of the journey search.
pub const PAGE_SIZE: u32 = 50;
/// Segments in a breakdown chart (the table has them all).
const CHART_SEGMENTS: usize = 8;

/// The overview's query.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct OverviewParams {
    /// Journeys started at or after: RFC 3339, ms, or an age (`24h`, `7d`).
    #[serde(default)]
    from: Option<String>,
    /// Journeys started before (default: now).
    #[serde(default)]
    to: Option<String>,
    /// One flow, or all.
    #[serde(default)]
    flow: Option<String>,
    /// The breakdown's segment.
    #[serde(default)]
    by: Option<String>,
    /// Set by the sign-out's redirect.
    #[serde(default, rename = "signedOut", skip_serializing)]
    signed_out: Option<String>,
}

/// A query parameter the page could not use.
#[derive(Debug, Serialize)]
pub struct BadParam {
    /// Its name, as in the URL.
    pub param: &'static str,
    /// What it must be.
    pub message: String,
}

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A time parameter: RFC 3339, ms since the epoch, or an age before now.
pub fn when(name: &'static str, value: Option<&str>, now: Millis, errors: &mut Vec<BadParam>) -> Option<Millis> {
    let v = value?;
    let parsed = parse_time_or_age(v, now);
    if parsed.is_none() {
        errors.push(BadParam {
            param: name,
            message: format!(
                "{name} must be a time (RFC 3339, e.g. 2026-01-31T09:00:00Z), milliseconds since the epoch, or an \
                 age such as 90m, 24h or 7d; got {v:?}"
            ),
        });
    }
    parsed
}

/// A parameter that must be one of `allowed`.
pub fn one_of(name: &'static str, value: Option<&str>, allowed: &[&str], errors: &mut Vec<BadParam>) -> Option<String> {
    let v = value?;
    if allowed.contains(&v) {
        return Some(v.to_owned());
    }
    errors.push(BadParam { param: name, message: format!("{name} must be one of {}; got {v:?}", allowed.join(", ")) });
    None
}

/// The options of the page's select boxes.
#[derive(Debug, Serialize)]
pub struct Choices {
    flows: &'static [&'static str],
    segments: Vec<&'static str>,
    outcomes: &'static [&'static str],
    causes: Vec<&'static str>,
}

impl Choices {
    /// Every flow, segment, outcome and root cause.
    pub fn all() -> Self {
        Self {
            flows: FLOWS,
            segments: Segment::ALL.iter().map(|(n, _)| *n).collect(),
            outcomes: &["success", "abandoned", "failed"],
            causes: CAUSES.iter().map(|c| c.code).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct StepRow {
    name: String,
    count: u64,
    conversion: String,
    step_conversion: String,
}

#[derive(Debug, Serialize)]
struct DropRow {
    root_cause: String,
    count: u64,
    share: String,
    action: Option<String>,
    link: String,
}

#[derive(Debug, Serialize)]
struct SegmentRow {
    segment: String,
    journeys: u64,
    counts: Vec<u64>,
    signed_in: String,
}

#[derive(Debug, Serialize)]
struct FlowView {
    flow: String,
    journeys: u64,
    signed_in: String,
    p50: String,
    p90: String,
    p99: String,
    chart: Option<String>,
    steps: Vec<StepRow>,
    drop_off: Vec<DropRow>,
    by: &'static str,
    breakdown_chart: Option<String>,
    breakdown: Vec<SegmentRow>,
    journeys_link: String,
}

#[derive(Debug, Serialize)]
struct InsightRow {
    statement: String,
    segment: String,
    metric: String,
    value: String,
    baseline: String,
    n: u64,
    p_value: String,
}

#[derive(Debug, Serialize)]
struct Overview {
    params: OverviewParams,
    errors: Vec<BadParam>,
    invalid: Vec<&'static str>,
    window: Option<String>,
    flows: Vec<FlowView>,
    insights: Vec<InsightRow>,
    choices: Choices,
    search: SearchParams,
    search_invalid: Vec<&'static str>,
}

/// `50.0%`.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// `850 ms`, `4.2 s`, `3.5 min`; `–` when unknown.
pub fn duration(ms: Option<Millis>) -> String {
    match ms {
        None => "–".into(),
        Some(ms) if ms < 1_000 => format!("{ms} ms"),
        Some(ms) if ms < 120_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{:.1} min", ms as f64 / 60_000.0),
    }
}

fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

fn flow_view(f: &FunnelResponse, by: &'static str, from: Millis, to: Millis) -> FlowView {
    let session = f.steps.last();
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let window = [("from", Some(from_s.as_str())), ("to", Some(to_s.as_str()))];
    let summary = f
        .steps
        .iter()
        .map(|s| format!("{} {} ({})", s.name, s.count, pct(s.conversion)))
        .collect::<Vec<_>>()
        .join(", ");
    let bars: Vec<Bar> = f.steps.iter().map(|s| Bar { label: s.name.to_string(), value: s.count as f64 }).collect();
    let chart =
        bar_chart(&bars, &format!("Funnel of the {} flow, journeys reaching each step: {summary}", f.flow), false);
    let signed_in = |steps: &[FunnelStep]| steps.last().map_or(0.0, |x| x.conversion);
    let rows = f.breakdown.as_deref().unwrap_or_default();
    let shown = &rows[..rows.len().min(CHART_SEGMENTS)];
    let breakdown_summary = shown
        .iter()
        .map(|r| format!("{} {} of {}", r.segment, pct(signed_in(&r.steps)), r.journeys))
        .collect::<Vec<_>>()
        .join(", ");
    let breakdown_bars: Vec<Bar> = shown
        .iter()
        .map(|r| Bar { label: r.segment.clone(), value: (signed_in(&r.steps) * 1000.0).round() / 10.0 })
        .collect();
    let breakdown_chart =
        bar_chart(&breakdown_bars, &format!("Signed in, by {by}, in the {} flow: {breakdown_summary}", f.flow), true);
    FlowView {
        flow: f.flow.clone(),
        journeys: f.journeys,
        signed_in: pct(signed_in(&f.steps)),
        p50: duration(session.and_then(|s| s.p50_ms)),
        p90: duration(session.and_then(|s| s.p90_ms)),
        p99: duration(session.and_then(|s| s.p99_ms)),
        chart,
        steps: f
            .steps
            .iter()
            .map(|s| StepRow {
                name: s.name.to_string(),
                count: s.count,
                conversion: pct(s.conversion),
                step_conversion: pct(s.step_conversion),
            })
            .collect(),
        drop_off: f
            .drop_off
            .iter()
            .map(|d| DropRow {
                root_cause: d.root_cause.clone(),
                count: d.count,
                share: pct(d.share),
                action: d.action.as_ref().map(ToString::to_string),
                link: format!(
                    "/dashboard/journeys?{}",
                    query_string(&[("flow", Some(&f.flow)), ("rootCause", Some(&d.root_cause)), window[0], window[1]])
                ),
            })
            .collect(),
        by,
        breakdown_chart,
        breakdown: rows
            .iter()
            .map(|r| SegmentRow {
                segment: r.segment.clone(),
                journeys: r.journeys,
                counts: r.steps.iter().map(|s| s.count).collect(),
                signed_in: pct(signed_in(&r.steps)),
            })
            .collect(),
        journeys_link: format!(
            "/dashboard/journeys?{}",
            query_string(&[("flow", Some(&f.flow)), window[0], window[1]])
        ),
    }
}

/// `GET /dashboard`: the overview, or the sign-in form (200) for a browser not signed in.
pub async fn overview(
    access: Access,
    State(state): State<AppState>,
    query: Result<Query<OverviewParams>, QueryRejection>,
) -> Response {
    let (params, unreadable) = match query {
        Ok(Query(p)) => (p, None),
        Err(e) => (OverviewParams::default(), Some(e.body_text())),
    };
    if access != Access::Granted {
        let mut form = SignIn::for_access(access, "/dashboard");
        if params.signed_out.is_some() {
            form.notice = Some("You have signed out of the dashboard.".into());
        }
        let status = if access == Access::Refused { StatusCode::FORBIDDEN } else { StatusCode::OK };
        return render::sign_in(status, &form);
    }
    let now = now_ms();
    let mut errors = Vec::new();
    if let Some(text) = unreadable {
        errors.push(BadParam { param: "query", message: format!("the query string could not be read: {text}") });
    }
    let from = when("from", blank(&params.from), now, &mut errors);
    let to = when("to", blank(&params.to), now, &mut errors);
    let flow = one_of("flow", blank(&params.flow), FLOWS, &mut errors);
    let by_asked = blank(&params.by).unwrap_or("os").to_owned();
    let by = parse_segment(&by_asked);
    if by.is_none() {
        let names: Vec<&str> = Segment::ALL.iter().map(|(n, _)| *n).collect();
        errors.push(BadParam {
            param: "by",
            message: format!("by must be one of {}; got {by_asked:?}", names.join(", ")),
        });
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or_else(|| parse_time_or_age(DEFAULT_FROM, to).unwrap_or(to));
    if errors.is_empty() && from >= to {
        errors.push(BadParam { param: "from", message: "from must be before to".into() });
    }
    let mut page = Overview {
        invalid: errors.iter().map(|e| e.param).collect(),
        params,
        errors,
        window: None,
        flows: Vec::new(),
        insights: Vec::new(),
        choices: Choices::all(),
        search: SearchParams::default(),
        search_invalid: Vec::new(),
    };
    let by_name: &'static str = Segment::ALL.iter().find(|(n, _)| *n == by_asked).map_or("os", |(n, _)| *n);
    let (Some(by), true) = (by, page.errors.is_empty()) else {
        return render::page(StatusCode::BAD_REQUEST, "overview.html", "Overview", true, &page);
    };
    let request = ReportRequest { flow, from: Some(from), to: Some(to), by: Some(by) };
    let journeys = state.journeys.as_ref();
    let found = match report::funnels(journeys, &request).await {
        Ok(f) => report::insights(journeys, &request).await.map(|i| (f, i)),
        Err(e) => Err(e),
    };
    let (funnels, insights) = match found {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    page.window = Some(format!("{} – {}", rfc3339(from), rfc3339(to)));
    page.flows = funnels.iter().map(|f| flow_view(f, by_name, from, to)).collect();
    page.insights = insights
        .iter()
        .map(|i| InsightRow {
            statement: i.statement.clone(),
            segment: i.segment.clone(),
            metric: i.metric.to_string(),
            value: pct(i.value),
            baseline: pct(i.baseline),
            n: i.n,
            p_value: format!("{:.1e}", i.significance),
        })
        .collect();
    render::page(StatusCode::OK, "overview.html", "Overview", true, &page)
}

/// A storage failure: logged once, a generic page for the person.
pub fn internal(e: handoff_core::DomainError) -> Response {
    let e = crate::error::ApiError::from(e);
    render::message(e.status(), true, "Something went wrong", e.message())
}

/// The journey search's query (the API's filters, plus a journey id to jump to).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchParams {
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default)]
    journey_id: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    root_cause: Option<String>,
    #[serde(default)]
    flow: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct ResultRow {
    journey_id: String,
    link: String,
    started_at: String,
    identifier: Option<String>,
    flow: Option<String>,
    state: &'static str,
    outcome: Option<&'static str>,
    root_cause: Option<&'static str>,
    basis: Option<&'static str>,
    desktop: String,
    time_to_session: String,
}

#[derive(Debug, Serialize)]
struct SearchPage {
    search: SearchParams,
    errors: Vec<BadParam>,
    search_invalid: Vec<&'static str>,
    choices: Choices,
    searched: bool,
    results: Vec<ResultRow>,
    next: Option<String>,
    page_size: u32,
}

fn result_row(j: &JourneyView) -> ResultRow {
    let desktop = j.segments.desktop.as_ref().map_or_else(String::new, |d| {
        [d.os.as_deref(), d.browser.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" · ")
    });
    ResultRow {
        link: format!("/dashboard/journeys/{}", j.journey_id),
        journey_id: j.journey_id.clone(),
        started_at: j.started_at.clone(),
        identifier: j.identifier.clone(),
        flow: j.flow.clone(),
        state: j.state,
        outcome: j.outcome.map(|o| o.as_str()),
        root_cause: j.root_cause.as_ref().map(|r| r.code),
        basis: j.root_cause.as_ref().map(|r| timeline::basis_word(r.basis)),
        desktop,
        time_to_session: duration(j.time_to_session_ms),
    }
}

/// `GET /dashboard/journeys`: journeys matching the filters, 50 a page, newest first; a
/// journey id that exists goes straight to its timeline.
pub async fn search(
    _: Operator,
    State(state): State<AppState>,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = query else {
        return render::message(
            StatusCode::BAD_REQUEST,
            true,
            "Unreadable search",
            "The search's query string is malformed.",
        );
    };
    let mut page = SearchPage {
        search: params.clone(),
        errors: Vec::new(),
        search_invalid: Vec::new(),
        choices: Choices::all(),
        searched: true,
        results: Vec::new(),
        next: None,
        page_size: PAGE_SIZE,
    };
    let now = now_ms();
    let mut errors = Vec::new();
    if let Some(raw) = blank(&params.journey_id) {
        let (status, message) = match JourneyId::parse(raw) {
            Ok(id) => match state.journeys.journey(id).await {
                Ok(Some(_)) => return render::see_other(&format!("/dashboard/journeys/{id}")),
                Ok(None) => (StatusCode::NOT_FOUND, format!("No journey {id} has been recorded (journeyId).")),
                Err(e) => return internal(e),
            },
            Err(_) => (StatusCode::BAD_REQUEST, format!("journeyId must be a journey's UUID; got {raw:?}")),
        };
        page.search_invalid = vec!["journeyId"];
        page.errors = vec![BadParam { param: "journeyId", message }];
        page.searched = false;
        return render::page(status, "journeys.html", "Journeys", true, &page);
    }
    let from = when("from", blank(&params.from), now, &mut errors);
    let to = when("to", blank(&params.to), now, &mut errors);
    let flow = one_of("flow", blank(&params.flow), FLOWS, &mut errors);
    let outcome = one_of("outcome", blank(&params.outcome), Choices::all().outcomes, &mut errors);
    let root_cause = one_of("rootCause", blank(&params.root_cause), &Choices::all().causes, &mut errors);
    if !errors.is_empty() {
        page.search_invalid = errors.iter().map(|e| e.param).collect();
        page.errors = errors;
        page.searched = false;
        return render::page(StatusCode::BAD_REQUEST, "journeys.html", "Journeys", true, &page);
    }
    let filters = JourneySearch {
        identifier: blank(&params.identifier).map(str::to_owned),
        from: from.map(|t| t.to_string()),
        to: to.map(|t| t.to_string()),
        outcome,
        root_cause,
        flow,
        limit: Some(PAGE_SIZE),
        cursor: blank(&params.cursor).map(str::to_owned),
    };
    match journey_page(state.journeys.as_ref(), filters).await.map_err(crate::error::ApiError::from) {
        Ok(found) => {
            page.results = found.journeys.iter().map(result_row).collect();
            page.next = found.next.map(|cursor| {
                let p = &params;
                let q = query_string(&[
                    ("identifier", p.identifier.as_deref()),
                    ("outcome", p.outcome.as_deref()),
                    ("rootCause", p.root_cause.as_deref()),
                    ("flow", p.flow.as_deref()),
                    ("from", p.from.as_deref()),
                    ("to", p.to.as_deref()),
                    ("cursor", Some(&cursor)),
                ]);
                format!("/dashboard/journeys?{q}")
            });
            render::page(StatusCode::OK, "journeys.html", "Journeys", true, &page)
        }
        Err(e) if e.status().is_client_error() => {
            // The API's own check (the cursor): its message names the parameter.
            page.errors = vec![BadParam { param: "cursor", message: e.message().to_owned() }];
            page.search_invalid = vec!["cursor"];
            page.searched = false;
            render::page(e.status(), "journeys.html", "Journeys", true, &page)
        }
        Err(e) => render::message(e.status(), true, "Something went wrong", e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(None), "–");
        assert_eq!(duration(Some(850)), "850 ms");
        assert_eq!(duration(Some(4_200)), "4.2 s");
        assert_eq!(duration(Some(210_000)), "3.5 min");
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let mut errors = Vec::new();
        assert_eq!(when("from", Some("soon"), 0, &mut errors), None);
        assert_eq!(one_of("flow", Some("teleport"), FLOWS, &mut errors), None);
        assert_eq!(one_of("flow", Some("fallback"), FLOWS, &mut errors).as_deref(), Some("fallback"));
        let names: Vec<_> = errors.iter().map(|e| e.param).collect();
        assert_eq!(names, ["from", "flow"]);
        assert!(errors[0].message.starts_with("from must be"));
        assert!(errors[1].message.contains("teleport"));
    }

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(
            query_string(&[("identifier", Some("a&b@c")), ("flow", None), ("to", Some(""))]),
            "identifier=a%26b%40c"
        );
    }
}
