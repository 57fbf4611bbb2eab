//! The decision `/login/start` returns: which sign-in method to offer and why. These are
//! the response types; `intelligence` is the engine that fills them from the signals.

use serde::{Deserialize, Serialize};

/// Which sign-in method to offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A passkey on this device.
    Local,
    /// The browser's cross-device (hybrid QR + Bluetooth) flow with a phone's passkey.
    CrossDevice,
    /// Handoff's own QR approval with a signed-in phone.
    QrApproval,
    /// Try a passkey once; fall back on failure.
    TryOnce,
    /// The site's other sign-in method.
    Fallback,
}

impl Verdict {
    /// The wire name, e.g. `cross-device`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::CrossDevice => "cross-device",
            Self::QrApproval => "qr-approval",
            Self::TryOnce => "try-once",
            Self::Fallback => "fallback",
        }
    }
}

/// One reason behind a decision: a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reason {
    /// Stable machine code, e.g. `static-default`.
    pub code: String,
    /// A sentence for people reading logs or dashboards.
    pub message: String,
}

/// A ranked alternative to the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alternative {
    /// The method.
    pub verdict: Verdict,
}

/// What to do when the offered method fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts of the verdict's method before moving on.
    pub max_attempts: u32,
    /// The method to move on to.
    pub then: Verdict,
}

/// The decision returned by `/login/start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    /// The method to offer.
    pub verdict: Verdict,
    /// Why.
    pub reasons: Vec<Reason>,
    /// How sure the engine is, 0 to 1.
    pub confidence: f64,
    /// Other methods, best first.
    pub alternatives: Vec<Alternative>,
    /// What to do on failure.
    pub retry: RetryPolicy,
    /// The fallback methods this server offers by name (`email-code`, `recovery-code`;
    /// PRODUCT §7), so `fallback` is never a dead end when one is configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
}
