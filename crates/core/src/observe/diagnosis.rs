//! Diagnosis: from a journey's facts to its phases, its outcome and, when it did not end
//! in a session, one root cause from PRODUCT.md §4.3 with its evidence and the fix to
//! test first. The rules are data ([`RULES`]): an ordered table of conditions, read top
//! to bottom, first match wins; each says when its cause counts as *observed* (an event
//! shows it) rather than *inferred* (timing, errors or environment point to it). Phases
//! come from the flow's steps ([`steps_of`]): a step is observed only when a trusted event
//! of it arrived, and inferred only when a later step was observed.

use serde::Serialize;

use super::journey::JourneyFacts;
use crate::clock::Millis;

/// How a journey ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A session was established.
    Success,
    /// The person stopped (user abandonment).
    Abandoned,
    /// Something technical stood in the way.
    Failed,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Abandoned => "abandoned",
            Self::Failed => "failed",
        }
    }
}

/// Whether an event shows something or the evidence points to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// An event shows it.
    Observed,
    /// Timing, errors or the environment point to it.
    Inferred,
}

/// User abandonment or technical failure (PRODUCT.md §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CauseClass {
    /// The person chose to stop.
    UserAbandonment,
    /// Something in the system or the environment failed.
    TechnicalFailure,
}

/// A root cause of PRODUCT.md §4.3, with its class and the action map's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause {
    /// Stable code, e.g. `scan-failure`.
    pub code: &'static str,
    /// User abandonment or technical failure.
    pub class: CauseClass,
    /// The fix to test first.
    pub action: &'static str,
}

use CauseClass::{TechnicalFailure as Tech, UserAbandonment as User};

/// Every root cause and the fix to test first (the action map).
pub const CAUSES: &[Cause] = &[
    Cause {
        code: "scan-failure",
        class: Tech,
        action: "Show a larger, higher-contrast QR code with a wide quiet zone, and a \"Trouble scanning?\" link to \
                 another way in.",
    },
    Cause {
        code: "handoff-failure",
        class: Tech,
        action: "Check that the QR link opens the phone page in the phone's browser (camera apps, in-app browsers, \
                 universal links) and that the page loads on mobile networks.",
    },
    Cause {
        code: "wrong-account",
        class: User,
        action: "Show on the phone which account asks and which is signed in before anything else, and let the \
                 phone switch account.",
    },
    Cause {
        code: "confirmation-dropoff",
        class: User,
        action: "Shorten the phone confirmation (the number to match first, fewer words) and remind the person on \
                 the desktop while it waits.",
    },
    Cause {
        code: "callback-failure",
        class: Tech,
        action: "Check server-sent events through proxies and load balancers (buffering, idle timeouts) and that \
                 the long-poll fallback takes over.",
    },
    Cause {
        code: "user-cancelled",
        class: User,
        action: "Say before the browser's prompt what will happen, and offer the alternative right after a cancel.",
    },
    Cause {
        code: "no-credential",
        class: Tech,
        action: "Stop offering a passkey this device does not have: offer cross-device or Handoff QR approval, and \
                 the passkey append after sign-in.",
    },
    Cause {
        code: "proximity-or-connection",
        class: Tech,
        action: "Show Bluetooth and proximity guidance for the cross-device flow, and offer Handoff QR approval, \
                 which needs no Bluetooth.",
    },
    Cause {
        code: "server-verification",
        class: Tech,
        action: "Read the kept reason code: check the RP ID, the allowed origins and algorithms, and the stored \
                 public key and counter of the passkey.",
    },
    Cause {
        code: "configuration",
        class: Tech,
        action: "Check the configured RP ID and origins against the page's origin (SecurityError) and the \
                 browser's WebAuthn support (NotSupportedError).",
    },
    Cause {
        code: "mail-undelivered",
        class: Tech,
        action: "Read the kept SMTP answer: check smtp_url and mail_from, the sender's SPF and DKIM, and whether \
                 the mail server accepts this address; offer recovery codes or QR approval meanwhile.",
    },
    Cause {
        code: "code-expired",
        class: User,
        action: "Say on the page how long the code works, show when it was sent, and offer to send a new one in \
                 one click.",
    },
    Cause {
        code: "too-many-tries",
        class: User,
        action: "Let the code be pasted, show its length and that it is digits only, and offer a new code after \
                 two wrong tries.",
    },
    Cause {
        code: "abandoned-early",
        class: User,
        action: "Look at the identifier step: how the sign-in options are presented, page speed, and whether \
                 autofill offered the passkey.",
    },
];

