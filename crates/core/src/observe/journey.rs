//! A journey's running summary. Every new event of a journey is folded into its
//! [`JourneyFacts`] once, as it arrives, so a journey is never rebuilt from all of its
//! events. The fold is order-independent and idempotent per event (a repeated event id
//! never reaches it), so late and out-of-order events give the same facts as events in
//! order. Clocks: each device's clock may be minutes off, so the facts keep every
//! device's own timestamps and an estimate of its offset from the server's clock (the
//! smallest `receivedAt - ts` seen from it); times across devices are compared only after
//! that correction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Millis;
use crate::storage::StoredEvent;

/// Events only the server may emit. A client posting one of these names is stored (and
/// shown) but never counts as evidence: `session.established` from a browser proves nothing.
pub const SERVER_ONLY: &[&str] = &[
    "decision.made",
    "challenge.created",
    "server.verification",
    "session.established",
    "append.offered",
    "qr.created",
    "qr.scanned",
    "qr.risk",
    "qr.refused",
    "qr.approved",
    "qr.denied",
    "qr.redeemed",
    "qr.expired",
    "qr.cancelled",
    "oidc.code_issued",
    "device.code_issued",
    "device.page_opened",
    "device.code_entered",
    "device.code_scanned",
    "device.confirmation_shown",
    "device.refused",
    "device.approved",
    "device.denied",
    "device.tokens_issued",
    "device.expired",
    "email.code_sent",
    "email.delivered",
    "email.deferred",
    "email.bounced",
    "email.code_wrong",
    "email.code_expired",
    "email.too_many_tries",
    "email.code_entered",
    "recovery_code.used",
    "recovery_code.wrong",
    "recovery_link.created",
    "recovery_link.opened",
    "recovery_link.used",
];

/// Clock offsets up to this size are not corrected (see [`JourneyFacts::corrected`]).
pub const SKEW_TOLERANCE_MS: Millis = 10_000;

/// Measured clock offsets up to this size (a network's delay) are not corrected.
pub const MEASURED_TOLERANCE_MS: Millis = 1_000;

/// Every name of PRODUCT.md §4.2 plus the server's own QR and append events.
pub const KNOWN_EVENTS: &[&str] = &[
    "identifier.submitted",
    "ceremony.started",
    "webauthn.completed",
    "webauthn.failed",
    "qr.shown",
    "mobile.opened",
    "confirmation.shown",
    "confirmation.completed",
    "desktop.callback_received",
    "page.hidden",
    "page.visible",
    "fallback.chosen",
];

/// The first (and latest) sighting of one event name in a journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    /// The device that sent the first one.
    #[serde(rename = "d")]
    pub device: String,
    /// The first one's time on that device's clock.
    #[serde(rename = "t")]
    pub ts: Millis,
    /// The latest one's time on that device's clock.
    #[serde(rename = "l")]
    pub last_ts: Millis,
    /// How many arrived.
    #[serde(rename = "n")]
    pub count: u32,
}

/// The last failed WebAuthn ceremony of the journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureFact {
    /// DOMException name, e.g. `NotAllowedError`.
    pub error_name: String,
    /// How long the ceremony ran before failing, as the browser measured it.
    pub elapsed_ms: Option<Millis>,
    /// The flow it belonged to.
    pub flow: Option<String>,
    /// Its time on the emitting device's clock (to pick the latest).
    pub ts: Millis,
    /// The emitting device.
    pub device: String,
}

/// The environment one device reported (from its headers or `attrs.appVersion`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Operating system.
    pub os: Option<String>,
    /// Browser.
    pub browser: Option<String>,
    /// `desktop`, `phone`, `tablet`, …
    pub form_factor: Option<String>,
    /// Native app version.
    pub app_version: Option<String>,
}

/// A value with the time it was seen; folding keeps the latest (ties: the larger value),
/// so the result does not depend on arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest<T> {
    /// Time on the emitting device's clock.
    #[serde(rename = "t")]
    pub ts: Millis,
    /// The value.
    #[serde(rename = "v")]
    pub value: T,
}

