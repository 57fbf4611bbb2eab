//! `handoff report`: the funnels of every flow and the root causes of what did not
//! succeed, read from the same database `serve` uses (same configuration), printed for a
//! terminal or as JSON. It computes exactly what `GET /api/v1/funnels` answers.

use std::fmt::Write as _;

use handoff_core::DomainError;
use handoff_core::clock::{Millis, rfc3339};
use handoff_core::observe::FLOWS;
use handoff_core::observe::insights::Insight;
use handoff_core::storage::{FunnelQuery, Journeys, Segment};

use crate::api::funnels::{FunnelResponse, build_funnel};

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// One flow, or every flow.
    pub flow: Option<String>,
    /// Journeys started at or after.
    pub from: Option<Millis>,
    /// Journeys started before.
    pub to: Option<Millis>,
    /// Break each funnel down by this segment.
    pub by: Option<Segment>,
}

/// The funnels of the requested flows (flows without journeys are left out).
pub async fn funnels(journeys: &dyn Journeys, r: &ReportRequest) -> Result<Vec<FunnelResponse>, DomainError> {
    let flows: Vec<&str> = match &r.flow {
        Some(f) => vec![f.as_str()],
        None => FLOWS.to_vec(),
    };
    let mut out = Vec::new();
    for flow in flows {
        let q = FunnelQuery { flow: flow.to_owned(), from: r.from, to: r.to, by: r.by };
        let f = build_funnel(journeys, &q).await?;
        if f.journeys > 0 || r.flow.is_some() {
            out.push(f);
        }
    }
    Ok(out)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn secs(ms: Option<Millis>) -> String {
    ms.map_or_else(|| "–".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

/// The top insights of the window (default: the last 7 days).
pub async fn insights(journeys: &dyn Journeys, r: &ReportRequest) -> Result<Vec<Insight>, DomainError> {
    let (from, to) = crate::api::insights::window(r.from, r.to);
    if from >= to {
        return Ok(Vec::new());
    }
    crate::api::insights::compute(journeys, from, to).await
}

/// The report as text for a terminal.
pub fn render(r: &ReportRequest, funnels: &[FunnelResponse], insights: &[Insight]) -> String {
    let mut s = String::new();
    let window = match (r.from, r.to) {
        (None, None) => "all journeys".to_owned(),
        (from, to) => format!(
            "journeys started {} … {}",
            from.map_or_else(|| "the beginning".into(), rfc3339),
            to.map_or_else(|| "now".into(), rfc3339)
        ),
    };
    let _ = writeln!(s, "Handoff report: {window}");
    if funnels.is_empty() {
        let _ = writeln!(s, "\nNo journeys yet. Sign in on the demo page, or send events to /api/v1/events.");
        return s;
    }
    if !insights.is_empty() {
        let _ = writeln!(s, "\nInsights (strongest first):");
        for i in insights.iter().take(5) {
            let _ = writeln!(s, "  * {} (p = {:.2e})", i.statement, i.significance);
        }
    }
    for f in funnels {
        let session = f.steps.last();
        let _ = writeln!(
            s,
            "\n{}: {} journeys, {} signed in (time to session p50 {}, p90 {})",
            f.flow,
            f.journeys,
            pct(session.map_or(0.0, |x| x.conversion)),
            secs(session.and_then(|x| x.p50_ms)),
            secs(session.and_then(|x| x.p90_ms)),
        );
        let _ = writeln!(s, "  {:<20} {:>9} {:>11} {:>14}", "step", "journeys", "of all", "of previous");
        for step in &f.steps {
            let _ = writeln!(
                s,
                "  {:<20} {:>9} {:>11} {:>14}",
                step.name,
                step.count,
                pct(step.conversion),
                pct(step.step_conversion)
            );
        }
        if !f.drop_off.is_empty() {
            let _ = writeln!(s, "  Why the others did not sign in (finished journeys):");
            for d in f.drop_off.iter().take(5) {
                let _ = writeln!(s, "    {:<24} {:>6} ({})", d.root_cause, d.count, pct(d.share));
                if let Some(action) = d.action {
                    let _ = writeln!(s, "      try first: {action}");
                }
            }
        }
        if let Some(rows) = &f.breakdown {
            let _ = writeln!(s, "  By segment:");
            for row in rows.iter().take(10) {
                let signed_in = row.steps.last().map_or(0.0, |x| x.conversion);
                let _ =
                    writeln!(s, "    {:<24} {:>6} journeys, {} signed in", row.segment, row.journeys, pct(signed_in));
            }
        }
    }
    s
}
