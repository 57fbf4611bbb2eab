//! Storage of webhook endpoints, their subscriptions and the outbox of deliveries. The
//! deliveries a change reports are written by the change's own storage call (a
//! [`Message`](crate::webhooks::Message) passed beside it); this trait is everything else.

use async_trait::async_trait;

use crate::clock::Millis;
use crate::error::Result;
use crate::webhooks::Endpoint;

/// A delivery a worker claimed: leased to it until `lease`.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub id: i64,
    /// Its endpoint.
    pub endpoint_id: String,
    /// The message id (`webhook-id`).
    pub message_id: String,
    /// The body to send.
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    /// Start of its retry window.
    pub retry_from: Millis,
    /// The lease's end: the fence a settlement must match.
    pub lease: Millis,
    /// Whether its endpoint had no failure on record when it was claimed (then a success
    /// has no health to restore, and its settlement writes nothing to the endpoint).
    pub endpoint_healthy: bool,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The endpoint answered 2xx.
    Delivered,
    /// It failed; try again at this time.
    Retry(Millis),
    /// It failed and the retry window is over.
    Dead,
}

/// One attempt's outcome, to store.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The delivery.
    pub id: i64,
    /// Its endpoint.
    pub endpoint_id: String,
    /// The lease it was claimed with (a settlement under an older lease changes nothing).
    pub lease: Millis,
    /// When the attempt ended.
    pub at: Millis,
    /// The HTTP status, if the endpoint answered.
    pub status: Option<i64>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Delivered, retry or dead.
    pub outcome: Settlement,
    /// Failed attempts in a row after which the endpoint is marked failing.
    pub failing_after: u32,
    /// Whether the endpoint had no failure on record when the delivery was claimed.
    pub endpoint_healthy: bool,
}

/// What a batch of settled attempts does to one endpoint's health, folded in the order
/// they were settled: a success clears the failures before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChange {
    /// The endpoint.
    pub endpoint_id: String,
    /// A success cleared the count (and the failing mark) first.
    pub reset: bool,
    /// Failed attempts after the last success (or all of them, without one).
    pub failures: i64,
    /// When the last of them ended (the failing mark's time, if one is set).
    pub at: Millis,
    /// Failed attempts in a row after which the endpoint is marked failing.
    pub failing_after: u32,
}

impl HealthChange {
    /// The changes the settlements `settled` (those whose lease held) make, one per
    /// endpoint, leaving out the common case that changes nothing: only successes for an
    /// endpoint that had no failure on record when they were claimed.
    pub fn of<'a>(settled: impl IntoIterator<Item = &'a Settled>) -> Vec<Self> {
        let mut changes: Vec<(Self, bool)> = Vec::new();
        for s in settled {
            let i = match changes.iter().position(|(c, _)| c.endpoint_id == s.endpoint_id) {
                Some(i) => i,
                None => {
                    let change = Self {
                        endpoint_id: s.endpoint_id.clone(),
                        reset: false,
                        failures: 0,
                        at: s.at,
                        failing_after: s.failing_after,
                    };
                    changes.push((change, true));
                    changes.len() - 1
                }
            };
            let (change, unchanged) = &mut changes[i];
            change.at = change.at.max(s.at);
            if s.outcome == Settlement::Delivered {
                change.reset = true;
                change.failures = 0;
                *unchanged &= s.endpoint_healthy;
            } else {
                change.failures += 1;
                *unchanged = false;
            }
        }
        changes.into_iter().filter(|(_, unchanged)| !unchanged).map(|(c, _)| c).collect()
    }
}

/// A delivery as the operator sees it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The delivery's id (for redelivery).
    pub id: i64,
    /// Its endpoint.
    pub endpoint_id: String,
    /// The message id (`webhook-id`).
    pub message_id: String,
    /// The event type.
    pub event_type: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When the event happened (ms).
    pub created_at: Millis,
    /// When it is tried next, while pending (ms).
    pub next_attempt_at: Option<Millis>,
    /// The last HTTP status the endpoint answered.
    pub last_status: Option<i64>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was delivered (ms).
    pub delivered_at: Option<Millis>,
}

/// Endpoints, subscriptions and the outbox.
#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Stores a new endpoint with its subscriptions (one transaction).
    async fn add_endpoint(&self, endpoint: &Endpoint) -> Result<()>;
    /// Every endpoint, oldest first.
    async fn endpoints(&self) -> Result<Vec<Endpoint>>;
    /// Removes an endpoint with its subscriptions and deliveries; false when none.
    async fn remove_endpoint(&self, id: &str) -> Result<bool>;
    /// Makes the configuration file's endpoints (source `config`) exactly `endpoints`:
    /// updated in place when their id exists (their pending deliveries stay), added, or
    /// removed when no longer configured.
    async fn replace_configured(&self, endpoints: &[Endpoint]) -> Result<()>;
    /// The event types at least one endpoint subscribes to.
    async fn subscribed_types(&self) -> Result<Vec<String>>;
    /// Leases up to `limit` pending deliveries due at `now` until `lease`, counting the
    /// attempt; on PostgreSQL rows another instance holds are skipped, never waited for.
    async fn claim_deliveries(&self, now: Millis, lease: Millis, limit: u32) -> Result<Vec<ClaimedDelivery>>;
    /// Stores attempts' outcomes (one statement for the deliveries, whatever their
    /// outcomes) and the health of their endpoints ([`HealthChange::of`] those whose lease
    /// held); returns the ids whose lease was lost, for which nothing was stored.
    async fn settle_deliveries(&self, settled: &[Settled]) -> Result<Vec<i64>>;
    /// The most recent deliveries, of one endpoint or all, newest first.
    async fn deliveries(&self, endpoint_id: Option<&str>, limit: u32) -> Result<Vec<Delivery>>;
    /// Makes a delivery pending again, due at `now`, with a new retry window; false when none.
    async fn redeliver(&self, id: i64, now: Millis) -> Result<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(endpoint: &str, outcome: Settlement, healthy: bool, at: Millis) -> Settled {
        Settled {
            id: at,
            endpoint_id: endpoint.into(),
            lease: 0,
            at,
            status: None,
            error: None,
            outcome,
            failing_after: 5,
            endpoint_healthy: healthy,
        }
    }

    #[test]
    fn health_folds_each_endpoint_in_settlement_order_and_skips_healthy_successes() {
        use Settlement::{Dead, Delivered, Retry};
        let batch = [
            settled("a", Delivered, true, 1),
            settled("a", Delivered, true, 2),
            settled("b", Retry(9), true, 3),
            settled("c", Delivered, false, 4),
            settled("b", Delivered, true, 5),
            settled("b", Dead, true, 6),
            settled("d", Dead, false, 7),
        ];
        let change = |id: &str, reset, failures, at| HealthChange {
            endpoint_id: id.into(),
            reset,
            failures,
            at,
            failing_after: 5,
        };
        assert_eq!(
            HealthChange::of(&batch),
            vec![change("b", true, 1, 6), change("c", true, 0, 4), change("d", false, 1, 7)]
        );
        assert!(HealthChange::of(&batch[..2]).is_empty(), "a healthy endpoint's successes write nothing");
    }
}
