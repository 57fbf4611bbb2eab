//! Every diagnosis rule against hand-written event sequences.

use serde_json::{Value, json};

use super::*;
use crate::domain::JourneyId;
use crate::storage::StoredEvent;

const T0: Millis = 1_800_000_000_000;

/// A journey written event by event: (device, name, ms after T0 on that device's clock, attrs).
struct Script {
    flow: Option<&'static str>,
    events: Vec<StoredEvent>,
    /// Milliseconds the phone's clock is off (added to its `ts`, not to receipt).
    phone_skew: Millis,
}

impl Script {
    fn new(flow: &'static str) -> Self {
        Self { flow: Some(flow), events: Vec::new(), phone_skew: 0 }
    }

    fn skew_phone(mut self, ms: Millis) -> Self {
        self.phone_skew = ms;
        self
    }

    fn ev(mut self, device: &str, name: &str, at: Millis, attrs: Value) -> Self {
        let skew = if device == "mobile" { self.phone_skew } else { 0 };
        // Clients' events arrive 40 ms after they happen; the server's as they happen.
        let delay = if device == "server" { 0 } else { 40 };
        self.events.push(StoredEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            journey_id: JourneyId::new(),
            name: name.into(),
            device: device.into(),
            flow: self.flow.map(str::to_owned),
            ts: T0 + at + skew,
            received_at: T0 + at + delay,
            attrs: attrs.to_string(),
            os: (device != "server").then(|| "Windows".into()),
            browser: (device != "server").then(|| "Chrome".into()),
            form_factor: None,
            app_version: None,
            clock_offset: None,
        });
        self
    }

    fn facts(&self) -> JourneyFacts {
        let mut f = JourneyFacts::default();
        self.events.iter().for_each(|e| f.fold(e));
        f
    }

    fn diagnose(&self) -> Diagnosis {
        let d = diagnose(&self.facts(), true);
        // Whatever the rule, a phase is observed only when its event is in the script.
        for p in d.phases.iter().filter(|p| p.observed) {
            let step = steps_of(d.flow.as_deref()).iter().find(|s| s.name == p.name).unwrap();
            let has = self.events.iter().any(|e| {
                e.name == step.event
                    || (step.name == "confirmed"
                        && e.name == "confirmation.completed"
                        && e.attrs_value()["action"] == "approve")
            });
            assert!(has, "phase {} reported observed without its event", p.name);
        }
        d
    }
}

fn cause_of(d: &Diagnosis) -> (&'static str, Basis) {
    let r = d.root_cause.as_ref().expect("a root cause");
    (r.code, r.basis)
}

fn passkey_start(flow: &'static str) -> Script {
    let verdict = if flow == "cross-device" { "cross-device" } else { "local" };
    Script::new(flow)
        .ev("desktop", "identifier.submitted", 0, json!({}))
        .ev("server", "decision.made", 100, json!({"verdict": verdict, "reasons": [{"code": "hybrid-unknown"}]}))
        .ev("server", "challenge.created", 110, json!({}))
        .ev("desktop", "ceremony.started", 200, json!({"mediation": "optional"}))
}

fn refused_after(flow: &'static str, ms: Millis) -> Script {
    passkey_start(flow).ev(
        "desktop",
        "webauthn.failed",
        200 + ms,
        json!({"errorName": "NotAllowedError", "elapsedMs": ms}),
    )
}

#[test]
fn a_cross_device_refusal_is_read_by_how_long_it_took() {
    let quick = refused_after("cross-device", 900).diagnose();
    assert_eq!(cause_of(&quick), ("no-credential", Basis::Inferred));
    assert_eq!(quick.outcome, Some(Outcome::Failed));

    let cancel = refused_after("cross-device", 2_000).diagnose();
    assert_eq!(cause_of(&cancel), ("user-cancelled", Basis::Inferred));
    assert_eq!(cancel.outcome, Some(Outcome::Abandoned));

    let long = refused_after("cross-device", 45_000).diagnose();
    assert_eq!(cause_of(&long), ("proximity-or-connection", Basis::Inferred));
    assert_eq!(long.outcome, Some(Outcome::Failed));
    let evidence = &long.root_cause.as_ref().unwrap().evidence;
    assert!(evidence.iter().any(|e| e.contains("45000 ms")), "{evidence:?}");
    assert!(evidence.iter().any(|e| e.contains("hybrid")), "the Bluetooth-less environment is evidence");
    assert!(long.root_cause.unwrap().action.contains("Bluetooth"));
}

