//! Parsing a batch of client events (PRODUCT.md §4.2).

use std::borrow::Cow;

use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::clock::Millis;
use crate::device::DeviceInfo;
use crate::domain::JourneyId;
use crate::observe::FLOWS;
use crate::storage::StoredEvent;

/// Limits on what one request may carry.
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Events per batch.
    pub max_batch: usize,
    /// Serialized size of one event's `attrs`, in bytes.
    pub max_attrs_bytes: usize,
    /// How far a client clock may be ahead of the server's (skew allowance).
    pub max_future_ms: Millis,
    /// How old an event may be.
    pub max_age_ms: Millis,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_batch: 100,
            max_attrs_bytes: 4096,
            max_future_ms: 24 * 3600 * 1000,
            max_age_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// Who is sending, as read from the request.
#[derive(Debug, Clone)]
pub struct Emitter {
    /// OS, browser, form factor from the request headers.
    pub device: DeviceInfo,
    /// When the client says it sent the batch (its clock), if it did.
    pub sent_at: Option<Millis>,
}

/// Why one event of a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRejection {
    /// Its index in the batch.
    pub index: usize,
    /// Stable code, e.g. `invalid-journey-id`.
    pub code: &'static str,
    /// A sentence naming the field.
    pub message: String,
}

/// The good events of a batch and the refused ones.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// Events to store.
    pub accepted: Vec<StoredEvent>,
    /// Events refused, by index.
    pub rejected: Vec<EventRejection>,
}

fn reject(index: usize, code: &'static str, message: impl Into<String>) -> EventRejection {
    EventRejection { index, code, message: message.into() }
}

/// One event as sent, every field still raw: each is read on its own so that an error
/// names the field, and `attrs` is never built into a tree (it is kept as its JSON text).
#[derive(serde::Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "journeyId", borrow)]
    journey_id: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    device: Option<&'a RawValue>,
    #[serde(borrow)]
    flow: Option<&'a RawValue>,
    #[serde(borrow)]
    ts: Option<&'a RawValue>,
    #[serde(borrow)]
    attrs: Option<&'a RawValue>,
    #[serde(rename = "eventId", borrow)]
    event_id: Option<&'a RawValue>,
}

/// A raw field as text, unless absent, `null` or not a string.
fn string<'a>(raw: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    raw.and_then(|r| serde_json::from_str::<Cow<'a, str>>(r.get()).ok())
}

fn is_null(raw: Option<&RawValue>) -> bool {
    raw.is_none_or(|r| r.get() == "null")
}

/// The longest a ceremony may be said to have taken (`elapsedMs`): a day.
pub const MAX_ELAPSED_MS: Millis = 24 * 3600 * 1000;

/// A batch's `sentAt`, checked like an event's `ts`: within a day ahead of `now` and seven
/// days behind it, so the clock offset it yields can never overflow the arithmetic that
/// corrects timestamps with it. `None` when it is out of that range.
pub fn checked_sent_at(sent_at: Millis, limits: &IngestLimits, now: Millis) -> Option<Millis> {
    let earliest = now.saturating_sub(limits.max_age_ms);
    let latest = now.saturating_add(limits.max_future_ms);
    (earliest..=latest).contains(&sent_at).then_some(sent_at)
}

/// A client's time: milliseconds since the epoch (a JSON number) or RFC 3339 text.
pub fn parse_client_time(raw: Option<&RawValue>) -> Option<Millis> {
    let raw = raw?.get();
    if raw.starts_with('"') {
        let text: Cow<'_, str> = serde_json::from_str(raw).ok()?;
        return if text.parse::<i64>().is_ok() { None } else { crate::clock::parse_time(&text) };
    }
    match serde_json::from_str::<Value>(raw).ok()? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
}