/// The cause with this code.
pub fn cause(code: &str) -> Option<&'static Cause> {
    CAUSES.iter().find(|c| c.code == code)
}

/// One step of a flow, observed by a trusted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Phase name, e.g. `scanned`.
    pub name: &'static str,
    /// The event that shows it.
    pub event: &'static str,
}

const fn step(name: &'static str, event: &'static str) -> Step {
    Step { name, event }
}

/// Local passkey and cross-device passkey steps.
pub const PASSKEY_STEPS: &[Step] = &[
    step("identifier", "identifier.submitted"),
    step("decision", "decision.made"),
    step("ceremony-started", "ceremony.started"),
    step("webauthn-completed", "webauthn.completed"),
    step("verified", "server.verification"),
    step("session", "session.established"),
];

/// Handoff QR approval steps.
pub const QR_STEPS: &[Step] = &[
    step("shown", "qr.shown"),
    step("scanned", "qr.scanned"),
    step("mobile-opened", "mobile.opened"),
    step("confirmation-shown", "confirmation.shown"),
    step("confirmed", "qr.approved"),
    step("callback-received", "desktop.callback_received"),
    step("session", "session.established"),
];

/// Device sign-in steps (RFC 8628): the device got its codes, the verification page was
/// opened from the QR (a typed code skips it), the code was entered or scanned, the
/// confirmation shown, approved, and the device polled its tokens.
pub const DEVICE_STEPS: &[Step] = &[
    step("code-issued", "device.code_issued"),
    step("page-opened", "device.page_opened"),
    step("code-entered", "device.code_entered"),
    step("confirmation-shown", "device.confirmation_shown"),
    step("confirmed", "device.approved"),
    step("session", "session.established"),
];

/// Email code steps (PRODUCT §7): asked for, accepted by the mail server, entered, signed in.
pub const EMAIL_CODE_STEPS: &[Step] = &[
    step("code-sent", "email.code_sent"),
    step("delivered", "email.delivered"),
    step("code-entered", "email.code_entered"),
    step("session", "session.established"),
];

/// Recovery code steps.
pub const RECOVERY_CODE_STEPS: &[Step] =
    &[step("code-entered", "recovery_code.used"), step("session", "session.established")];

/// Operator recovery link steps.
pub const RECOVERY_LINK_STEPS: &[Step] = &[
    step("link-made", "recovery_link.created"),
    step("link-opened", "recovery_link.opened"),
    step("link-used", "recovery_link.used"),
    step("session", "session.established"),
];

/// Fallback steps.
pub const FALLBACK_STEPS: &[Step] = &[
    step("identifier", "identifier.submitted"),
    step("decision", "decision.made"),
    step("fallback-chosen", "fallback.chosen"),
    step("session", "session.established"),
];

/// The steps of a flow (unknown flows: the passkey steps).
pub fn steps_of(flow: Option<&str>) -> &'static [Step] {
    match flow {
        Some("qr-approval") => QR_STEPS,
        Some("fallback") => FALLBACK_STEPS,
        Some("device-grant") => DEVICE_STEPS,
        Some("email-code") => EMAIL_CODE_STEPS,
        Some("recovery-code") => RECOVERY_CODE_STEPS,
        Some("recovery-link") => RECOVERY_LINK_STEPS,
        _ => PASSKEY_STEPS,
    }
}

