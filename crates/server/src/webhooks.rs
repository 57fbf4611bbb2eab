//! The webhook delivery worker and its settings (PRODUCT §6.4;
//! `docs/decisions/0016-webhooks.md`). Deliveries wait in the outbox table, written in the
//! transaction of the change they report; the worker leases due ones
//! (`WebhookService::claim`), sends each with the Standard Webhooks headers over an HTTP
//! client that follows no redirect and gives up after the configured timeout, and a settler
//! beside it stores the results (delivered, retry after a backoff, or dead) in batches: all
//! results that arrived while the previous batch was being stored go in one statement, and a
//! healthy endpoint's successes write nothing to the endpoint. It wakes when a local commit
//! wrote a delivery, and polls every second for other instances' and retries; it claims
//! again at once only after a full batch. Sending runs in tasks of its own, at most
//! [`IN_FLIGHT`] at once (a send holds its place until its result is stored), so a slow
//! endpoint delays nobody's sign-in and only its own deliveries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use handoff_core::storage::ClaimedDelivery;
use handoff_core::webhooks::signing::{key_of, sign};
use handoff_core::webhooks::{Attempt, ConfiguredWebhook, DeliveryPolicy, WebhookService};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::config::ConfigError;

/// Deliveries being sent at once, per instance.
pub const IN_FLIGHT: usize = 64;
/// How often the worker looks for due deliveries without being woken.
const POLL: Duration = Duration::from_secs(1);
/// The least time between two claims when woken: under a stream of sign-ins each commit
/// rings, and a claim per ring would be a write per event; waiting out the rest of this
/// gap lets a claim take every event of those milliseconds (at most this much more lag,
/// and none when events are further apart).
const CLAIM_GAP: Duration = Duration::from_millis(5);
/// How often the subscribed types and the endpoints are read again (other instances'
/// changes).
const REFRESH: Duration = Duration::from_secs(5);
/// The most of a response body read (so the connection can be reused); the rest is dropped.
const MAX_RESPONSE: usize = 64 * 1024;

/// The `[[webhooks]]` (secrets read from their files) and the delivery policy, checked.
pub fn settings(
    configured: Vec<ConfiguredWebhook>,
    allow_insecure: Option<bool>,
    retry_base_ms: Option<u64>,
    retry_window_seconds: Option<u64>,
    timeout_seconds: Option<u64>,
    failing_after: Option<u32>,
) -> Result<(Vec<ConfiguredWebhook>, DeliveryPolicy), ConfigError> {
    let defaults = DeliveryPolicy::default();
    let policy = DeliveryPolicy {
        retry_base: retry_base_ms.map(Duration::from_millis).unwrap_or(defaults.retry_base),
        retry_window: retry_window_seconds.map(Duration::from_secs).unwrap_or(defaults.retry_window),
        timeout: timeout_seconds.map(Duration::from_secs).unwrap_or(defaults.timeout),
        failing_after: failing_after.unwrap_or(defaults.failing_after),
        allow_insecure: allow_insecure.unwrap_or(false),
        ..defaults
    };
    if policy.retry_base.is_zero() || policy.retry_base > Duration::from_secs(3600) {
        return Err(ConfigError("webhook_retry_base_ms must be between 1 and 3600000".into()));
    }
    if policy.retry_window < Duration::from_secs(60) {
        return Err(ConfigError("webhook_retry_window_seconds must be at least 60".into()));
    }
    if policy.timeout.is_zero() || policy.timeout > Duration::from_secs(60) {
        return Err(ConfigError("webhook_timeout_seconds must be between 1 and 60".into()));
    }
    if policy.failing_after == 0 {
        return Err(ConfigError("webhook_failing_after must be above 0".into()));
    }
    let mut webhooks = Vec::with_capacity(configured.len());
    for mut w in configured {
        if let Some(path) = &w.secret_file {
            let secret = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("[[webhooks]] {}: cannot read secret_file {}: {e}", w.url, path.display()))
            })?;
            w.secret = Some(secret.trim().to_owned());
        }
        webhooks.push(w);
    }
    Ok((webhooks, policy))
}

/// Where one endpoint's deliveries go, and the key that signs them.
struct Target {
    url: String,
    key: Vec<u8>,
}

/// Endpoints by id, read again every [`REFRESH`] or when a delivery names an unknown one.
struct Targets {
    by_id: HashMap<String, Arc<Target>>,
    read_at: Option<Instant>,
}