#[test]
fn a_long_local_refusal_is_a_cancel_not_proximity() {
    let d = refused_after("passkey-local", 45_000).diagnose();
    assert_eq!(cause_of(&d), ("user-cancelled", Basis::Inferred));
}

#[test]
fn browser_and_server_errors_are_observed() {
    let security = passkey_start("passkey-local")
        .ev("desktop", "webauthn.failed", 300, json!({"errorName": "SecurityError", "elapsedMs": 5}))
        .diagnose();
    assert_eq!(cause_of(&security), ("configuration", Basis::Observed));

    let signature = passkey_start("passkey-local")
        .ev("desktop", "webauthn.completed", 900, json!({"elapsedMs": 700}))
        .ev("server", "server.verification", 950, json!({"result": "invalid-signature"}))
        .diagnose();
    assert_eq!(cause_of(&signature), ("server-verification", Basis::Observed));
    let root = signature.root_cause.unwrap();
    assert!(root.evidence.iter().any(|e| e.contains("invalid-signature")), "the reason is kept");
    assert!(!signature.phases.iter().any(|p| p.name == "verified"), "a failed verification is not the phase");

    let origin = passkey_start("passkey-local")
        .ev("server", "server.verification", 950, json!({"result": "origin-mismatch"}))
        .diagnose();
    assert_eq!(cause_of(&origin), ("configuration", Basis::Observed));

    let unknown = passkey_start("passkey-local")
        .ev("server", "server.verification", 950, json!({"result": "unknown-credential"}))
        .diagnose();
    assert_eq!(cause_of(&unknown), ("no-credential", Basis::Observed));
}

#[test]
fn completed_in_the_browser_but_never_verified() {
    let d = passkey_start("passkey-local").ev("desktop", "webauthn.completed", 900, json!({})).diagnose();
    assert_eq!(cause_of(&d), ("server-verification", Basis::Inferred));
}

fn qr_start() -> Script {
    Script::new("qr-approval").ev("server", "qr.created", 0, json!({})).ev(
        "desktop",
        "qr.shown",
        50,
        json!({"sizePx": 264, "rotation": 0}),
    )
}

#[test]
fn an_unscanned_code_is_a_scan_failure_observed_by_its_expiry() {
    let d = qr_start().ev("server", "qr.expired", 300_000, json!({"from": "created"})).diagnose();
    assert_eq!(cause_of(&d), ("scan-failure", Basis::Observed));
    assert_eq!(d.outcome, Some(Outcome::Failed));
    assert_eq!(d.phases.iter().map(|p| (p.name, p.observed)).collect::<Vec<_>>(), vec![("shown", true)]);
    // Without the expiry (the person left), the same cause is only inferred.
    let left = qr_start().diagnose();
    assert_eq!(cause_of(&left), ("scan-failure", Basis::Inferred));
}

#[test]
fn scanned_but_the_phone_page_never_opened() {
    let d = qr_start()
        .ev("server", "qr.scanned", 9_000, json!({}))
        .ev("server", "qr.expired", 300_000, json!({"from": "scanned"}))
        .diagnose();
    assert_eq!(cause_of(&d), ("handoff-failure", Basis::Inferred));
    let names: Vec<_> = d.phases.iter().map(|p| (p.name, p.observed)).collect();
    assert_eq!(names, vec![("shown", true), ("scanned", true)]);
}

fn qr_confirming() -> Script {
    qr_start().ev("server", "qr.scanned", 9_000, json!({})).ev("mobile", "mobile.opened", 8_500, json!({})).ev(
        "mobile",
        "confirmation.shown",
        9_500,
        json!({"mismatch": false}),
    )
}

#[test]
fn the_phone_left_the_confirmation() {
    let d = qr_confirming().ev("server", "qr.expired", 300_000, json!({"from": "scanned"})).diagnose();
    assert_eq!(cause_of(&d), ("confirmation-dropoff", Basis::Observed));
    assert_eq!(d.outcome, Some(Outcome::Abandoned));
}

