//! `GET /metrics`: Prometheus text exposition (via `prometheus-client`) of what an
//! operator alerts on: sign-ins by flow and outcome, decisions by verdict, QR attempts by
//! the state they reached, event ingestion, and HTTP latency per route. Counters live in
//! memory per instance (Prometheus sums instances); journey-level numbers are in the API.
//! The endpoint needs the operator token, like every operator endpoint.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::extract::Operator;
use crate::state::AppState;

/// `flow` and `outcome` of a sign-in.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignIn {
    /// `passkey-local`, `cross-device`, `qr-approval`, or `passkey` when the HTTP layer
    /// cannot tell which passkey flow a failed ceremony was.
    pub flow: String,
    /// `success` or `failed`.
    pub outcome: String,
}

/// One label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Label {
    /// Its value.
    pub value: String,
}

/// An HTTP route and status class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    /// Method.
    pub method: String,
    /// The route's pattern (e.g. `/api/v1/qr/{qr_id}`), never the raw path.
    pub route: String,
    /// `2xx`, `4xx`, `5xx`, …
    pub status: String,
}

type Latency = Family<Route, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The instance's metrics.
pub struct Metrics {
    registry: Registry,
    sign_ins: Family<SignIn, Counter>,
    decisions: Family<Label, Counter>,
    qr: Family<Label, Counter>,
    events: Family<Label, Counter>,
    http: Latency,
    journal_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("handoff");
        let sign_ins = Family::<SignIn, Counter>::default();
        registry.register("sign_ins", "Sign-ins by flow and outcome", sign_ins.clone());
        let decisions = Family::<Label, Counter>::default();
        registry.register("decisions", "Sign-in method decisions by verdict (label value)", decisions.clone());
        let qr = Family::<Label, Counter>::default();
        registry.register("qr_attempts", "QR approval attempts reaching each state (label value)", qr.clone());
        let events = Family::<Label, Counter>::default();
        registry.register("events", "Client events received, by result (accepted, rejected)", events.clone());
        let http: Latency = Family::new_with_constructor(latency_histogram);
        registry.register("http_request_duration_seconds", "HTTP request latency by route and status", http.clone());
        let journal_dropped = Counter::default();
        registry.register(
            "journal_dropped_events",
            "Server events dropped because the journal's queue was full",
            journal_dropped.clone(),
        );
        Self { registry, sign_ins, decisions, qr, events, http, journal_dropped }
    }
}

impl Metrics {
    /// Counts a sign-in.
    pub fn sign_in(&self, flow: &str, success: bool) {
        let outcome = if success { "success" } else { "failed" };
        self.sign_ins.get_or_create(&SignIn { flow: flow.to_owned(), outcome: outcome.to_owned() }).inc();
    }

    /// Counts a decision.
    pub fn decision(&self, verdict: &str) {
        self.decisions.get_or_create(&Label { value: verdict.to_owned() }).inc();
    }

    /// Counts QR attempts reaching `state`.
    pub fn qr(&self, state: &str, n: u64) {
        self.qr.get_or_create(&Label { value: state.to_owned() }).inc_by(n);
    }

    /// Counts received client events.
    pub fn events(&self, accepted: usize, rejected: usize) {
        self.events.get_or_create(&Label { value: "accepted".into() }).inc_by(accepted as u64);
        self.events.get_or_create(&Label { value: "rejected".into() }).inc_by(rejected as u64);
    }

    /// Brings the dropped-events counter up to the journal's own count.
    pub fn journal_dropped(&self, total: u64) {
        let seen = self.journal_dropped.get();
        if total > seen {
            self.journal_dropped.inc_by(total - seen);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// The method as a label from a fixed set: any other token a client sends (HTTP allows
/// extension methods of any length) becomes `other`, so labels cannot grow without bound.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: times every request by its method, route pattern and status class.
pub async fn track_http(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_owned();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = format!("{}xx", response.status().as_u16() / 100);
    metrics.http.get_or_create(&Route { method, route, status }).observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics` (operator token).
pub async fn serve_metrics(_: Operator, State(state): State<AppState>) -> Result<Response, ApiError> {
    state.metrics.journal_dropped(state.journal.dropped_server_events());
    let body = state.metrics.render();
    Ok(([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response())
}
