//! When a failed delivery is tried again, and when it is given up: exponential backoff
//! (the base doubles per attempt up to a cap) with jitter (a random half to whole of the
//! delay, so endpoints that failed together do not all come back at the same moment), for
//! at least the retry window (24 h by default) after the event or its redelivery; an
//! endpoint is marked failing after a run of failed attempts and healthy after a success.

use std::time::Duration;

use crate::clock::Millis;

/// How deliveries are sent and retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// The delay after the first failed attempt; it doubles per attempt.
    pub retry_base: Duration,
    /// The longest delay between two attempts.
    pub retry_cap: Duration,
    /// A delivery still failing this long after its event (or its redelivery) is dead.
    pub retry_window: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Failed attempts in a row after which an endpoint is marked failing.
    pub failing_after: u32,
    /// Accept `http://` to a loopback address (development and tests).
    pub allow_insecure: bool,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(6 * 3600),
            retry_window: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
            failing_after: 5,
            allow_insecure: false,
        }
    }
}

fn ms(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl DeliveryPolicy {
    /// After attempt number `attempts` (1 for the first) failed at `now`: when to try
    /// again, or `None` when the delivery is dead (its window, from `retry_from`, is over).
    /// `unit` in `[0, 1)` is the jitter's random draw.
    pub fn next_attempt(&self, attempts: i64, retry_from: Millis, now: Millis, unit: f64) -> Option<Millis> {
        if now.saturating_sub(retry_from) >= ms(self.retry_window) {
            return None;
        }
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 40)).unwrap_or(40);
        let delay = ms(self.retry_base).saturating_mul(1_i64 << doublings.min(40)).min(ms(self.retry_cap)).max(1);
        // Equal jitter: half the delay, plus up to the other half at random.
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let jitter = ((delay / 2) as f64 * unit.clamp(0.0, 1.0)) as i64;
        Some(now.saturating_add(delay - delay / 2 + jitter))
    }

    /// How long a claimed delivery stays leased to the worker that claimed it: past the
    /// attempt's timeout with room to settle it, so no other worker sends it meanwhile. A
    /// worker that died holding leases (a crash) delays those deliveries by this much.
    pub fn lease(&self) -> Millis {
        ms(self.timeout).saturating_mul(2).saturating_add(5_000)
    }
}

/// A random draw in `[0, 1)` for the jitter (0.5 if the OS has none to give).
pub fn jitter_unit() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap_and_stop_after_the_window() {
        let p = DeliveryPolicy::default();
        assert_eq!(p.next_attempt(1, 0, 0, 0.0), Some(2_500));
        assert_eq!(p.next_attempt(1, 0, 0, 0.999_999), Some(4_999));
        assert_eq!(p.next_attempt(3, 0, 0, 0.0), Some(10_000));
        let capped = p.next_attempt(30, 0, 1_000, 0.0).unwrap() - 1_000;
        assert_eq!(capped, 3 * 3_600_000);
        let day = 24 * 3_600_000;
        assert!(p.next_attempt(17, 0, day - 1, 0.5).is_some());
        assert_eq!(p.next_attempt(17, 0, day, 0.5), None);
        assert_eq!(p.next_attempt(1, day, day, 0.5).map(|t| t > day), Some(true), "a redelivery opens a new window");
    }

    #[test]
    fn retries_last_at_least_a_day() {
        let p = DeliveryPolicy::default();
        let (mut now, mut attempts) = (0, 0);
        while let Some(next) = p.next_attempt(attempts + 1, 0, now, 0.0) {
            attempts += 1;
            now = next;
        }
        assert!(now >= 24 * 3_600_000);
        assert!((15..=25).contains(&attempts), "{attempts} attempts");
        assert!((0.0..1.0).contains(&jitter_unit()));
    }
}