fn keep_latest<T: Ord>(slot: &mut Option<Latest<T>>, ts: Millis, value: T) {
    let newer = slot.as_ref().is_none_or(|old| (ts, &value) > (old.ts, &old.value));
    if newer {
        *slot = Some(Latest { ts, value });
    }
}

/// What the server's decision said.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DecisionFact {
    /// The verdict, e.g. `cross-device`.
    pub verdict: String,
    /// Whether the browser said it can do hybrid (`None`: it did not say).
    pub hybrid: Option<bool>,
}

/// What is known about one journey so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JourneyFacts {
    /// First sighting of every trusted event name.
    #[serde(default)]
    pub seen: BTreeMap<String, Sighting>,
    /// Per device, the smallest `receivedAt - ts` seen (its clock offset plus the least delay).
    #[serde(default)]
    pub offsets: BTreeMap<String, Millis>,
    /// Per device, the smallest `receivedAt - sentAt` of its batches: its clock offset
    /// measured directly (plus the network's delay), preferred to the estimate above.
    #[serde(default)]
    pub measured_offsets: BTreeMap<String, Millis>,
    /// Per flow and device, the latest time (device clock) of an event in that flow.
    #[serde(default)]
    pub flows: BTreeMap<String, BTreeMap<String, Millis>>,
    /// Server receive time of the first event.
    pub first_received: Millis,
    /// Server receive time of the latest event (for idle finalisation).
    pub last_received: Millis,
    /// The identifier the person typed, from the server's decision.
    pub identifier: Option<String>,
    /// The latest decision.
    pub decision: Option<Latest<DecisionFact>>,
    /// The latest failed ceremony per device.
    #[serde(default)]
    pub failures: BTreeMap<String, FailureFact>,
    /// The latest `server.verification` result that was not `ok`.
    pub verification_failure: Option<Latest<String>>,
    /// The state the latest QR attempt expired from (`created`, `scanned`, `approved`).
    pub qr_expired_from: Option<Latest<String>>,
    /// The server's record of the phone's answer: `approve` or `deny`.
    pub qr_answer: Option<Latest<String>>,
    /// The phone page's own record of its answer (its clock).
    pub phone_answer: Option<Latest<String>>,
    /// The phone showed an account other than the one the desktop asked for.
    #[serde(default)]
    pub mismatch_shown: bool,
    /// Events received, all names.
    #[serde(default)]
    pub events: u32,
    /// Events with names outside the catalogue.
    #[serde(default)]
    pub unknown_events: u32,
    /// Client events using a server-only name (stored, never trusted).
    #[serde(default)]
    pub untrusted_events: u32,
    /// Environment per emitting device (`desktop`, `mobile`).
    #[serde(default)]
    pub environment: BTreeMap<String, Environment>,
    /// Per device, whether the page was hidden at its latest visibility change.
    #[serde(default)]
    pub hidden: BTreeMap<String, Latest<bool>>,
    /// The application (OIDC client id) the sign-in was for, from the server's
    /// `oidc.code_issued` (PRODUCT §6.1).
    #[serde(default)]
    pub client: Option<String>,
}

fn text(attrs: &Value, key: &str) -> Option<String> {
    attrs.get(key).and_then(Value::as_str).map(|s| s.chars().take(128).collect())
}