/// A condition on the facts. Each one also says, in words, what it found.
#[derive(Debug, Clone, Copy)]
pub enum Cond {
    /// A trusted event of this name arrived.
    Saw(&'static str),
    /// No trusted event of this name arrived.
    NotSaw(&'static str),
    /// At least one of these arrived.
    SawAny(&'static [&'static str]),
    /// The latest failed ceremony has one of these error names.
    FailedWith(&'static [&'static str]),
    /// The latest failed ceremony ran at least `.0` and less than `.1` milliseconds.
    FailedAfter(Millis, Millis),
    /// The latest failed ceremony, whatever its name.
    AnyFailure,
    /// No ceremony failed.
    NoFailure,
    /// `server.verification` failed with one of these reasons.
    VerificationFailedWith(&'static [&'static str]),
    /// `server.verification` failed.
    VerificationFailed,
    /// The QR attempt expired from this state.
    QrExpiredFrom(&'static str),
    /// The phone answered so (`approve` / `deny`).
    Answered(&'static str),
    /// The phone did not answer.
    NotAnswered,
    /// The phone showed an account other than the desktop's.
    MismatchShown,
    /// The flow is the cross-device passkey flow.
    CrossDevice,
    /// No browser or phone sent any event (SDK blocked or page closed): only the server spoke.
    NoClientEvents,
    /// Always holds.
    Always,
    /// Never holds.
    Never,
}

impl Cond {
    /// Whether it holds for these facts; when it does, a sentence of evidence (if any).
    fn check(self, f: &JourneyFacts) -> Option<Option<String>> {
        let failure = f.failure();
        let yes = |s: String| Some(Some(s));
        match self {
            Self::Saw(name) => f.at(name).map(|_| Some(format!("{name} observed"))),
            Self::NotSaw(name) => (!f.saw(name)).then(|| Some(format!("no {name} event"))),
            Self::SawAny(names) => names.iter().find(|n| f.saw(n)).map(|n| Some(format!("{n} observed"))),
            Self::FailedWith(names) => failure
                .filter(|x| names.contains(&x.error_name.as_str()))
                .map(|x| Some(format!("webauthn.failed with {} on the {}", x.error_name, x.device))),
            Self::FailedAfter(lo, hi) => match failure.and_then(|x| x.elapsed_ms) {
                Some(ms) if ms >= lo && ms < hi => yes(format!("the ceremony failed after {ms} ms")),
                _ => None,
            },
            Self::AnyFailure => failure.map(|x| Some(format!("webauthn.failed with {}", x.error_name))),
            Self::NoFailure => failure.is_none().then_some(None),
            Self::VerificationFailedWith(codes) => match &f.verification_failure {
                Some(v) if codes.contains(&v.value.as_str()) => yes(format!("server.verification failed: {}", v.value)),
                _ => None,
            },
            Self::VerificationFailed => {
                f.verification_failure.as_ref().map(|v| Some(format!("server.verification failed: {}", v.value)))
            }
            Self::QrExpiredFrom(state) => match &f.qr_expired_from {
                Some(from) if from.value == state => yes(format!("qr.expired while {state}")),
                _ => None,
            },
            Self::Answered(action) => {
                (f.answer() == Some(action)).then(|| Some(format!("the phone answered {action}")))
            }
            Self::NotAnswered => f.answer().is_none().then(|| Some("the phone never answered".into())),
            Self::MismatchShown => {
                f.mismatch_shown.then(|| Some("the phone showed an account other than the one asked for".into()))
            }
            Self::CrossDevice => (f.flow() == Some("cross-device")).then_some(None),
            Self::NoClientEvents => {
                (!f.environment.contains_key("desktop") && !f.environment.contains_key("mobile")).then_some(None)
            }
            Self::Always => Some(None),
            Self::Never => None,
        }
    }
}

/// One diagnosis rule: when every condition holds, the journey gets this cause.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Root cause code (an entry of [`CAUSES`]).
    pub cause: &'static str,
    /// Every condition must hold.
    pub when: &'static [Cond],
    /// The cause counts as observed when this also holds; otherwise inferred.
    pub observed_if: Cond,
}

const fn rule(cause: &'static str, when: &'static [Cond], observed_if: Cond) -> Rule {
    Rule { cause, when, observed_if }
}

use Cond::*;

const NOT_ALLOWED: &[&str] = &["NotAllowedError"];
const MAX: Millis = Millis::MAX;

