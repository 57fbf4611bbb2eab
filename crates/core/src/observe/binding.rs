//! Journeys bound to the browser that started them. The server writes its own events
//! (`decision.made`, `session.established`, …) into the journey a request names, so a
//! client that could name any journey could relabel a stranger's attempt or mark it signed
//! in (security review L5). A journey id the server mints carries, in its last 62 bits, a
//! MAC of its first 64 bits (the time and a few random bits) and the browser's device
//! cookie under a server-wide key: a browser can continue only a journey it started, and
//! no table is written or read to know that. A name that does not verify for this browser
//! starts a new journey.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::JourneyId;

/// Bytes of the MAC at the end of a bound journey id.
const TAG: usize = 6;

/// Mints and checks browser-bound journey ids.
#[derive(Clone)]
pub struct JourneyBinder {
    key: [u8; 32],
}

impl std::fmt::Debug for JourneyBinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JourneyBinder").finish_non_exhaustive()
    }
}

impl JourneyBinder {
    /// A binder whose key is derived from a server-wide secret (the same on every
    /// instance, so any instance can continue a journey another started).
    pub fn new(secret: &[u8]) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"handoff-journey-binding:");
        hash.update(secret);
        Self { key: hash.finalize().into() }
    }

    fn tag(&self, head: &[u8], device: &str) -> Option<[u8; TAG]> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(head);
        mac.update(device.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(full.get(..TAG)?);
        Some(tag)
    }

    /// A new journey id (time-ordered, version 7) bound to the browser `device`.
    pub fn mint(&self, device: &str) -> JourneyId {
        let mut bytes = *Uuid::now_v7().as_bytes();
        let mut random = [0u8; 4];
        if getrandom::fill(&mut random).is_err() {
            return JourneyId::new();
        }
        // Bytes 6–9 hold the version nibble, 12 random bits, the variant bits and 14 more
        // random bits (RFC 9562 layout), so ids minted in one millisecond differ.
        bytes[6] = 0x70 | (random[0] & 0x0f);
        bytes[7] = random[1];
        bytes[8] = 0x80 | (random[2] & 0x3f);
        bytes[9] = random[3];
        match self.tag(&bytes[..16 - TAG], device) {
            Some(tag) => bytes[16 - TAG..].copy_from_slice(&tag),
            None => return JourneyId::new(),
        }
        JourneyId::from_uuid(Uuid::from_bytes(bytes))
    }

    /// True when `id` was minted for the browser `device`.
    pub fn belongs_to(&self, id: JourneyId, device: &str) -> bool {
        let bytes = id.uuid().into_bytes();
        self.tag(&bytes[..16 - TAG], device).is_some_and(|tag| {
            // Constant time: the comparison says nothing about how much of a guess matched.
            tag.iter().zip(&bytes[16 - TAG..]).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
        })
    }

    /// The journey a request from the browser `device` works in: the one it names when
    /// that browser started it, else a new one for it. Without a device cookie nothing can
    /// be bound, and every request starts a journey of its own.
    pub fn continue_or_start(&self, named: Option<JourneyId>, device: Option<&str>) -> JourneyId {
        match (named, device) {
            (Some(id), Some(device)) if self.belongs_to(id, device) => id,
            (_, Some(device)) => self.mint(device),
            (_, None) => JourneyId::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_continues_only_its_own_journeys() {
        let binder = JourneyBinder::new(b"secret");
        let mine = binder.mint("browser-a");
        assert_ne!(binder.mint("browser-a"), mine, "two ids in one millisecond differ");
        assert_eq!(mine.uuid().get_version_num(), 7);
        assert_eq!(mine.uuid().get_variant(), uuid::Variant::RFC4122);
        assert!(binder.belongs_to(mine, "browser-a"));
        assert!(!binder.belongs_to(mine, "browser-b"));
        assert_eq!(binder.continue_or_start(Some(mine), Some("browser-a")), mine);
        let other = binder.continue_or_start(Some(mine), Some("browser-b"));
        assert_ne!(other, mine);
        assert!(binder.belongs_to(other, "browser-b"));
        // A client-made id, or another server's key: a new journey.
        assert_ne!(binder.continue_or_start(Some(JourneyId::new()), Some("browser-a")), mine);
        assert!(!JourneyBinder::new(b"other").belongs_to(mine, "browser-a"));
        assert_ne!(binder.continue_or_start(Some(mine), None), mine);
    }
}