#[test]
fn approved_but_the_desktop_never_redeemed() {
    let d = qr_confirming()
        .ev("mobile", "confirmation.completed", 12_000, json!({"action": "approve", "matchOk": true}))
        .ev("server", "qr.approved", 12_050, json!({}))
        .ev("server", "qr.expired", 300_000, json!({"from": "approved"}))
        .diagnose();
    assert_eq!(cause_of(&d), ("callback-failure", Basis::Observed));
    assert!(d.root_cause.unwrap().action.contains("long-poll"));
    let last = d.phases.last().unwrap();
    assert_eq!((last.name, last.observed), ("confirmed", true));
}

#[test]
fn denied_after_the_phone_showed_another_account() {
    let d = qr_start()
        .ev("server", "qr.scanned", 9_000, json!({}))
        .ev("mobile", "mobile.opened", 8_500, json!({}))
        .ev("mobile", "confirmation.shown", 9_500, json!({"mismatch": true}))
        .ev("mobile", "confirmation.completed", 11_000, json!({"action": "deny"}))
        .ev("server", "qr.denied", 11_050, json!({}))
        .diagnose();
    assert_eq!(cause_of(&d), ("wrong-account", Basis::Observed));
    assert_eq!(d.outcome, Some(Outcome::Abandoned));
    // A plain deny (same account) is the person saying no.
    let no = qr_confirming().ev("server", "qr.denied", 11_050, json!({})).diagnose();
    assert_eq!(cause_of(&no), ("user-cancelled", Basis::Observed));
}

#[test]
fn leaving_before_the_prompt_is_abandoning_early_even_with_a_challenge_made() {
    // The page spoke (identifier, then hidden) but never started the ceremony: the person
    // left at the explanation, before any prompt, although the server made a challenge.
    let d = Script::new("cross-device")
        .ev("desktop", "identifier.submitted", 0, json!({}))
        .ev(
            "server",
            "decision.made",
            100,
            json!({"verdict": "cross-device", "reasons": [{"code": "hybrid-available"}]}),
        )
        .ev("server", "challenge.created", 110, json!({}))
        .ev("desktop", "page.hidden", 1_500, json!({}))
        .diagnose();
    assert_eq!(cause_of(&d), ("abandoned-early", Basis::Inferred));
    assert_eq!(d.outcome, Some(Outcome::Abandoned));
}

#[test]
fn only_the_server_spoke_so_only_its_phases_are_observed() {
    let d = Script::new("passkey-local")
        .ev("server", "decision.made", 0, json!({"verdict": "local"}))
        .ev("server", "challenge.created", 5, json!({}))
        .diagnose();
    assert_eq!(cause_of(&d), ("user-cancelled", Basis::Inferred));
    let phases: Vec<_> = d.phases.iter().map(|p| (p.name, p.observed)).collect();
    assert_eq!(phases, vec![("identifier", false), ("decision", true)]);
    assert!(d.root_cause.unwrap().evidence.iter().any(|e| e.contains("SDK blocked")));

    // A QR sign-in with no client events still succeeds, every client phase implied.
    let ok = Script::new("qr-approval")
        .ev("server", "qr.created", 0, json!({}))
        .ev("server", "qr.scanned", 5_000, json!({}))
        .ev("server", "qr.approved", 9_000, json!({}))
        .ev("server", "qr.redeemed", 9_100, json!({}))
        .ev("server", "session.established", 9_110, json!({}))
        .diagnose();
    assert_eq!(ok.outcome, Some(Outcome::Success));
    let observed: Vec<_> = ok.phases.iter().filter(|p| p.observed).map(|p| p.name).collect();
    assert_eq!(observed, vec!["scanned", "confirmed", "session"]);
    assert_eq!(ok.phases.len(), 7, "the client phases are implied by later ones");
    assert_eq!(ok.steps, 0b111_1111);
}

