//! What one client may hold open (security review M4). Every request but an event stream
//! or a long-poll is answered within `request_timeout_seconds` (503 `timeout`); streams
//! and long-polls are capped per client (per IP, IPv6 by /64), per QR attempt and in
//! total, so neither one attempt's cookie nor one address can pin thousands of tasks.
//! Each open stream holds a [`StreamSlot`]; dropping it (the stream ends or the client
//! goes away) gives the slot back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Routes that stream or long-poll, bounded by their own rules instead of the timeout.
const STREAMING_ROUTES: &[&str] = &["/api/v1/qr/{qr_id}/events", "/api/v1/qr/{qr_id}"];

/// Middleware (a route layer, so the matched route is known): answers 503 `timeout` when
/// a request takes longer than the configured time.
pub async fn request_timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let streaming = request.extensions().get::<MatchedPath>().is_some_and(|p| STREAMING_ROUTES.contains(&p.as_str()));
    if streaming {
        return next.run(request).await;
    }
    let limit = state.http.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(seconds = limit.as_secs(), "request timed out");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("the server did not answer within {} s; try again", limit.as_secs()),
            )
            .into_response()
        }
    }
}

/// Caps on open streams and long-polls.
#[derive(Debug, Clone, Copy)]
pub struct StreamCaps {
    /// Per client (IP; IPv6 by /64).
    pub per_ip: usize,
    /// Per QR attempt.
    pub per_attempt: usize,
    /// On the whole server.
    pub total: usize,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
    by_attempt: HashMap<Uuid, usize>,
}

/// The open streams, counted.
pub struct StreamSlots {
    caps: StreamCaps,
    open: Mutex<Open>,
}

/// One open stream or long-poll; gives its slot back when dropped.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    ip: IpAddr,
    attempt: Uuid,
}

impl StreamSlots {
    /// Counts against `caps`.
    pub fn new(caps: StreamCaps) -> Arc<Self> {
        Arc::new(Self { caps, open: Mutex::new(Open::default()) })
    }

    /// A slot for a stream of `attempt` from the client `ip` (unknown: one shared key), or
    /// 429 `too-many-streams` / 503 `server-busy` naming the cap that is full.
    pub fn acquire(self: &Arc<Self>, ip: Option<IpAddr>, attempt: Uuid) -> Result<StreamSlot, ApiError> {
        let ip = crate::client_addr::rate_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.caps.total {
            tracing::warn!(open = open.total, "refused a stream: the server-wide cap is reached");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server-busy",
                "too many open event streams on this server; try again shortly",
            )
            .with_retry_after(5));
        }
        if open.by_ip.get(&ip).copied().unwrap_or(0) >= self.caps.per_ip {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams",
                format!("at most {} event streams or long-polls may be open from one address", self.caps.per_ip),
            )
            .with_retry_after(5));
        }
        if open.by_attempt.get(&attempt).copied().unwrap_or(0) >= self.caps.per_attempt {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams",
                format!("at most {} event streams or long-polls may wait on one QR attempt", self.caps.per_attempt),
            )
            .with_retry_after(5));
        }
        open.total += 1;
        *open.by_ip.entry(ip).or_default() += 1;
        *open.by_attempt.entry(attempt).or_default() += 1;
        Ok(StreamSlot { slots: self.clone(), ip, attempt })
    }

    /// Streams open now (for tests and metrics).
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        release(&mut open.by_ip, self.ip);
        release(&mut open.by_attempt, self.attempt);
    }
}

/// One fewer under `key`; a key at zero is removed, so the maps hold only open streams.
fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_slots_come_back() {
        let slots = StreamSlots::new(StreamCaps { per_ip: 2, per_attempt: 3, total: 4 });
        let a = Uuid::new_v4();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let first = slots.acquire(ip("2001:db8::1"), a).unwrap();
        let _second = slots.acquire(ip("2001:db8::2"), a).unwrap();
        // The same /64: refused.
        assert_eq!(slots.acquire(ip("2001:db8::3"), a).err().unwrap().code(), "too-many-streams");
        let _third = slots.acquire(ip("198.51.100.1"), a).unwrap();
        // Per attempt.
        assert_eq!(slots.acquire(ip("198.51.100.2"), a).err().unwrap().code(), "too-many-streams");
        let _other = slots.acquire(ip("198.51.100.2"), Uuid::new_v4()).unwrap();
        // Total.
        assert_eq!(slots.acquire(ip("198.51.100.3"), Uuid::new_v4()).err().unwrap().code(), "server-busy");
        drop(first);
        assert_eq!(slots.open(), 3);
        slots.acquire(ip("2001:db8::9"), a).unwrap();
        // Unknown addresses share one key.
        let slots = StreamSlots::new(StreamCaps { per_ip: 1, per_attempt: 9, total: 9 });
        let _u = slots.acquire(None, Uuid::new_v4()).unwrap();
        assert!(slots.acquire(None, Uuid::new_v4()).is_err());
    }
}
