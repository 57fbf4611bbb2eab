//! The decision: classify every passkey with [`reach`], then pick the method most likely
//! to work, with its reasons, alternatives, retry policy and the credentials and hints
//! the ceremony should carry.

use super::reach::{Reach, reach};
use super::rules::DecisionRules;
use super::signals::{ClientSignals, CredentialFacts, FailureHistory};
use crate::clock::Millis;
use crate::decision::{Alternative, Decision, Reason, RetryPolicy, Verdict};
use crate::device::FormFactor;
use crate::domain::CredentialId;

/// A credential the ceremony should allow, with the transports to advertise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedCredential {
    /// The credential.
    pub id: CredentialId,
    /// Transports for `allowCredentials`.
    pub transports: Vec<String>,
}

/// A decision and what the ceremony needs to carry it out.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Verdict, reasons, confidence, alternatives, retry.
    pub decision: Decision,
    /// `allowCredentials` for the ceremony (empty for verdicts without one).
    pub allow: Vec<AllowedCredential>,
    /// WebAuthn `hints`.
    pub hints: Vec<&'static str>,
}

impl Outcome {
    /// True when the verdict runs a passkey ceremony.
    pub fn runs_ceremony(&self) -> bool {
        matches!(self.decision.verdict, Verdict::Local | Verdict::CrossDevice | Verdict::TryOnce)
    }
}

fn reason(code: &str, message: impl Into<String>) -> Reason {
    Reason { code: code.to_owned(), message: message.into() }
}

fn message_for(code: &str, c: &CredentialFacts) -> String {
    let p = &c.provider;
    match code {
        "used-in-this-browser" => format!("this browser last signed in with this {p} passkey"),
        "last-used-in-this-browser" => format!("this {p} passkey was last used in this browser"),
        "created-in-this-browser" => format!("this {p} passkey was created in this browser"),
        "synced-icloud-keychain" => "an iCloud Keychain passkey syncs to this Apple device".into(),
        "icloud-keychain-not-backed-up" => "an iCloud Keychain passkey that was not backed up may not be here".into(),
        "synced-google-password-manager" => "a Google Password Manager passkey syncs to this Android device".into(),
        "google-password-manager-in-chrome" => {
            "a Google Password Manager passkey is here if Chrome is signed in to the same Google account".into()
        }
        "samsung-pass-on-android" => "a Samsung Pass passkey is here on Samsung phones".into(),
        "password-manager-extension" => format!("a {p} passkey is here if its app or browser extension is"),
        "security-key" => "a security key works here when it is plugged in".into(),
        "synced-same-kind-of-device" => {
            format!("a synced passkey made on a {} {} may be here", c.created_on.os, c.created_on.browser)
        }
        "passkey-on-phone" => {
            let os = &c.created_on.os;
            let article = if os.starts_with(['A', 'E', 'I', 'O', 'U', 'i']) { "an" } else { "a" };
            format!("the passkey lives on {article} {os} {}", c.created_on.form_factor.as_str())
        }
        "passkey-reachable-by-hybrid" => "the passkey's authenticator can be reached by the cross-device flow".into(),
        "bound-to-another-pc" => "a Windows Hello passkey stays on the PC that made it".into(),
        "bound-to-another-browser-profile" => format!("a {p} passkey stays in the browser profile that made it"),
        "not-synced-here" => format!("a {p} passkey does not sync to this device"),
        _ => format!("a passkey made on {} {} is not usable here", c.created_on.os, c.created_on.browser),
    }
}

/// The reason as an anonymous caller may see it: a credential's reason that names a
/// provider, an OS or a browser becomes a generic one (`/login/start` answers anyone who
/// types an identifier; the recorded decision keeps the detail for the operator).
pub fn anonymous_reason(r: &Reason) -> Reason {
    let (code, message) = match r.code.as_str() {
        "used-in-this-browser" | "last-used-in-this-browser" | "created-in-this-browser" => {
            (r.code.as_str(), "this browser used a passkey of this account before")
        }
        "synced-icloud-keychain"
        | "synced-google-password-manager"
        | "google-password-manager-in-chrome"
        | "samsung-pass-on-android"
        | "synced-same-kind-of-device" => ("synced-passkey", "a synced passkey of this account may be on this device"),
        "password-manager-extension" => {
            ("password-manager", "a passkey in a password manager works here when its app or extension is")
        }
        "passkey-on-phone" => ("passkey-on-phone", "the passkey lives on a phone"),
        "icloud-keychain-not-backed-up"
        | "bound-to-another-pc"
        | "bound-to-another-browser-profile"
        | "not-synced-here"
        | "made-on-another-device" => ("passkey-elsewhere", "a passkey of this account stays on another device"),
        _ => return r.clone(),
    };
    Reason { code: code.to_owned(), message: message.to_owned() }
}

