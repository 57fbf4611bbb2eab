//! Standard Webhooks (PRODUCT §6.4; `docs/decisions/0016-webhooks.md`). An operator
//! subscribes an endpoint to event types; a change that someone listens to is reported by a
//! [`Message`] that storage writes into the outbox *in the same transaction as the change*
//! (one delivery row per subscribed endpoint), and a worker sends it later, signed as the
//! Standard Webhooks specification says ([`signing`]), retrying with backoff ([`schedule`]).
//!
//! A sign-in must pay nothing when nobody listens: the [`Reporter`] each service holds keeps
//! the set of subscribed types in memory (refreshed every few seconds and on every local
//! change of subscriptions), and a message is built only when its type is in it. A type
//! subscribed on another instance a moment ago may miss the events of those seconds; what
//! the reporter does build is never lost, because it is committed with the change.

pub mod endpoints;
pub mod schedule;
pub mod signing;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::clock::{Clock, Millis, rfc3339};

pub use endpoints::{Attempt, ConfiguredWebhook, Endpoint, EndpointSpec, Registered, WebhookService};
pub use schedule::DeliveryPolicy;

/// The events an endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
pub enum EventType {
    /// An account was created (with its first passkey).
    #[serde(rename = "user.created")]
    UserCreated,
    /// An account was deleted.
    #[serde(rename = "user.deleted")]
    UserDeleted,
    /// A passkey was registered.
    #[serde(rename = "passkey.created")]
    PasskeyCreated,
    /// A passkey was deleted.
    #[serde(rename = "passkey.deleted")]
    PasskeyDeleted,
    /// A session started (a sign-in), with its method and `amr`.
    #[serde(rename = "session.created")]
    SessionCreated,
    /// A session was ended before it expired (sign-out, sign-out everywhere, removed).
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    /// A sign-in journey ended failed, with its diagnosed root cause.
    #[serde(rename = "signin.failed")]
    SigninFailed,
    /// A phone approved a QR sign-in.
    #[serde(rename = "qr.approved")]
    QrApproved,
    /// A phone denied a QR sign-in.
    #[serde(rename = "qr.denied")]
    QrDenied,
}

impl EventType {
    /// Every type, in the order the documentation lists them.
    pub const ALL: [Self; 9] = [
        Self::UserCreated,
        Self::UserDeleted,
        Self::PasskeyCreated,
        Self::PasskeyDeleted,
        Self::SessionCreated,
        Self::SessionRevoked,
        Self::SigninFailed,
        Self::QrApproved,
        Self::QrDenied,
    ];

    /// The name on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserDeleted => "user.deleted",
            Self::PasskeyCreated => "passkey.created",
            Self::PasskeyDeleted => "passkey.deleted",
            Self::SessionCreated => "session.created",
            Self::SessionRevoked => "session.revoked",
            Self::SigninFailed => "signin.failed",
            Self::QrApproved => "qr.approved",
            Self::QrDenied => "qr.denied",
        }
    }

    /// The type of this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// One event, ready for the outbox: its id (the `webhook-id` header, the same on every
/// retry, so receivers deduplicate by it), its type, and the body every endpoint gets.
#[derive(Debug, Clone)]
pub struct Message {
    /// `msg_…`, unique.
    pub id: String,
    /// The event type.
    pub event_type: EventType,
    /// When it happened (the service clock).
    pub at: Millis,
    /// `{"type", "timestamp", "data"}` as JSON text.
    pub body: String,
}

impl Message {
    /// A message of `event_type` at `at` carrying `data`.
    pub fn new(event_type: EventType, at: Millis, data: Value) -> Self {
        let body = json!({"type": event_type.as_str(), "timestamp": rfc3339(at), "data": data}).to_string();
        Self { id: format!("msg_{}", uuid::Uuid::now_v7().simple()), event_type, at, body }
    }
}

/// What the services share: the subscribed types and the worker's doorbell.
#[derive(Debug)]
struct Shared {
    interest: AtomicU32,
    wake: Notify,
    clock: Clock,
}

/// Decides whether an event is reported and builds its message; rings the delivery worker
/// after a reported change committed. Cheap to clone; the default reports nothing (services
/// built without webhooks, in tools and benchmarks).
#[derive(Debug, Clone, Default)]
pub struct Reporter(Option<Arc<Shared>>);

impl Reporter {
    /// A reporter with no subscribed type yet, on `clock`.
    pub fn new(clock: Clock) -> Self {
        Self(Some(Arc::new(Shared { interest: AtomicU32::new(0), wake: Notify::new(), clock })))
    }

    /// Whether some endpoint listens to `event_type` (as of the last refresh).
    pub fn listens(&self, event_type: EventType) -> bool {
        self.0.as_ref().is_some_and(|s| s.interest.load(Ordering::Relaxed) & event_type.bit() != 0)
    }

    /// The message for an event, built by `data` only when someone listens.
    pub fn message(&self, event_type: EventType, data: impl FnOnce() -> Value) -> Option<Message> {
        let shared = self.0.as_ref().filter(|_| self.listens(event_type))?;
        Some(Message::new(event_type, shared.clock.now_ms(), data()))
    }

    /// The `signin.failed` message for a journey being finished, when it failed and someone
    /// listens: its diagnosed root cause is final now.
    pub fn signin_failed(&self, j: &crate::observe::JourneyColumns) -> Option<Message> {
        if j.outcome != Some("failed") {
            return None;
        }
        self.message(EventType::SigninFailed, || {
            json!({
                "journeyId": j.journey_id.to_string(),
                "flow": j.flow,
                "identifier": j.identifier,
                "rootCause": j.root_cause,
                "basis": j.basis,
                "client": j.client,
                "startedAt": rfc3339(j.started_at),
            })
        })
    }

    /// Replaces the set of subscribed types.
    pub fn set_interest(&self, types: impl IntoIterator<Item = EventType>) {
        if let Some(s) = &self.0 {
            let bits = types.into_iter().fold(0, |bits, t| bits | t.bit());
            s.interest.store(bits, Ordering::Relaxed);
        }
    }

    /// Tells the delivery worker that new deliveries may be waiting (after a commit that
    /// wrote `message`; a no-op for `None`).
    pub fn committed(&self, message: Option<&Message>) {
        if let (Some(s), Some(_)) = (&self.0, message) {
            s.wake.notify_one();
        }
    }

    /// Rings the worker unconditionally (after a redelivery).
    pub fn wake(&self) {
        if let Some(s) = &self.0 {
            s.wake.notify_one();
        }
    }

    /// Waits until [`Reporter::committed`] rings (or forever, for a default reporter).
    pub async fn rung(&self) {
        match &self.0 {
            Some(s) => s.wake.notified().await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        assert_eq!(EventType::parse("session.create"), None);
    }

    #[test]
    fn messages_are_built_only_for_subscribed_types() {
        let off = Reporter::default();
        assert!(off.message(EventType::SessionCreated, || json!({})).is_none());
        let r = Reporter::new(Clock::system());
        assert!(r.message(EventType::SessionCreated, || unreachable!("nobody listens")).is_none());
        r.set_interest([EventType::SessionCreated]);
        let m = r.message(EventType::SessionCreated, || json!({"userId": "u"})).unwrap();
        assert!(m.id.starts_with("msg_"));
        let body: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(body["type"], "session.created");
        assert_eq!(body["data"]["userId"], "u");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(!r.listens(EventType::QrDenied));
    }
}