impl Targets {
    async fn get(&mut self, service: &WebhookService, id: &str) -> Option<Arc<Target>> {
        let stale = self.read_at.is_none_or(|at| at.elapsed() > REFRESH);
        if stale || !self.by_id.contains_key(id) {
            match service.list().await {
                Ok(endpoints) => {
                    self.by_id = endpoints
                        .into_iter()
                        .filter_map(|e| {
                            let key = key_of(&e.secret).ok()?;
                            Some((e.id, Arc::new(Target { url: e.url, key })))
                        })
                        .collect();
                    self.read_at = Some(Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, "could not read the webhook endpoints"),
            }
        }
        self.by_id.get(id).cloned()
    }
}

/// The HTTP client deliveries go out on: a timeout, no redirects, no cookies.
pub fn client(policy: &DeliveryPolicy) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout)
        .user_agent(concat!("Handoff-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Runs the delivery worker until aborted: this loop claims and starts the sends; a
/// settler beside it stores their results, as many at once as have finished meanwhile.
pub async fn deliver(service: WebhookService) {
    let http = match client(service.policy()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are not delivered");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let (done, results) = mpsc::unbounded_channel();
    let settler = tokio::spawn(settle(service.clone(), results));
    let _settler = AbortOnDrop(settler);
    let mut targets = Targets { by_id: HashMap::new(), read_at: None };
    loop {
        let free = permits.available_permits();
        if free == 0 {
            // Every sender is busy: wait for one to finish.
            if let Ok(permit) = permits.acquire().await {
                drop(permit);
            }
            continue;
        }
        let limit = u32::try_from(free).unwrap_or(1);
        let claimed_at = Instant::now();
        let batch = match service.claim(limit).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook deliveries failed");
                Vec::new()
            }
        };
        // A full batch may leave more due: claim again at once. Otherwise everything due
        // when the claim ran is on its way, and a delivery committed since rang the bell
        // (the `Notify` keeps that ring for us), so wait for it instead of claiming nothing.
        let wait = batch.len() < free;
        for mut claimed in batch {
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            let target = targets.get(&service, &claimed.endpoint_id).await;
            let (http, done) = (http.clone(), done.clone());
            tokio::spawn(async move {
                let (status, error) = match target {
                    Some(target) => send(&http, &target, &mut claimed).await,
                    None => (None, Some("the endpoint was removed or its secret is unusable".to_owned())),
                };
                // The permit goes with the result: it is released once the result is stored.
                let _ = done.send((Attempt { claimed, status, error }, permit));
            });
        }
        if wait {
            tokio::select! {
                () = service.reporter().rung() => tokio::time::sleep_until((claimed_at + CLAIM_GAP).into()).await,
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// Aborts a task when the worker that started it stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stores the senders' results: every result that arrived while the previous batch was
/// being stored goes in the next, in one storage call (one statement for the deliveries).
async fn settle(service: WebhookService, mut results: mpsc::UnboundedReceiver<(Attempt, OwnedSemaphorePermit)>) {
    let mut batch = Vec::with_capacity(IN_FLIGHT);
    while results.recv_many(&mut batch, IN_FLIGHT).await > 0 {
        let (attempts, permits): (Vec<Attempt>, Vec<OwnedSemaphorePermit>) =
            std::mem::take(&mut batch).into_iter().unzip();
        if let Err(e) = service.settle(&attempts).await {
            let ids: Vec<i64> = attempts.iter().map(|a| a.claimed.id).collect();
            tracing::warn!(error = %e, deliveries = ?ids, "could not record webhook attempts");
        }
        drop(permits);
    }
}

/// One attempt: the HTTP status, and what went wrong if it was not a 2xx.
///
/// The body is moved out of `d` into the request (it is not needed to settle the attempt).
async fn send(http: &reqwest::Client, target: &Target, d: &mut ClaimedDelivery) -> (Option<u16>, Option<String>) {
    // The send time, from the system clock: receivers refuse timestamps far from theirs.
    let timestamp = i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.as_secs()).unwrap_or(0),
    )
    .unwrap_or(0);
    let signature = match sign(&target.key, &d.message_id, timestamp, &d.payload) {
        Ok(s) => s,
        Err(e) => return (None, Some(e.to_string())),
    };
    let request = http
        .post(&target.url)
        .header("webhook-id", &d.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(std::mem::take(&mut d.payload));
    match request.send().await {
        Ok(mut response) => {
            let status = response.status();
            // Read a little of the body so the connection goes back to the pool.
            let mut read = 0;
            while let Ok(Some(chunk)) = response.chunk().await {
                read += chunk.len();
                if read > MAX_RESPONSE {
                    break;
                }
            }
            let error = match status.as_u16() {
                200..=299 => None,
                300..=399 => {
                    Some(format!("the endpoint answered HTTP {} (redirects are not followed)", status.as_u16()))
                }
                code => Some(format!("the endpoint answered HTTP {code}")),
            };
            (Some(status.as_u16()), error)
        }
        Err(e) if e.is_timeout() => (None, Some("no answer within the timeout".into())),
        Err(e) if e.is_connect() => (None, Some("could not connect".into())),
        Err(e) => (None, Some(format!("request failed: {e}"))),
    }
}

/// Reads the subscribed types into the reporter every few seconds (subscriptions changed
/// on another instance, or by `handoff webhooks` on the database).
pub async fn refresh_interest(service: WebhookService) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = service.refresh_interest().await {
            tracing::warn!(error = %e, "could not read the webhook subscriptions");
        }
    }
}