fn parse_one(
    index: usize,
    raw: &RawValue,
    emitter: &Emitter,
    limits: &IngestLimits,
    now: Millis,
) -> Result<StoredEvent, EventRejection> {
    let obj: RawEvent<'_> = serde_json::from_str(raw.get())
        .map_err(|_| reject(index, "invalid-event", "each event must be a JSON object with each field once"))?;
    let journey = string(obj.journey_id)
        .ok_or_else(|| reject(index, "invalid-journey-id", "journeyId is missing or not a string"))
        .and_then(|j| {
            JourneyId::parse(&j).map_err(|_| reject(index, "invalid-journey-id", "journeyId is not a UUID"))
        })?;
    let name = string(obj.name).ok_or_else(|| reject(index, "invalid-name", "name is missing or not a string"))?;
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if !name_ok {
        return Err(reject(index, "invalid-name", "name must be 1-64 characters of a-z, 0-9, '.', '_' or '-'"));
    }
    let device = match string(obj.device).as_deref() {
        Some(d @ ("desktop" | "mobile")) => d.to_owned(),
        Some("server") => {
            return Err(reject(index, "invalid-device", "device \"server\" is reserved for the server's own events"));
        }
        _ => return Err(reject(index, "invalid-device", "device must be \"desktop\" or \"mobile\"")),
    };
    let flow = if is_null(obj.flow) {
        None
    } else {
        match string(obj.flow) {
            Some(f) if FLOWS.contains(&f.as_ref()) => Some(f.into_owned()),
            _ => return Err(reject(index, "invalid-flow", format!("flow must be one of {}", FLOWS.join(", ")))),
        }
    };
    let ts = parse_client_time(obj.ts)
        .ok_or_else(|| reject(index, "invalid-ts", "ts must be RFC 3339 text or milliseconds since the epoch"))?;
    if ts > now.saturating_add(limits.max_future_ms) {
        return Err(reject(index, "invalid-ts", "ts is more than a day in the future"));
    }
    if ts < now.saturating_sub(limits.max_age_ms) {
        return Err(reject(index, "invalid-ts", "ts is more than seven days old"));
    }
    let attrs = match obj.attrs {
        None => "{}".to_owned(),
        Some(a) if a.get() == "null" => "{}".to_owned(),
        Some(a) if a.get().starts_with('{') => a.get().to_owned(),
        Some(_) => return Err(reject(index, "invalid-attrs", "attrs must be an object")),
    };
    if attrs.len() > limits.max_attrs_bytes {
        return Err(reject(index, "invalid-attrs", format!("attrs is larger than {} bytes", limits.max_attrs_bytes)));
    }
    let event_id = if is_null(obj.event_id) {
        Uuid::new_v4().to_string()
    } else {
        match string(obj.event_id) {
            // Unique per journey (the store's key is journey + event id).
            Some(id) if !id.is_empty() && id.len() <= 64 && !id.chars().any(char::is_control) => id.into_owned(),
            _ => return Err(reject(index, "invalid-event-id", "eventId must be a string of 1-64 characters")),
        }
    };
    if attrs.contains("\"elapsedMs\"") {
        let elapsed = serde_json::from_str::<Value>(&attrs).ok().and_then(|a| a.get("elapsedMs").cloned());
        let in_range = match elapsed {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|ms| (0.0..=MAX_ELAPSED_MS as f64).contains(&ms)),
            Some(_) => false,
        };
        if !in_range {
            return Err(reject(
                index,
                "invalid-attrs",
                format!("attrs.elapsedMs must be a number of milliseconds from 0 to {MAX_ELAPSED_MS} (a day)"),
            ));
        }
    }
    let app_version = if attrs.contains("\"appVersion\"") {
        serde_json::from_str::<Value>(&attrs)
            .ok()
            .and_then(|a| a.get("appVersion").and_then(Value::as_str).map(|v| v.chars().take(64).collect()))
    } else {
        None
    };
    Ok(StoredEvent {
        event_id,
        journey_id: journey,
        name: name.into_owned(),
        device,
        flow,
        ts,
        received_at: now,
        attrs,
        os: Some(emitter.device.os.clone()),
        browser: Some(emitter.device.browser.clone()),
        form_factor: Some(emitter.device.form_factor.as_str().to_owned()),
        app_version,
        clock_offset: emitter.sent_at.map(|sent| now.saturating_sub(sent)),
    })
}

/// Validates every event of a batch on its own.
pub fn parse_batch(events: &[Box<RawValue>], emitter: &Emitter, limits: &IngestLimits, now: Millis) -> BatchOutcome {
    let mut out = BatchOutcome::default();
    for (index, raw) in events.iter().enumerate() {
        match parse_one(index, raw, emitter, limits, now) {
            Ok(e) => out.accepted.push(e),
            Err(r) => out.rejected.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn emitter() -> Emitter {
        Emitter { device: DeviceInfo::unknown(), sent_at: None }
    }

    #[test]
    fn good_events_pass_and_bad_ones_name_their_field() {
        let now = 1_800_000_000_000;
        let j = Uuid::new_v4().to_string();
        let batch = vec![
            json!({"journeyId": j, "name": "qr.shown", "device": "desktop", "ts": now, "attrs": {"sizePx": 264}}),
            json!({"journeyId": "nope", "name": "qr.shown", "device": "desktop", "ts": now}),
            json!({"journeyId": j, "name": "Bad Name!", "device": "desktop", "ts": now}),
            json!({"journeyId": j, "name": "x", "device": "server", "ts": now}),
            json!({"journeyId": j, "name": "x", "device": "mobile", "ts": "2027-01-15T08:00:00Z", "flow": "warp"}),
            json!({"journeyId": j, "name": "x", "device": "mobile", "ts": now + 2 * 24 * 3600 * 1000}),
            json!({"journeyId": j, "name": "x", "device": "mobile", "ts": now, "attrs": [1]}),
            json!("not an object"),
            json!({"journeyId": j, "name": "mobile.opened", "device": "mobile", "ts": "2027-01-15T08:00:00.5Z", "eventId": "e1", "attrs": {"appVersion": "3.2.1"}}),
        ];
        let batch: Vec<Box<RawValue>> = batch.iter().map(|v| RawValue::from_string(v.to_string()).unwrap()).collect();
        let out = parse_batch(&batch, &emitter(), &IngestLimits::default(), now);
        let codes: Vec<(usize, &str)> = out.rejected.iter().map(|r| (r.index, r.code)).collect();
        assert_eq!(
            codes,
            vec![
                (1, "invalid-journey-id"),
                (2, "invalid-name"),
                (3, "invalid-device"),
                (4, "invalid-flow"),
                (5, "invalid-ts"),
                (6, "invalid-attrs"),
                (7, "invalid-event")
            ]
        );
        assert_eq!(out.accepted.len(), 2);
        assert_eq!(out.accepted[1].ts, 1_800_000_000_500);
        assert_eq!(out.accepted[1].event_id, "e1");
        assert_eq!(out.accepted[1].app_version.as_deref(), Some("3.2.1"));
        assert!(out.accepted.iter().all(|e| e.received_at == now));
    }
}