#[test]
fn duplicates_and_any_order_give_the_same_diagnosis() {
    let script = qr_confirming()
        .ev("mobile", "confirmation.completed", 12_000, json!({"action": "approve", "matchOk": true}))
        .ev("server", "qr.approved", 12_050, json!({}))
        .ev("desktop", "desktop.callback_received", 12_100, json!({"via": "sse"}))
        .ev("server", "session.established", 12_200, json!({}));
    let forward = script.diagnose();
    let mut reversed = JourneyFacts::default();
    script.events.iter().rev().for_each(|e| reversed.fold(e));
    // A second copy of the phone's events, as if a batch were retried with new ids.
    script.events.iter().filter(|e| e.device == "mobile").for_each(|e| reversed.fold(e));
    let backward = diagnose(&reversed, true);
    assert_eq!(forward.outcome, Some(Outcome::Success));
    assert_eq!(forward.phases, backward.phases);
    assert_eq!(forward.steps, backward.steps);
}

#[test]
fn a_phone_clock_minutes_off_still_orders_the_phases() {
    for skew in [-7 * 60_000, 6 * 60_000] {
        let d = qr_confirming().skew_phone(skew).ev("server", "qr.expired", 300_000, json!({"from": "scanned"}));
        let d = d.diagnose();
        let at: Vec<Millis> = d.phases.iter().map(|p| p.at.unwrap()).collect();
        assert_eq!(
            d.phases.iter().map(|p| p.name).collect::<Vec<_>>(),
            ["shown", "scanned", "mobile-opened", "confirmation-shown"]
        );
        // Corrected onto the server's clock, the phone's steps land within a second of when they happened.
        assert!((at[2] - (T0 + 8_500)).abs() < 1_000, "skew {skew}: {at:?}");
        assert_eq!(at[0], T0 + 50, "the desktop's clock (40 ms of delay) is not touched");
        assert!(at[3] > at[2]);
        assert_eq!(cause_of(&d), ("confirmation-dropoff", Basis::Observed));
    }
}

#[test]
fn batching_delay_is_not_mistaken_for_clock_skew() {
    // The SDK sends its events a second later in one batch; the desktop's clock is right.
    let mut s = Script::new("passkey-local");
    for (name, at, device) in [
        ("identifier.submitted", 0, "desktop"),
        ("decision.made", 8, "server"),
        ("ceremony.started", 13, "desktop"),
        ("webauthn.completed", 15, "desktop"),
        ("server.verification", 23, "server"),
        ("session.established", 23, "server"),
    ] {
        s = s.ev(device, name, at, json!({"result": "ok"}));
    }
    for e in s.events.iter_mut().filter(|e| e.device == "desktop") {
        e.received_at = T0 + 1_016;
    }
    let d = s.diagnose();
    let at: Vec<Millis> = d.phases.iter().map(|p| p.at.unwrap() - T0).collect();
    assert_eq!(at, vec![0, 8, 13, 15, 23, 23], "phases in the order they happened");
    assert_eq!(s.facts().time_to_session(), Some(23));
}

#[test]
fn leaving_at_the_identifier_is_abandoned_early() {
    let d = Script::new("passkey-local").ev("desktop", "identifier.submitted", 0, json!({})).diagnose();
    assert_eq!(cause_of(&d), ("abandoned-early", Basis::Inferred));
    assert_eq!(d.outcome, Some(Outcome::Abandoned));
}

#[test]
fn an_open_journey_has_no_outcome_yet_and_a_session_is_success() {
    let open = diagnose(&refused_after("cross-device", 2_000).facts(), false);
    assert_eq!((open.outcome, open.root_cause), (None, None));
    let ok = passkey_start("passkey-local")
        .ev("desktop", "webauthn.completed", 900, json!({}))
        .ev("server", "server.verification", 950, json!({"result": "ok"}))
        .ev("server", "session.established", 951, json!({}));
    let d = diagnose(&ok.facts(), false);
    assert_eq!(d.outcome, Some(Outcome::Success));
    assert!(d.phases.iter().all(|p| p.observed));
    assert_eq!(d.steps, 0b11_1111);
}

#[test]
fn a_browser_claiming_a_session_is_not_believed() {
    let d = passkey_start("passkey-local").ev("desktop", "session.established", 900, json!({})).diagnose();
    assert_ne!(d.outcome, Some(Outcome::Success));
    assert!(d.root_cause.unwrap().evidence.iter().any(|e| e.contains("server-only")));
}