impl JourneyFacts {
    /// Folds one newly stored event in.
    pub fn fold(&mut self, e: &StoredEvent) {
        self.events = self.events.saturating_add(1);
        if self.first_received == 0 || e.received_at < self.first_received {
            self.first_received = e.received_at;
        }
        self.last_received = self.last_received.max(e.received_at);
        let offset = e.received_at.saturating_sub(e.ts);
        self.offsets.entry(e.device.clone()).and_modify(|o| *o = (*o).min(offset)).or_insert(offset);
        if let Some(measured) = e.clock_offset {
            self.measured_offsets.entry(e.device.clone()).and_modify(|o| *o = (*o).min(measured)).or_insert(measured);
        }
        if e.device != "server" {
            let env = self.environment.entry(e.device.clone()).or_default();
            let fill = |slot: &mut Option<String>, v: &Option<String>| {
                if slot.is_none() {
                    slot.clone_from(v);
                }
            };
            fill(&mut env.os, &e.os);
            fill(&mut env.browser, &e.browser);
            fill(&mut env.form_factor, &e.form_factor);
            fill(&mut env.app_version, &e.app_version);
        }
        let server_only = SERVER_ONLY.contains(&e.name.as_str());
        if server_only && e.device != "server" {
            self.untrusted_events = self.untrusted_events.saturating_add(1);
            return;
        }
        if !server_only && !KNOWN_EVENTS.contains(&e.name.as_str()) {
            self.unknown_events = self.unknown_events.saturating_add(1);
        }
        if let Some(flow) = &e.flow {
            let latest = self.flows.entry(flow.clone()).or_default().entry(e.device.clone()).or_insert(e.ts);
            *latest = (*latest).max(e.ts);
        }
        // Attributes are parsed only for the names whose attributes the diagnosis reads.
        let attrs = match e.name.as_str() {
            "decision.made"
            | "webauthn.failed"
            | "server.verification"
            | "qr.expired"
            | "device.expired"
            | "device.code_issued"
            | "confirmation.shown"
            | "confirmation.completed"
            | "oidc.code_issued" => e.attrs_value(),
            _ => Value::Null,
        };
        self.note_attrs(e, &attrs);
        // `server.verification` counts as a phase only when it succeeded.
        let ok = e.name != "server.verification" || text(&attrs, "result").as_deref() == Some("ok");
        if ok {
            self.seen
                .entry(e.name.clone())
                .and_modify(|s| {
                    s.count = s.count.saturating_add(1);
                    if e.device == s.device {
                        s.ts = s.ts.min(e.ts);
                        s.last_ts = s.last_ts.max(e.ts);
                    }
                })
                .or_insert_with(|| Sighting { device: e.device.clone(), ts: e.ts, last_ts: e.ts, count: 1 });
        }
    }