/// The decision with [`anonymous_reason`]s.
pub fn anonymous(mut decision: Decision) -> Decision {
    decision.reasons = decision.reasons.iter().map(anonymous_reason).collect();
    decision
}

fn allowed(c: &CredentialFacts, add_hybrid: bool) -> AllowedCredential {
    let mut transports = c.transports.clone();
    if add_hybrid && !transports.iter().any(|t| t == "hybrid") {
        transports.push("hybrid".into());
    }
    AllowedCredential { id: c.credential_id.clone(), transports }
}

/// A stable 0–99 bucket for rollouts.
pub fn rollout_bucket(key: &str) -> u8 {
    // FNV-1a: stable across releases and platforms, unlike `DefaultHasher`.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (hash % 100) as u8
}

/// Decides which method to offer. `user_key` is a stable key for rollout buckets (the
/// normalised identifier).
pub fn decide(
    user_key: &str,
    credentials: &[CredentialFacts],
    client: &ClientSignals,
    failures: FailureHistory,
    rules: &DecisionRules,
    now: Millis,
) -> Outcome {
    let mut reasons = Vec::new();
    let usable: Vec<&CredentialFacts> = credentials.iter().filter(|c| rules.provider_allowed(&c.provider)).collect();
    if usable.len() < credentials.len() {
        reasons.push(reason("provider-blocked", "passkeys from a provider the operator blocked are not offered"));
    }
    let cooldown_ms = i64::try_from(rules.failure_cooldown.as_millis()).unwrap_or(i64::MAX);
    let cooling = failures.recent_failures >= rules.failures_before_fallback
        && failures.last_failure_at.is_some_and(|at| now.saturating_sub(at) < cooldown_ms);
    let cross_device_allowed = rules.cross_device_enabled
        && rules.cross_device_rollout.includes(rollout_bucket(user_key), &client.device)
        && client.hybrid_transport != Some(false);
    let fallback_alternatives = || {
        let mut alts = Vec::new();
        if rules.qr_approval_enabled {
            alts.push(Alternative { verdict: Verdict::QrApproval });
        }
        alts.push(Alternative { verdict: Verdict::Fallback });
        alts
    };
    let fallback = |mut reasons: Vec<Reason>, confidence: f64| {
        let verdict = if rules.qr_approval_enabled { Verdict::QrApproval } else { Verdict::Fallback };
        let alternatives = fallback_alternatives().into_iter().filter(|a| a.verdict != verdict).collect();
        if reasons.is_empty() {
            reasons.push(reason("no-usable-passkey", "no passkey of this account is usable from this device"));
        }
        Outcome {
            decision: Decision {
                verdict,
                reasons,
                confidence,
                alternatives,
                retry: RetryPolicy { max_attempts: 1, then: Verdict::Fallback },
                fallbacks: Vec::new(),
            },
            allow: Vec::new(),
            hints: Vec::new(),
        }
    };

    if usable.is_empty() {
        if credentials.is_empty() {
            reasons.push(reason("no-passkeys", "this account has no passkeys"));
        }
        return fallback(reasons, 0.9);
    }
    if cooling {
        reasons.push(reason(
            "recent-failures",
            format!(
                "{} failed passkey attempts in this browser; passkeys are paused here for {} minutes",
                failures.recent_failures,
                rules.failure_cooldown.as_secs() / 60
            ),
        ));
        return fallback(reasons, 0.8);
    }

    let mut here = Vec::new();
    let mut maybe = Vec::new();
    let mut phone = Vec::new();
    let mut elsewhere = Vec::new();
    let client_is_mobile = matches!(client.device.form_factor, FormFactor::Phone | FormFactor::Tablet);
    for c in &usable {
        match reach(c, client) {
            Reach::Here(code) => here.push((*c, code)),
            Reach::Maybe(code) => maybe.push((*c, code)),
            Reach::Phone(code) => phone.push((*c, code)),
            Reach::Elsewhere(code) => elsewhere.push((*c, code)),
        }
    }
    // Passkeys that may be here but also live on a phone (a Google Password Manager
    // passkey made on Android): if trying here fails, the phone is the next step.
    let phone_backup: Vec<(&CredentialFacts, &'static str)> = maybe
        .iter()
        .filter(|(c, _)| {
            !client_is_mobile
                && (matches!(c.created_on.form_factor, FormFactor::Phone | FormFactor::Tablet)
                    || c.has_transport("hybrid"))
        })
        .map(|(c, _)| (*c, "passkey-on-phone"))
        .collect();
    let push_reasons = |reasons: &mut Vec<Reason>, list: &[(&CredentialFacts, &'static str)]| {
        for (c, code) in list {
            if !reasons.iter().any(|r| r.code == *code) {
                reasons.push(reason(code, message_for(code, c)));
            }
        }
    };
    let cross_device_alt = (!phone.is_empty() || !phone_backup.is_empty()) && cross_device_allowed;
    let alternatives_after = |first: Option<Verdict>| {
        let mut alts = Vec::new();
        if let Some(v) = first {
            alts.push(Alternative { verdict: v });
        }
        alts.extend(fallback_alternatives());
        alts
    };
    let cross_device = |mut reasons: Vec<Reason>, reachable: &[(&CredentialFacts, &'static str)]| {
        let (code, message, confidence) = match client.hybrid_transport {
            Some(true) => {
                ("hybrid-available", "this browser can reach a phone over the cross-device (hybrid) flow", 0.75)
            }
            _ => (
                "hybrid-unknown",
                "this browser did not say whether it can reach a phone; trying the cross-device flow",
                0.5,
            ),
        };
        reasons.push(reason(code, message));
        let alternatives = alternatives_after(None);
        let then = alternatives[0].verdict;
        Outcome {
            decision: Decision {
                verdict: Verdict::CrossDevice,
                reasons,
                confidence,
                alternatives,
                retry: RetryPolicy { max_attempts: 1, then },
                fallbacks: Vec::new(),
            },
            allow: reachable.iter().map(|(c, _)| allowed(c, true)).collect(),
            hints: vec!["hybrid"],
        }
    };

    match client.requested {
        Some(asked @ (Verdict::Fallback | Verdict::QrApproval)) => {
            reasons.push(reason("requested-by-client", "the page asked for another method"));
            let mut outcome = fallback(reasons, 0.9);
            if asked == Verdict::Fallback || !rules.qr_approval_enabled {
                outcome.decision.verdict = Verdict::Fallback;
                outcome.decision.alternatives.retain(|a| a.verdict != Verdict::Fallback);
            }
            return outcome;
        }
        Some(Verdict::CrossDevice) if cross_device_alt => {
            reasons.push(reason(
                "requested-by-client",
                "the page asked for the cross-device flow after another method failed",
            ));
            let reachable: Vec<_> = phone.iter().chain(phone_backup.iter()).copied().collect();
            push_reasons(&mut reasons, &reachable);
            return cross_device(reasons, &reachable);
        }
        _ => {}
    }

    if !here.is_empty() {
        push_reasons(&mut reasons, &here);
        let mut confidence = 0.9;
        if client.platform_authenticator == Some(false) && here.iter().all(|(c, _)| c.has_transport("internal")) {
            reasons.push(reason("no-platform-authenticator", "the browser reports no platform authenticator"));
            confidence = 0.5;
        }
        let allow = here.iter().chain(maybe.iter()).map(|(c, _)| allowed(c, false)).collect();
        return Outcome {
            decision: Decision {
                verdict: Verdict::Local,
                reasons,
                confidence,
                alternatives: alternatives_after(cross_device_alt.then_some(Verdict::CrossDevice)),
                retry: RetryPolicy {
                    max_attempts: 1,
                    then: if cross_device_alt { Verdict::CrossDevice } else { Verdict::Fallback },
                },
                fallbacks: Vec::new(),
            },
            allow,
            hints: vec!["client-device"],
        };
    }
    if !maybe.is_empty() {
        push_reasons(&mut reasons, &maybe);
        let allow = maybe.iter().map(|(c, _)| allowed(c, false)).collect();
        return Outcome {
            decision: Decision {
                verdict: Verdict::TryOnce,
                reasons,
                confidence: 0.6,
                alternatives: alternatives_after(cross_device_alt.then_some(Verdict::CrossDevice)),
                retry: RetryPolicy {
                    max_attempts: 1,
                    then: if cross_device_alt { Verdict::CrossDevice } else { Verdict::Fallback },
                },
                fallbacks: Vec::new(),
            },
            allow,
            hints: Vec::new(),
        };
    }
    if !phone.is_empty() {
        push_reasons(&mut reasons, &phone);
        if !rules.cross_device_enabled {
            reasons.push(reason("cross-device-disabled", "the operator turned the cross-device flow off"));
            return fallback(reasons, 0.7);
        }
        if !rules.cross_device_rollout.includes(rollout_bucket(user_key), &client.device) {
            reasons.push(reason(
                "cross-device-not-rolled-out",
                "the cross-device flow is not rolled out to this user or device yet",
            ));
            return fallback(reasons, 0.7);
        }
        if client.hybrid_transport == Some(false) {
            reasons.push(reason(
                "no-hybrid-transport",
                "this browser cannot reach a phone (no hybrid transport), so the cross-device QR would not work",
            ));
            return fallback(reasons, 0.85);
        }
        return cross_device(reasons, &phone);
    }
    push_reasons(&mut reasons, &elsewhere);
    fallback(reasons, 0.8)
}