/// The rules, first match wins. Errors a browser or the server reported come first (they
/// are observed), then the QR flow from its last step backwards, then the timing bands of
/// a refused ceremony, then what the absence of events suggests.
pub const RULES: &[Rule] = &[
    rule("configuration", &[FailedWith(&["SecurityError", "NotSupportedError", "TypeError"])], Always),
    rule("configuration", &[VerificationFailedWith(&["origin-mismatch", "rp-id-mismatch"])], Always),
    rule("no-credential", &[VerificationFailedWith(&["unknown-credential", "credential-not-allowed"])], Always),
    rule("server-verification", &[VerificationFailed], Always),
    // Handoff QR approval.
    rule("wrong-account", &[MismatchShown, NotSaw("session.established")], Always),
    rule("callback-failure", &[Answered("approve"), NotSaw("session.established")], QrExpiredFrom("approved")),
    rule("user-cancelled", &[Answered("deny")], Always),
    rule("confirmation-dropoff", &[Saw("confirmation.shown"), NotAnswered], QrExpiredFrom("scanned")),
    rule("handoff-failure", &[Saw("qr.scanned"), NotSaw("mobile.opened"), NotSaw("confirmation.shown")], Never),
    rule("scan-failure", &[SawAny(&["qr.shown", "qr.created"]), NotSaw("qr.scanned")], QrExpiredFrom("created")),
    // Device sign-ins (the shared rules above cover a denial and an approved device that
    // never polled again: callback-failure).
    rule("confirmation-dropoff", &[Saw("device.confirmation_shown"), NotAnswered], QrExpiredFrom("scanned")),
    rule(
        "handoff-failure",
        &[Saw("device.page_opened"), NotSaw("device.code_scanned"), NotSaw("device.code_entered")],
        Never,
    ),
    rule(
        "scan-failure",
        &[Saw("device.code_issued"), NotSaw("device.code_scanned"), NotSaw("device.code_entered")],
        QrExpiredFrom("created"),
    ),
    // Email codes: the mail, then the code.
    rule("mail-undelivered", &[Saw("email.bounced"), NotSaw("email.code_entered")], Always),
    rule("too-many-tries", &[Saw("email.too_many_tries"), NotSaw("email.code_entered")], Always),
    rule("code-expired", &[Saw("email.code_expired"), NotSaw("email.code_entered")], Always),
    rule("mail-undelivered", &[Saw("email.code_sent"), NotSaw("email.delivered"), NotSaw("email.code_entered")], Never),
    // A refused passkey ceremony, by how long it ran.
    rule("no-credential", &[FailedWith(NOT_ALLOWED), FailedAfter(0, 1_000)], Never),
    rule("user-cancelled", &[FailedWith(NOT_ALLOWED), FailedAfter(1_000, 30_000)], Never),
    rule(
        "proximity-or-connection",
        &[CrossDevice, FailedWith(&["NotAllowedError", "UnknownError"]), FailedAfter(30_000, MAX)],
        Never,
    ),
    rule("user-cancelled", &[FailedWith(&["NotAllowedError", "AbortError"])], Never),
    rule("configuration", &[FailedWith(&["InvalidStateError", "ConstraintError"])], Always),
    rule("proximity-or-connection", &[CrossDevice, AnyFailure], Never),
    rule("configuration", &[AnyFailure], Never),
    // No failure reported: what the last step reached suggests.
    rule("server-verification", &[Saw("webauthn.completed"), NotSaw("session.established")], Never),
    rule("scan-failure", &[CrossDevice, Saw("ceremony.started"), NoFailure], Never),
    rule("user-cancelled", &[Saw("ceremony.started"), NoFailure], Never),
    // A challenge but no word from the page: the prompt may have been refused unseen.
    rule("user-cancelled", &[Saw("challenge.created"), NoClientEvents, NoFailure], Never),
    rule("abandoned-early", &[Always], Never),
];

/// One phase of the journey's flow that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    /// Step name, e.g. `scanned`.
    pub name: &'static str,
    /// `true` only when an event shows it; `false` when a later observed step implies it.
    pub observed: bool,
    /// When it was observed (server clock, ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Millis>,
    /// The event that shows it, or the later step that implies it.
    pub evidence: String,
}

/// The root cause a journey got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootCause {
    /// Code from PRODUCT.md §4.3.
    pub code: &'static str,
    /// User abandonment or technical failure.
    pub class: CauseClass,
    /// Observed or inferred.
    pub basis: Basis,
    /// What points to it, one sentence each.
    pub evidence: Vec<String>,
    /// The fix to test first.
    pub action: &'static str,
}

/// A journey's phases, outcome and root cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The flow tried last.
    pub flow: Option<String>,
    /// `None` while the journey is still open and has no session.
    pub outcome: Option<Outcome>,
    /// `None` on success and while open.
    pub root_cause: Option<RootCause>,
    /// The phases of the flow that happened, in flow order.
    pub phases: Vec<Phase>,
    /// Bit `i` set when step `i` of the flow happened (observed or implied), for funnels.
    pub steps: u32,
}

