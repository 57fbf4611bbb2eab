//! Rate limits. Every limit counts requests per key in one-minute windows (fixed windows:
//! the simplest scheme that several instances can share with one upsert; a burst at a
//! window's edge can reach twice the limit, which these limits tolerate). A client is keyed
//! by its IPv4 address or its IPv6 /64, an unknown client by one shared key (limits fail
//! closed), an identifier by a digest of it (no identifier is stored in the counters).
//!
//! Where the counts live follows the deployment: SQLite means one instance, and the counts
//! stay in this process (no write on the sign-in path); PostgreSQL means possibly many
//! instances, and the counts live in the database so that N instances allow the limit,
//! not N times it. Counts of past windows are pruned every minute, so memory and the
//! table hold only the current window's keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use handoff_core::clock::{Clock, Millis};
use handoff_core::storage::RateCounters;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The length of a counting window.
const WINDOW_MS: Millis = 60_000;

/// One limit: at most `per_minute` requests per key and minute.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Stable name, the prefix of its keys (`login-ip`, `qr-create`, …).
    pub name: &'static str,
    /// Requests per key per minute.
    pub per_minute: u32,
    /// What is counted, for the error message ("sign-in starts from this address").
    pub what: &'static str,
}

enum Counts {
    Local(Mutex<HashMap<String, (Millis, u64)>>),
    Shared(Arc<dyn RateCounters>),
}

/// The counters behind every limit of this instance.
pub struct RateLimits {
    counts: Counts,
    /// Whose minute the windows follow (the system clock except in tests).
    clock: Clock,
}

/// The key of a client: its IPv4 address or IPv6 /64; unknown clients share one.
pub fn ip_key(ip: Option<IpAddr>) -> String {
    crate::client_addr::rate_key(ip).to_string()
}

/// The key of an identifier: a digest, so the counters hold no identifier.
pub fn identifier_key(identifier: &str) -> String {
    let digest = Sha256::digest(identifier.trim().to_lowercase().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn window_of(now: Millis) -> Millis {
    now - now.rem_euclid(WINDOW_MS)
}

impl RateLimits {
    /// Counts kept in this process (one instance: SQLite).
    pub fn local() -> Self {
        Self { counts: Counts::Local(Mutex::new(HashMap::new())), clock: Clock::system() }
    }

    /// Counts kept in the database, shared by every instance (PostgreSQL).
    pub fn shared(counters: Arc<dyn RateCounters>) -> Self {
        Self { counts: Counts::Shared(counters), clock: Clock::system() }
    }

    /// Windows follow `clock` (tests move it to the start of a minute).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Counts one request under `key`; 429 `rate-limited` (with `Retry-After`) when the
    /// window already holds `limit.per_minute`.
    pub async fn check(&self, limit: &Limit, key: &str) -> Result<(), ApiError> {
        self.check_all(&[(limit, key.to_owned())]).await
    }

    /// Counts one request under each limit and its key, at once (one statement on
    /// PostgreSQL); refused by the first limit its window already held.
    pub async fn check_all(&self, limits: &[(&Limit, String)]) -> Result<(), ApiError> {
        let now = self.clock.now_ms();
        let window = window_of(now);
        let keys: Vec<String> = limits.iter().map(|(limit, key)| format!("{}:{key}", limit.name)).collect();
        let counted = self.hit(&keys, window).await?;
        match limits.iter().zip(counted).find(|((limit, _), hits)| *hits > u64::from(limit.per_minute)) {
            Some(((limit, _), _)) => Err(refusal(limit, window, now)),
            None => Ok(()),
        }
    }

    /// `Ok` while `key` has fewer than `limit.per_minute` counted in this window, without
    /// counting; for limits that count only failures (wrong operator tokens).
    pub async fn peek(&self, limit: &Limit, key: &str) -> Result<(), ApiError> {
        let now = self.clock.now_ms();
        let window = window_of(now);
        let key = format!("{}:{key}", limit.name);
        let hits = match &self.counts {
            Counts::Local(map) => {
                let map = map.lock().unwrap_or_else(PoisonError::into_inner);
                map.get(&key).filter(|(w, _)| *w == window).map_or(0, |(_, n)| *n)
            }
            Counts::Shared(counters) => counters.hits(&key, window).await?,
        };
        if hits >= u64::from(limit.per_minute) { Err(refusal(limit, window, now)) } else { Ok(()) }
    }

    /// Counts one failure under `key` (see [`RateLimits::peek`]).
    pub async fn record(&self, limit: &Limit, key: &str) -> Result<(), ApiError> {
        self.hit(&[format!("{}:{key}", limit.name)], window_of(self.clock.now_ms())).await.map(|_| ())
    }

    /// Counts one request under each key; returns each window's count, in order.
    async fn hit(&self, keys: &[String], window: Millis) -> Result<Vec<u64>, ApiError> {
        Ok(match &self.counts {
            Counts::Local(map) => {
                let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                let mut count = |key: &String| {
                    let entry = map.entry(key.clone()).or_insert((window, 0));
                    if entry.0 != window {
                        *entry = (window, 0);
                    }
                    entry.1 += 1;
                    entry.1
                };
                keys.iter().map(&mut count).collect()
            }
            Counts::Shared(counters) => counters.hit(keys, window).await?,
        })
    }

    /// Forgets the counts of past windows; returns how many were dropped.
    pub async fn prune(&self) -> u64 {
        let current = window_of(self.clock.now_ms());
        match &self.counts {
            Counts::Local(map) => {
                let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                let before = map.len();
                map.retain(|_, (window, _)| *window >= current);
                map.shrink_to_fit();
                (before - map.len()) as u64
            }
            Counts::Shared(counters) => match counters.purge_rate_counters(current).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "purging rate-limit counters failed");
                    0
                }
            },
        }
    }

    /// Keys counted now (in this process; 0 for shared counts).
    pub fn local_keys(&self) -> usize {
        match &self.counts {
            Counts::Local(map) => map.lock().unwrap_or_else(PoisonError::into_inner).len(),
            Counts::Shared(_) => 0,
        }
    }
}