#[test]
fn every_rule_names_a_known_cause_and_every_cause_has_an_action() {
    for r in RULES {
        assert!(cause(r.cause).is_some(), "rule for unknown cause {}", r.cause);
    }
    // PRODUCT §4.3's eleven, and recovery's three (§7).
    assert_eq!(CAUSES.len(), 14);
    assert!(CAUSES.iter().all(|c| c.action.len() > 40));
    assert!(matches!(RULES.last().unwrap().when, [Cond::Always]), "the last rule catches everything");
}

fn device_start() -> Script {
    Script::new("device-grant")
        .ev("server", "device.code_issued", 0, json!({"clientId": "tv"}))
        .ev("server", "device.code_entered", 20_000, json!({}))
        .ev("server", "device.confirmation_shown", 20_001, json!({"via": "typed"}))
}

#[test]
fn device_sign_ins_stop_where_qr_approvals_do() {
    let unscanned = Script::new("device-grant")
        .ev("server", "device.code_issued", 0, json!({"clientId": "tv"}))
        .ev("server", "device.expired", 600_000, json!({"from": "pending"}))
        .diagnose();
    assert_eq!(cause_of(&unscanned), ("scan-failure", Basis::Observed));
    let left = device_start().ev("server", "device.expired", 600_000, json!({"from": "claimed"})).diagnose();
    assert_eq!(cause_of(&left), ("confirmation-dropoff", Basis::Observed));
    let never_polled = device_start()
        .ev("server", "device.approved", 30_000, json!({}))
        .ev("server", "device.expired", 600_000, json!({"from": "approved"}))
        .diagnose();
    assert_eq!(cause_of(&never_polled), ("callback-failure", Basis::Observed));
    let denied = device_start().ev("server", "device.denied", 30_000, json!({})).diagnose();
    assert_eq!(cause_of(&denied), ("user-cancelled", Basis::Observed));
    let signed_in = device_start()
        .ev("server", "device.approved", 30_000, json!({}))
        .ev("server", "session.established", 35_000, json!({}))
        .diagnose();
    assert_eq!(signed_in.outcome, Some(Outcome::Success));
    let names: Vec<&str> = signed_in.phases.iter().map(|p| p.name).collect();
    assert_eq!(names, ["code-issued", "page-opened", "code-entered", "confirmation-shown", "confirmed", "session"]);
    assert!(!signed_in.phases[1].observed, "a typed code never opened the page: implied, not observed");
}

#[test]
fn email_codes_fail_at_the_mail_or_the_code() {
    let sent = || Script::new("email-code").ev("server", "email.code_sent", 0, json!({"mailed": true}));
    let bounced = sent().ev("server", "email.bounced", 500, json!({"error": "550 mailbox unavailable"})).diagnose();
    assert_eq!(cause_of(&bounced), ("mail-undelivered", Basis::Observed));
    assert_eq!(bounced.outcome, Some(Outcome::Failed));
    let stuck = sent().ev("server", "email.deferred", 500, json!({})).diagnose();
    assert_eq!(cause_of(&stuck), ("mail-undelivered", Basis::Inferred));
    let delivered = || sent().ev("server", "email.delivered", 300, json!({}));
    let guessed = delivered()
        .ev("server", "email.code_wrong", 20_000, json!({"triesLeft": 0}))
        .ev("server", "email.too_many_tries", 21_000, json!({}))
        .diagnose();
    assert_eq!(cause_of(&guessed), ("too-many-tries", Basis::Observed));
    assert_eq!(guessed.outcome, Some(Outcome::Abandoned));
    let late = delivered().ev("server", "email.code_expired", 700_000, json!({})).diagnose();
    assert_eq!(cause_of(&late), ("code-expired", Basis::Observed));
    let ok = delivered()
        .ev("server", "email.code_entered", 30_000, json!({}))
        .ev("server", "session.established", 30_001, json!({}))
        .diagnose();
    assert_eq!(ok.outcome, Some(Outcome::Success));
    assert!(ok.phases.iter().all(|p| p.observed), "{:?}", ok.phases);
}