fn step_time(f: &JourneyFacts, s: &Step) -> Option<Millis> {
    match s.name {
        // The phone page's own "approve" shows it too, when the server's record is missing.
        "confirmed" => f.at(s.event).or_else(|| {
            f.phone_answer.as_ref().filter(|a| a.value == "approve").and_then(|_| f.at("confirmation.completed"))
        }),
        // A scanned code is entered too.
        "code-entered" => f.at(s.event).or_else(|| f.at("device.code_scanned")),
        _ => f.at(s.event),
    }
}

/// The phases of the flow: observed ones with their time, earlier ones implied by them.
pub fn phases(f: &JourneyFacts, flow: Option<&str>) -> (Vec<Phase>, u32) {
    let steps = steps_of(flow);
    let times: Vec<Option<Millis>> = steps.iter().map(|s| step_time(f, s)).collect();
    let mut out = Vec::new();
    let mut bits = 0u32;
    for (i, s) in steps.iter().enumerate() {
        let evidence = match times[i] {
            Some(_) => s.event.to_owned(),
            None => match steps.iter().zip(&times).skip(i + 1).find(|(_, t)| t.is_some()) {
                Some((later, _)) => format!("implied by {}", later.name),
                None => continue,
            },
        };
        bits |= 1 << i;
        out.push(Phase { name: s.name, observed: times[i].is_some(), at: times[i], evidence });
    }
    (out, bits)
}

/// Diagnoses a journey. `finished`: no more activity is expected (idle time passed), so
/// a journey without a session gets its outcome and root cause.
pub fn diagnose(f: &JourneyFacts, finished: bool) -> Diagnosis {
    let flow = f.flow().map(str::to_owned);
    let (phases, steps) = phases(f, flow.as_deref());
    if f.saw("session.established") {
        return Diagnosis { flow, outcome: Some(Outcome::Success), root_cause: None, phases, steps };
    }
    if !finished {
        return Diagnosis { flow, outcome: None, root_cause: None, phases, steps };
    }
    let root = root_cause(f);
    let outcome = match root.class {
        CauseClass::UserAbandonment => Outcome::Abandoned,
        CauseClass::TechnicalFailure => Outcome::Failed,
    };
    Diagnosis { flow, outcome: Some(outcome), root_cause: Some(root), phases, steps }
}

/// The first rule whose conditions all hold (the last rule always does).
pub fn root_cause(f: &JourneyFacts) -> RootCause {
    for r in RULES {
        let Some(mut evidence) = r.when.iter().map(|c| c.check(f)).collect::<Option<Vec<Option<String>>>>() else {
            continue;
        };
        let observed = r.observed_if.check(f);
        let basis = if observed.is_some() { Basis::Observed } else { Basis::Inferred };
        evidence.extend(observed);
        let mut evidence: Vec<String> = evidence.into_iter().flatten().collect();
        evidence.extend(context(f));
        let c = cause(r.cause).unwrap_or(&CAUSES[CAUSES.len() - 1]);
        return RootCause { code: c.code, class: c.class, basis, evidence, action: c.action };
    }
    let c = &CAUSES[CAUSES.len() - 1];
    RootCause { code: c.code, class: c.class, basis: Basis::Inferred, evidence: context(f), action: c.action }
}

/// Facts that help read any cause: the environment and what the devices reported.
fn context(f: &JourneyFacts) -> Vec<String> {
    let mut out = Vec::new();
    if f.flow() == Some("cross-device") && f.hybrid() != Some(true) {
        out.push("the browser did not confirm it can reach a phone over hybrid (Bluetooth)".into());
    }
    if !f.environment.contains_key("desktop") && !f.environment.contains_key("mobile") {
        out.push("no events from a browser or phone arrived (SDK blocked or page closed); only the server's".into());
    }
    for (device, hidden) in &f.hidden {
        if hidden.value {
            out.push(format!("the {device} page was hidden at its last visibility change"));
        }
    }
    if f.untrusted_events > 0 {
        out.push(format!("{} client event(s) used server-only names and were not trusted", f.untrusted_events));
    }
    out
}

#[cfg(test)]
#[path = "diagnosis_tests.rs"]
mod tests;
