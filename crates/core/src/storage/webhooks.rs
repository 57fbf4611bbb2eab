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
    /// Stores an attempt's outcome and the endpoint's health; false when the lease was lost.
    async fn settle_delivery(&self, settled: &Settled) -> Result<bool>;
    /// The most recent deliveries, of one endpoint or all, newest first.
    async fn deliveries(&self, endpoint_id: Option<&str>, limit: u32) -> Result<Vec<Delivery>>;
    /// Makes a delivery pending again, due at `now`, with a new retry window; false when none.
    async fn redeliver(&self, id: i64, now: Millis) -> Result<bool>;
}
