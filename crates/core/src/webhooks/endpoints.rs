//! The endpoint registry behind `handoff webhooks`, `/api/v1/webhooks` and `[[webhooks]]`:
//! targets are checked once, here (only `https://`, or `http://` to a loopback address when
//! the operator allows it), event names are parsed (an unknown one is named in the error),
//! and each change of subscriptions refreshes the [`Reporter`]'s interest at once. Also the
//! delivery worker's two storage steps (claim, settle), so the worker in the server only
//! sends.

use std::net::IpAddr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use url::Url;

use super::schedule::{DeliveryPolicy, jitter_unit};
use super::signing::{generate_secret, key_of};
use super::{EventType, Reporter};
use crate::clock::{Clock, Millis};
use crate::error::{DomainError, Result};
use crate::storage::{ClaimedDelivery, Delivery, Settled, Settlement, Webhooks};

/// A subscribed endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ep_…` (operator) or `cfg_…` (configuration file, stable across restarts).
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// `whsec_…`: the signing secret.
    pub secret: String,
    /// The subscribed types.
    pub events: Vec<EventType>,
    /// `operator` (CLI, API) or `config` (`[[webhooks]]`).
    pub source: String,
    /// When it was added.
    pub created_at: Millis,
    /// Failed attempts in a row.
    pub consecutive_failures: i64,
    /// Since when it is failing (`None`: healthy).
    pub failing_since: Option<Millis>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("id", &self.id).field("url", &self.url).field("events", &self.events).finish()
    }
}

/// What an operator asks for when subscribing.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// The target: `https://…` (or `http://` to loopback when allowed).
    pub url: String,
    /// Event types, e.g. `["user.created", "session.created"]`.
    pub events: Vec<String>,
}

/// An endpoint of the configuration file (`[[webhooks]]`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ConfiguredWebhook {
    /// The target URL.
    pub url: String,
    /// Event types.
    pub events: Vec<String>,
    /// `whsec_…`, or read from `secret_file`.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
    /// A file holding the secret.
    #[serde(default)]
    pub secret_file: Option<std::path::PathBuf>,
}

/// A new endpoint and its secret, shown this once.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The endpoint.
    pub endpoint: Endpoint,
}

fn invalid(message: String) -> DomainError {
    DomainError::invalid("invalid-webhook", message)
}

/// Parses event names; an unknown one is named.
pub fn parse_events(names: &[String]) -> Result<Vec<EventType>> {
    let mut events = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let t = EventType::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            invalid(format!("unknown event type {name:?}; known types: {}", known.join(", ")))
        })?;
        if !events.contains(&t) {
            events.push(t);
        }
    }
    if events.is_empty() {
        return Err(invalid("subscribe to at least one event type".into()));
    }
    Ok(events)
}