fn refusal(limit: &Limit, window: Millis, now: Millis) -> ApiError {
    let secs = u64::try_from((window + WINDOW_MS - now + 999) / 1000).unwrap_or(60).max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!("too many {}; try again in {secs} s", limit.what),
    )
    .with_retry_after(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_counts_refuse_past_the_limit_and_prune() {
        let limits = RateLimits::local();
        let limit = Limit { name: "t", per_minute: 3, what: "tests" };
        for _ in 0..3 {
            limits.check(&limit, "a").await.unwrap();
        }
        let refused = limits.check(&limit, "a").await.unwrap_err();
        assert_eq!(refused.code(), "rate-limited");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        limits.check(&limit, "b").await.unwrap();
        // Failure counting: peek refuses once `per_minute` failures are recorded.
        let failures = Limit { name: "f", per_minute: 2, what: "failures" };
        limits.peek(&failures, "a").await.unwrap();
        limits.record(&failures, "a").await.unwrap();
        limits.record(&failures, "a").await.unwrap();
        assert!(limits.peek(&failures, "a").await.is_err());
        assert_eq!(limits.local_keys(), 3);
        assert_eq!(limits.prune().await, 0, "nothing from past windows yet");
    }

    #[test]
    fn identifiers_are_keyed_by_a_digest() {
        assert_eq!(identifier_key("Ada@Example.com"), identifier_key(" ada@example.com "));
        assert!(!identifier_key("ada@example.com").contains("ada"));
        assert_eq!(ip_key(Some("2001:db8::7".parse().unwrap())), "2001:db8::");
    }
}

/// Every limit the HTTP layer applies, as configured.
#[derive(Debug, Clone)]
pub struct Limits {
    /// QR attempts created per client.
    pub qr_create: Limit,
    /// QR approvals per account.
    pub qr_approve: Limit,
    /// Event batches per client.
    pub events: Limit,
    /// `POST /login/start` per client.
    pub login_ip: Limit,
    /// `POST /login/start` per identifier.
    pub login_identifier: Limit,
    /// `POST /passkeys/registration/start` per client.
    pub registration_ip: Limit,
    /// `POST /passkeys/registration/start` per identifier.
    pub registration_identifier: Limit,
    /// Dashboard sign-in form posts per client.
    pub dashboard_sign_in: Limit,
    /// Wrong operator tokens per client (bearer or form); past it, every try is refused.
    pub operator_failures: Limit,
    /// Device codes entered or scanned per client address (RFC 8628 §5.1).
    pub device_entry: Limit,
    /// Wrong device codes per client address and per account; past it, every try is refused.
    pub device_wrong_codes: Limit,
    /// Device code requests (`/oauth2/device_authorization`) per client address.
    pub device_authorization: Limit,
    /// Email codes asked for per client address.
    pub email_code_ip: Limit,
    /// Email codes asked for per identifier (a mailbox is not flooded).
    pub email_code_identifier: Limit,
    /// Codes entered (email and recovery codes) per client address.
    pub code_entry_ip: Limit,
    /// Wrong recovery codes per identifier; past it, every try is refused.
    pub recovery_code_failures: Limit,
}

impl Limits {
    /// The limits with these per-minute figures.
    pub fn new(qr_create: u32, qr_approve: u32, events: u32, login: (u32, u32), registration: (u32, u32)) -> Self {
        let limit = |name, per_minute: u32, what| Limit { name, per_minute: per_minute.max(1), what };
        Self {
            qr_create: limit("qr-create", qr_create, "QR codes from this address"),
            qr_approve: limit("qr-approve", qr_approve, "approvals for this account"),
            events: limit("events", events, "event batches"),
            login_ip: limit("login-ip", login.0, "sign-in starts from this address"),
            login_identifier: limit("login-id", login.1, "sign-in starts for this identifier"),
            registration_ip: limit("register-ip", registration.0, "sign-up starts from this address"),
            registration_identifier: limit("register-id", registration.1, "sign-up starts for this identifier"),
            dashboard_sign_in: limit("dashboard", 10, "sign-in attempts from this address"),
            operator_failures: limit("operator-token", 20, "wrong operator tokens from this address"),
            device_entry: limit("device-entry", 20, "device codes entered from this address"),
            device_wrong_codes: limit("device-wrong", 5, "wrong device codes"),
            device_authorization: limit("device-authz", 30, "device sign-ins started from this address"),
            email_code_ip: limit("email-code-ip", 10, "email codes asked for from this address"),
            email_code_identifier: limit("email-code-id", 3, "email codes asked for this identifier"),
            code_entry_ip: limit("code-entry-ip", 30, "codes entered from this address"),
            recovery_code_failures: limit("recovery-code-wrong", 5, "wrong recovery codes for this identifier"),
        }
    }
}

impl Limits {
    /// Sets the email code limits: per client address and per identifier, per minute.
    pub fn with_email_codes(mut self, per_ip: u32, per_identifier: u32) -> Self {
        self.email_code_ip.per_minute = per_ip.max(1);
        self.email_code_identifier.per_minute = per_identifier.max(1);
        self
    }
}
