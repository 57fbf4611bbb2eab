//! Passkey Intelligence: after the identifier step, decide which sign-in method to offer
//! (a passkey here, the browser's cross-device flow with a phone, Handoff QR approval, one
//! try, or the site's fallback) and say why, so that nobody is sent into a QR loop that
//! cannot work. The engine is a pure function of signals — the credential inventory and
//! where each passkey lives, the client, recent failures, operator rules — which keeps every
//! rule unit-testable; gathering the signals is the passkey service's job.

mod engine;
mod reach;
mod rules;
mod signals;

pub use engine::{AllowedCredential, Outcome, anonymous, anonymous_reason, decide, rollout_bucket};
pub use reach::{Reach, reach};
pub use rules::{DecisionRules, Rollout};
pub use signals::{ClientSignals, CredentialFacts, FailureHistory};

#[cfg(test)]
mod tests;
