//! Observability: product events from browsers, phones and the server, stitched into
//! journeys. `ingest` validates what clients send, one event at a time, so a bad event is
//! reported by its field and never costs the good ones beside it; `journey` folds each new
//! event into its journey's running facts; `diagnosis` reads phases, outcome and root
//! cause off those facts; `journal` is the single writer that stores events and updates
//! their journeys in one transaction per group of requests; `binding` keeps a journey to
//! the browser that started it.

mod binding;
pub mod diagnosis;
mod ingest;
pub mod insights;
mod journal;
pub mod journey;
pub mod stitch;
pub mod views;

pub use binding::JourneyBinder;
pub use diagnosis::{Basis, CauseClass, Diagnosis, Outcome, Phase, RootCause, diagnose};
pub use ingest::{
    BatchOutcome, Emitter, EventRejection, IngestLimits, MAX_ELAPSED_MS, checked_sent_at, parse_batch,
    parse_client_time,
};
pub use journal::{Journal, JournalSettings};
pub use journey::{Environment, JourneyFacts};

use crate::clock::Millis;

/// Every flow an event, a journey or a funnel can name.
pub const FLOWS: &[&str] = &[
    "passkey-local",
    "cross-device",
    "qr-approval",
    "fallback",
    "device-grant",
    "email-code",
    "recovery-code",
    "recovery-link",
];
use crate::domain::JourneyId;

/// The columns of a journey row that searches and funnels read, derived from its facts.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyColumns {
    /// The journey.
    pub journey_id: JourneyId,
    /// The flow tried last.
    pub flow: Option<String>,
    /// The identifier from the server's decision.
    pub identifier: Option<String>,
    /// `open` or `finished`.
    pub state: &'static str,
    /// `success`, `abandoned`, `failed`; `None` while open without a session.
    pub outcome: Option<&'static str>,
    /// Root cause code.
    pub root_cause: Option<&'static str>,
    /// `observed` or `inferred`.
    pub basis: Option<&'static str>,
    /// First event (server clock).
    pub started_at: Millis,
    /// Latest receipt.
    pub last_at: Millis,
    /// When it was finished.
    pub finished_at: Option<Millis>,
    /// Bit `i`: step `i` of the flow happened.
    pub steps: i64,
    /// First event to session, ms.
    pub convert_ms: Option<Millis>,
    /// Desktop OS, browser, form factor; phone OS and browser; app version.
    pub desktop: Environment,
    /// The phone's environment.
    pub mobile: Environment,
    /// The application signed in to (OIDC client id), if any.
    pub client: Option<String>,
    /// The facts as JSON.
    pub facts_json: String,
}

impl JourneyColumns {
    /// Derives the row of a journey. A journey with a session is finished at once.
    pub fn of(journey_id: JourneyId, facts: &JourneyFacts, finished_at: Option<Millis>) -> Self {
        let d = diagnose(facts, finished_at.is_some());
        let success = d.outcome == Some(Outcome::Success);
        let finished_at = finished_at.or_else(|| success.then_some(facts.last_received));
        let env = |k: &str| facts.environment.get(k).cloned().unwrap_or_default();
        Self {
            journey_id,
            flow: d.flow.clone(),
            identifier: facts.identifier.clone(),
            state: if finished_at.is_some() { "finished" } else { "open" },
            outcome: d.outcome.map(Outcome::as_str),
            root_cause: d.root_cause.as_ref().map(|r| r.code),
            basis: d.root_cause.as_ref().map(|r| match r.basis {
                Basis::Observed => "observed",
                Basis::Inferred => "inferred",
            }),
            started_at: facts.started_at(),
            last_at: facts.last_received,
            finished_at,
            steps: i64::from(d.steps),
            convert_ms: facts.time_to_session(),
            desktop: env("desktop"),
            mobile: env("mobile"),
            client: facts.client.clone(),
            facts_json: serde_json::to_string(facts).unwrap_or_else(|_| "{}".into()),
        }
    }
}