    fn note_attrs(&mut self, e: &StoredEvent, a: &Value) {
        match e.name.as_str() {
            "oidc.code_issued" | "device.code_issued" if e.device == "server" => {
                if let Some(client) = text(a, "clientId") {
                    self.client = Some(client);
                }
            }
            "decision.made" => {
                if let Some(identifier) = text(a, "identifier") {
                    self.identifier = Some(identifier);
                }
                let codes: Vec<&str> = a
                    .get("reasons")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(|x| x.get("code").and_then(Value::as_str)).collect())
                    .unwrap_or_default();
                let hybrid = if codes.contains(&"hybrid-available") {
                    Some(true)
                } else if codes.contains(&"hybrid-unavailable") {
                    Some(false)
                } else {
                    None
                };
                let verdict = text(a, "verdict").unwrap_or_default();
                keep_latest(&mut self.decision, e.ts, DecisionFact { verdict, hybrid });
            }
            "webauthn.failed" => {
                let fact = FailureFact {
                    error_name: text(a, "errorName").unwrap_or_else(|| "UnknownError".into()),
                    elapsed_ms: a.get("elapsedMs").and_then(Value::as_f64).map(|f| f as Millis),
                    flow: e.flow.clone(),
                    ts: e.ts,
                    device: e.device.clone(),
                };
                let slot = self.failures.entry(e.device.clone()).or_insert_with(|| fact.clone());
                if (fact.ts, &fact.error_name) > (slot.ts, &slot.error_name) {
                    *slot = fact;
                }
            }
            "server.verification" => match text(a, "result") {
                Some(r) if r == "ok" => {}
                other => keep_latest(&mut self.verification_failure, e.ts, other.unwrap_or_else(|| "unknown".into())),
            },
            "qr.expired" => keep_latest(&mut self.qr_expired_from, e.ts, text(a, "from").unwrap_or_default()),
            // A device sign-in stops in the same places as a QR approval: nobody scanned or
            // entered the code, the confirmation was left, or the approved device never
            // came back for its tokens.
            "device.expired" => {
                let from = match text(a, "from").as_deref() {
                    Some("pending") => "created",
                    Some("claimed") => "scanned",
                    Some(other) => other,
                    None => "",
                }
                .to_owned();
                keep_latest(&mut self.qr_expired_from, e.ts, from);
            }
            "qr.approved" | "device.approved" => keep_latest(&mut self.qr_answer, e.ts, "approve".into()),
            "qr.denied" | "device.denied" => keep_latest(&mut self.qr_answer, e.ts, "deny".into()),
            "confirmation.shown" if a.get("mismatch").and_then(Value::as_bool) == Some(true) => {
                self.mismatch_shown = true;
            }
            "confirmation.completed" => {
                keep_latest(&mut self.phone_answer, e.ts, text(a, "action").unwrap_or_default());
            }
            "page.hidden" | "page.visible" => {
                let mut slot = self.hidden.remove(&e.device);
                keep_latest(&mut slot, e.ts, e.name == "page.hidden");
                if let Some(slot) = slot {
                    self.hidden.insert(e.device.clone(), slot);
                }
            }
            _ => {}
        }
    }

    /// The latest failed ceremony, across devices (on the server's clock).
    pub fn failure(&self) -> Option<&FailureFact> {
        self.failures.values().max_by_key(|f| (self.corrected(&f.device, f.ts), f.error_name.clone()))
    }

    /// Whether the browser said it can reach a phone over hybrid.
    pub fn hybrid(&self) -> Option<bool> {
        self.decision.as_ref().and_then(|d| d.value.hybrid)
    }

    /// The phone's answer: the server's record first, else the phone page's.
    pub fn answer(&self) -> Option<&str> {
        self.qr_answer.as_ref().or(self.phone_answer.as_ref()).map(|l| l.value.as_str())
    }

    /// A device's timestamp on the server's clock. The estimated offset (the smallest
    /// `receivedAt - ts`) also holds the SDK's batching and retry delay and the network's,
    /// which the server cannot tell apart from a clock that is slightly off; so a device is
    /// corrected only when it is off by more than [`SKEW_TOLERANCE_MS`] (a clock minutes
    /// or hours wrong), and otherwise its own timestamps are taken as they are.
    pub fn corrected(&self, device: &str, ts: Millis) -> Millis {
        // Measured (the SDK said when it sent the batch): only the network's delay is in it.
        if let Some(measured) = self.measured_offsets.get(device).copied() {
            return if measured.unsigned_abs() > MEASURED_TOLERANCE_MS.unsigned_abs() {
                ts.saturating_add(measured)
            } else {
                ts
            };
        }
        match self.offsets.get(device).copied() {
            Some(offset) if offset.unsigned_abs() > SKEW_TOLERANCE_MS.unsigned_abs() => ts.saturating_add(offset),
            _ => ts,
        }
    }

    /// When an event name was first seen, on the server's clock.
    pub fn at(&self, name: &str) -> Option<Millis> {
        self.seen.get(name).map(|s| self.corrected(&s.device, s.ts))
    }

    /// Whether a trusted event of this name arrived.
    pub fn saw(&self, name: &str) -> bool {
        self.seen.contains_key(name)
    }

    /// The flow of the latest event that named one (the method tried last).
    pub fn flow(&self) -> Option<&str> {
        self.flows
            .iter()
            .filter_map(|(flow, by_device)| {
                by_device.iter().map(|(device, ts)| (self.corrected(device, *ts), flow.as_str())).max()
            })
            .max()
            .map(|(_, flow)| flow)
            .or(match self.decision.as_ref().map(|d| d.value.verdict.as_str()) {
                Some("local" | "try-once") => Some("passkey-local"),
                Some(v @ ("cross-device" | "qr-approval" | "fallback" | "device-grant")) => Some(v),
                // The decision offered the fallbacks; the method chosen names its own flow.
                _ => None,
            })
    }

    /// The earliest event, on the server's clock.
    pub fn started_at(&self) -> Millis {
        self.seen
            .values()
            .map(|s| self.corrected(&s.device, s.ts))
            .min()
            .map_or(self.first_received, |t| t.min(self.first_received))
    }

    /// Milliseconds from the first event to the session, when there is one.
    pub fn time_to_session(&self) -> Option<Millis> {
        self.at("session.established").map(|t| (t - self.started_at()).max(0))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::JourneyId;

    pub(crate) fn event(name: &str, device: &str, ts: Millis, received: Millis, attrs: Value) -> StoredEvent {
        StoredEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            journey_id: JourneyId::new(),
            name: name.into(),
            device: device.into(),
            flow: None,
            ts,
            received_at: received,
            attrs: attrs.to_string(),
            os: None,
            browser: None,
            form_factor: None,
            app_version: None,
            clock_offset: None,
        }
    }

    #[test]
    fn order_of_arrival_does_not_change_the_facts() {
        let events = [
            event("qr.shown", "desktop", 1_000, 1_050, json!({})),
            event("mobile.opened", "mobile", 301_000, 2_100, json!({})),
            event("confirmation.shown", "mobile", 302_000, 3_100, json!({"mismatch": true})),
            event("qr.denied", "server", 4_000, 4_000, json!({})),
        ];
        let mut forward = JourneyFacts::default();
        events.iter().for_each(|e| forward.fold(e));
        let mut backward = JourneyFacts::default();
        events.iter().rev().for_each(|e| backward.fold(e));
        assert_eq!(forward, backward);
        // The phone's clock runs 5 minutes ahead; corrected, it opened after the code was shown.
        // (A desktop whose events arrive 50 ms late keeps its own timestamps.)
        assert_eq!(forward.at("qr.shown"), Some(1_000));
        assert!(forward.at("mobile.opened").unwrap() > forward.at("qr.shown").unwrap());
        assert!(forward.at("mobile.opened").unwrap() < forward.at("confirmation.shown").unwrap());
        assert!(forward.mismatch_shown);
    }

    #[test]
    fn a_measured_offset_corrects_small_skews_too() {
        // The phone's clock is 5 s ahead: too little to tell from batching delay without
        // `sentAt`, measured exactly with it (plus 40 ms of network).
        let mut phone = event("mobile.opened", "mobile", 10_000 + 5_000, 10_400, json!({}));
        let mut estimated = JourneyFacts::default();
        estimated.fold(&phone);
        assert_eq!(estimated.at("mobile.opened"), Some(15_000), "the estimate leaves 5 s alone");
        phone.clock_offset = Some(-5_000 + 40);
        let mut measured = JourneyFacts::default();
        measured.fold(&phone);
        assert_eq!(measured.at("mobile.opened"), Some(10_040));
        // A measured offset of a network's delay changes nothing.
        let mut desktop = event("qr.shown", "desktop", 1_000, 1_900, json!({}));
        desktop.clock_offset = Some(120);
        measured.fold(&desktop);
        assert_eq!(measured.at("qr.shown"), Some(1_000));
    }

    #[test]
    fn a_new_journeys_empty_facts_read_back() {
        let facts: JourneyFacts = serde_json::from_str("{}").unwrap();
        assert_eq!(facts, JourneyFacts::default());
    }

    #[test]
    fn clients_cannot_post_server_steps() {
        let mut f = JourneyFacts::default();
        f.fold(&event("session.established", "desktop", 1, 1, json!({})));
        f.fold(&event("server.verification", "server", 2, 2, json!({"result": "invalid-signature"})));
        assert!(!f.saw("session.established"));
        assert!(!f.saw("server.verification"), "a failed verification is not the verified phase");
        assert_eq!(f.untrusted_events, 1);
        assert_eq!(f.verification_failure.as_ref().map(|v| v.value.as_str()), Some("invalid-signature"));
    }
}
