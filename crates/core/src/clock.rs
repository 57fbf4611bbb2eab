//! Time as the domain sees it: milliseconds since the Unix epoch, in one place so that
//! storage, expiry checks and API timestamps agree, and RFC 3339 rendering for the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Where a running server takes the time from: the system clock, or (for tests of expiry
/// and time windows) the system clock moved forward by [`Clock::advance`], so a test of a
/// 2-minute window does not wait 2 minutes. A cheap handle: clones share one offset. The
/// services that decide expiry (ceremonies, sessions and step-up, QR attempts) and the
/// server's janitors take it; rate-limit windows and logs stay on the system clock.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    ahead: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system clock, movable forward with [`Clock::advance`].
    pub fn adjustable() -> Self {
        Self { ahead: Some(Arc::new(AtomicI64::new(0))) }
    }

    /// The current time.
    pub fn now_ms(&self) -> Millis {
        let ahead = self.ahead.as_ref().map_or(0, |a| a.load(Ordering::Relaxed));
        now_ms().saturating_add(ahead)
    }

    /// Moves an adjustable clock forward (a no-op on the system clock; returns whether it
    /// moved).
    pub fn advance(&self, by: Duration) -> bool {
        match &self.ahead {
            Some(ahead) => {
                ahead.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Renders a millisecond timestamp as RFC 3339 in UTC (e.g. `2026-11-23T17:01:35.123Z`).
pub fn rfc3339(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Reads RFC 3339 text or milliseconds since the epoch (as clients and query strings send).
pub fn parse_time(s: &str) -> Option<Millis> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
}

/// Reads a time as [`parse_time`] does, or an age before `now`: a whole number of minutes,
/// hours or days (`90m`, `24h`, `7d`), as operators type windows in the CLI and dashboard.
pub fn parse_time_or_age(s: &str, now: Millis) -> Option<Millis> {
    if let Some(t) = parse_time(s) {
        return Some(t);
    }
    // The unit is the last byte; text ending in a wider character is no age.
    let (n, unit) = s.split_at(s.len().checked_sub(1).filter(|i| s.is_char_boundary(*i))?);
    let n: i64 = n.parse().ok().filter(|n| *n >= 0)?;
    let unit: i64 = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    now.checked_sub(n.checked_mul(unit)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_forward_and_the_system_clock_does_not() {
        let clock = Clock::adjustable();
        let copy = clock.clone();
        let before = clock.now_ms();
        assert!(clock.advance(Duration::from_secs(3600)));
        assert!(copy.now_ms() >= before + 3_600_000, "clones share the offset");
        let system = Clock::system();
        assert!(!system.advance(Duration::from_secs(3600)));
        assert!(system.now_ms() < before + 3_600_000);
    }

    #[test]
    fn renders_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_time("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
        assert_eq!(parse_time("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn ages_count_back_from_now() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_time_or_age("90m", now), Some(now - 90 * 60_000));
        assert_eq!(parse_time_or_age("24h", now), Some(now - 86_400_000));
        assert_eq!(parse_time_or_age("7d", now), Some(now - 7 * 86_400_000));
        assert_eq!(parse_time_or_age("2023-11-14T22:13:20.123Z", now), Some(1_700_000_000_123));
        for bad in ["", "h", "-1d", "7w", "1.5h", "99999999999999999d", "d7", "7é", "é"] {
            assert_eq!(parse_time_or_age(bad, now), None, "{bad}");
        }
    }
}
