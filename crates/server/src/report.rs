//! `handoff report`: the funnels of every flow and the root causes of what did not
//! succeed, read from the same database `serve` uses (same configuration), or with
//! `--url` from a remote server's `/api/v1/funnels` and `/api/v1/insights`, printed for a
//! terminal or as JSON. Both ways give exactly what the API answers.

use std::fmt::Write as _;

use handoff_core::DomainError;
use handoff_core::clock::{Millis, rfc3339};
use handoff_core::observe::FLOWS;
use handoff_core::observe::insights::Insight;
use handoff_core::storage::{FunnelQuery, Journeys, Segment};

use handoff_core::clock::now_ms;
use handoff_core::observe::views::{self, FunnelResponse};

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
        let f = views::funnel(journeys, &q).await?;
        if f.journeys > 0 || r.flow.is_some() {
            out.push(f);
        }
    }
    Ok(out)
}

/// The same report from a running server's API (`--url`, with the operator token).
pub async fn remote(
    base: &url::Url,
    token: &str,
    r: &ReportRequest,
) -> Result<(Vec<FunnelResponse>, Vec<Insight>), String> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let mut window: Vec<(&'static str, String)> = Vec::new();
    if let Some(from) = r.from {
        window.push(("from", from.to_string()));
    }
    if let Some(to) = r.to {
        window.push(("to", to.to_string()));
    }
    let get = |path: &str, query: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = base.join(path);
        async move {
            let url = url.map_err(|e| format!("bad URL: {e}"))?;
            let response = http
                .get(url.clone())
                .bearer_auth(token)
                .query(&query)
                .send()
                .await
                .map_err(|e| format!("cannot reach {url}: {e}"))?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if !status.is_success() {
                let message = body["error"]["message"].as_str().unwrap_or("no message").to_owned();
                return Err(format!("{url} answered {status}: {message}"));
            }
            Ok(body)
        }
    };
    let flows: Vec<&str> = match &r.flow {
        Some(f) => vec![f.as_str()],
        None => FLOWS.to_vec(),
    };
    let mut funnels = Vec::new();
    for flow in flows {
        let mut query = window.clone();
        query.push(("flow", flow.to_owned()));
        if let Some(by) = r.by {
            let name = Segment::ALL.iter().find(|(_, s)| *s == by).map_or("os", |(n, _)| *n);
            query.push(("by", name.to_owned()));
        }
        let body = get("/api/v1/funnels", query).await?;
        let funnel: FunnelResponse = serde_json::from_value(body)
            .map_err(|e| format!("the server's funnel is not what this version reads: {e}"))?;
        if funnel.journeys > 0 || r.flow.is_some() {
            funnels.push(funnel);
        }
    }
    let body = get("/api/v1/insights", window).await?;
    let list: views::InsightList = serde_json::from_value(body)
        .map_err(|e| format!("the server's insights are not what this version reads: {e}"))?;
    Ok((funnels, list.insights))
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn secs(ms: Option<Millis>) -> String {
    ms.map_or_else(|| "–".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

/// The top insights of the window (default: the last 7 days).
pub async fn insights(journeys: &dyn Journeys, r: &ReportRequest) -> Result<Vec<Insight>, DomainError> {
    let (from, to) = views::insight_window(r.from, r.to, now_ms());
    if from >= to {
        return Ok(Vec::new());
    }
    views::insights(journeys, from, to).await
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
                if let Some(action) = &d.action {
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