/// Checks a target URL: https, or http to a loopback address when `allow_insecure`.
pub fn check_url(raw: &str, allow_insecure: bool) -> Result<String> {
    let url = Url::parse(raw.trim()).map_err(|e| invalid(format!("webhook URL {raw:?} is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url.to_string()),
        "http" if loopback && allow_insecure => Ok(url.to_string()),
        "http" if loopback => Err(invalid(format!(
            "webhook URL {raw:?} is plain http: allowed only with HANDOFF_WEBHOOKS_ALLOW_INSECURE=true (development)"
        ))),
        _ => Err(invalid(format!(
            "webhook URL {raw:?} must be https:// (plain http:// only to a loopback address, with \
             HANDOFF_WEBHOOKS_ALLOW_INSECURE=true)"
        ))),
    }
}

/// Registers endpoints, lists deliveries, redelivers; claims and settles for the worker.
#[derive(Clone)]
pub struct WebhookService {
    storage: Arc<dyn Webhooks>,
    reporter: Reporter,
    policy: DeliveryPolicy,
    clock: Clock,
}

impl WebhookService {
    /// The registry on `storage`, refreshing `reporter`'s interest.
    pub fn new(storage: Arc<dyn Webhooks>, reporter: Reporter, policy: DeliveryPolicy, clock: Clock) -> Self {
        Self { storage, reporter, policy, clock }
    }

    /// The reporter the services share.
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// How deliveries are sent and retried.
    pub fn policy(&self) -> &DeliveryPolicy {
        &self.policy
    }

    /// Subscribes an endpoint; the answer holds the secret, shown this once.
    pub async fn add(&self, spec: EndpointSpec) -> Result<Registered> {
        let endpoint = Endpoint {
            id: format!("ep_{}", uuid::Uuid::new_v4().simple()),
            url: check_url(&spec.url, self.policy.allow_insecure)?,
            secret: generate_secret()?,
            events: parse_events(&spec.events)?,
            source: "operator".into(),
            created_at: self.clock.now_ms(),
            consecutive_failures: 0,
            failing_since: None,
        };
        self.storage.add_endpoint(&endpoint).await?;
        self.refresh_interest().await?;
        Ok(Registered { endpoint })
    }

    /// Every endpoint, oldest first.
    pub async fn list(&self) -> Result<Vec<Endpoint>> {
        self.storage.endpoints().await
    }

    /// Removes an endpoint and its deliveries; false when none.
    pub async fn remove(&self, id: &str) -> Result<bool> {
        let removed = self.storage.remove_endpoint(id).await?;
        self.refresh_interest().await?;
        Ok(removed)
    }

    /// Registers the configuration file's endpoints (each keeps its id across restarts, so
    /// its pending deliveries stay); returns how many.
    pub async fn sync_configured(&self, configured: Vec<ConfiguredWebhook>) -> Result<usize> {
        let now = self.clock.now_ms();
        let mut endpoints = Vec::with_capacity(configured.len());
        for c in configured {
            let url = check_url(&c.url, self.policy.allow_insecure)?;
            let secret = c.secret.ok_or_else(|| invalid(format!("[[webhooks]] {url}: set secret or secret_file")))?;
            key_of(secret.trim()).map_err(|e| invalid(format!("[[webhooks]] {url}: {e}")))?;
            let digest = Sha256::digest(url.as_bytes());
            let id = format!("cfg_{}", digest.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>());
            if endpoints.iter().any(|e: &Endpoint| e.id == id) {
                return Err(invalid(format!("[[webhooks]] {url} is configured twice")));
            }
            endpoints.push(Endpoint {
                id,
                url,
                secret: secret.trim().to_owned(),
                events: parse_events(&c.events)?,
                source: "config".into(),
                created_at: now,
                consecutive_failures: 0,
                failing_since: None,
            });
        }
        self.storage.replace_configured(&endpoints).await?;
        self.refresh_interest().await?;
        Ok(endpoints.len())
    }

    /// Reads which types are subscribed into the reporter.
    pub async fn refresh_interest(&self) -> Result<()> {
        let types = self.storage.subscribed_types().await?;
        self.reporter.set_interest(types.iter().filter_map(|t| EventType::parse(t)));
        Ok(())
    }

    /// The most recent deliveries, of one endpoint or all, newest first.
    pub async fn deliveries(&self, endpoint_id: Option<&str>, limit: u32) -> Result<Vec<Delivery>> {
        self.storage.deliveries(endpoint_id, limit.clamp(1, 500)).await
    }

    /// Sends a delivery again now (whatever its state), with a new retry window.
    pub async fn redeliver(&self, id: i64) -> Result<bool> {
        let found = self.storage.redeliver(id, self.clock.now_ms()).await?;
        if found {
            self.reporter.wake();
        }
        Ok(found)
    }

    /// Leases up to `limit` due deliveries to this worker.
    pub async fn claim(&self, limit: u32) -> Result<Vec<ClaimedDelivery>> {
        let now = self.clock.now_ms();
        self.storage.claim_deliveries(now, now.saturating_add(self.policy.lease()), limit).await
    }

    /// Stores attempts' outcomes, each delivered (`status` 2xx) or failed, to be tried
    /// again after a backoff or, past the retry window, given up: one storage call for the
    /// whole batch (`docs/decisions/0016-webhooks.md`, "Measured").
    pub async fn settle(&self, attempts: &[Attempt]) -> Result<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let settled: Vec<Settled> = attempts.iter().map(|a| self.settlement(a, now)).collect();
        let lost = self.storage.settle_deliveries(&settled).await?;
        for id in lost {
            tracing::warn!(delivery = id, "a webhook delivery's lease ran out before it was settled");
        }
        Ok(())
    }

    /// What one attempt's result means for its delivery.
    fn settlement(&self, a: &Attempt, now: Millis) -> Settled {
        let claimed = &a.claimed;
        let delivered = a.error.is_none() && a.status.is_some_and(|s| (200..300).contains(&s));
        let outcome = if delivered {
            Settlement::Delivered
        } else {
            match self.policy.next_attempt(claimed.attempts, claimed.retry_from, now, jitter_unit()) {
                Some(at) => Settlement::Retry(at),
                None => Settlement::Dead,
            }
        };
        let error = match (delivered, &a.error, a.status) {
            (true, _, _) => None,
            (false, Some(e), _) => Some(e.clone()),
            (false, None, Some(s)) => Some(format!("the endpoint answered HTTP {s}")),
            (false, None, None) => Some("no answer".into()),
        };
        Settled {
            id: claimed.id,
            endpoint_id: claimed.endpoint_id.clone(),
            lease: claimed.lease,
            at: now,
            status: a.status.map(i64::from),
            error,
            outcome,
            failing_after: self.policy.failing_after,
            endpoint_healthy: claimed.endpoint_healthy,
        }
    }
}

/// One attempt as the worker saw it: the claimed delivery, the HTTP status if the endpoint
/// answered, and what went wrong if it was not a 2xx.
#[derive(Debug)]
pub struct Attempt {
    /// The delivery, as claimed.
    pub claimed: ClaimedDelivery,
    /// The HTTP status, if the endpoint answered.
    pub status: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_allowed_loopback_http_targets() {
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("http://localhost:9000/hook", true).is_ok());
        assert!(check_url("http://[::1]:9000/hook", true).is_ok());
        let insecure = check_url("http://127.0.0.1:9000/hook", false).unwrap_err().to_string();
        assert!(insecure.contains("HANDOFF_WEBHOOKS_ALLOW_INSECURE"), "{insecure}");
        assert!(check_url("http://example.com/hook", true).is_err());
        assert!(check_url("ftp://example.com/hook", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }

    #[test]
    fn unknown_event_types_are_named() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let ok = parse_events(&names(&["user.created", " session.created", "user.created"])).unwrap();
        assert_eq!(ok, vec![EventType::UserCreated, EventType::SessionCreated]);
        let err = parse_events(&names(&["user.created", "user.exploded"])).unwrap_err().to_string();
        assert!(err.contains("\"user.exploded\""), "{err}");
        assert!(parse_events(&[]).is_err());
    }
}
