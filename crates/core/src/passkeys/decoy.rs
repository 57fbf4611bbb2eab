//! Plausible passkeys for identifiers that have no account, so that `/login/start` does
//! not reveal which accounts exist: the same response shape, a stable credential list per
//! identifier (derived with a server-wide secret, so repeated requests and other instances
//! agree), and a decision made by the same engine on that inventory.
//!
//! A decoy copies the shape of a real account's inventory (how many passkeys, their
//! providers, transports, attachment, backup flags, the kind of device each was made on,
//! the length of each credential id), so the distribution of answers for unknown
//! identifiers is the distribution for known ones. The shapes come from a sample of up to
//! [`SAMPLE`] accounts, refreshed in the background; an identifier keeps the same
//! account's shape as the sample grows (rendezvous hashing: it moves only when a new
//! account outranks its current one). No credential id, device cookie or identifier of a
//! real account is ever copied. With no accounts yet, the decoy is one phone-held passkey.

use std::sync::{Arc, PoisonError, RwLock};

use sha2::{Digest, Sha256};

use crate::device::{DeviceInfo, FormFactor};
use crate::domain::{CredentialId, Identifier, UserId};
use crate::intelligence::CredentialFacts;
use crate::passkeys::PasskeySummary;
use crate::provider::{Ecosystem, ProviderCatalog};

/// Accounts sampled for decoy shapes.
pub const SAMPLE: u32 = 256;

fn keyed_hash(key: &[u8], label: &str, identifier: &Identifier) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(label.as_bytes());
    h.update([0]);
    h.update(identifier.as_str().as_bytes());
    h.finalize().into()
}

/// `len` bytes derived from the key, the identifier and the passkey's place in the list.
fn decoy_id(key: &[u8], identifier: &Identifier, index: usize, len: usize) -> CredentialId {
    let mut bytes = Vec::with_capacity(len);
    let mut block = 0u32;
    while bytes.len() < len {
        bytes.extend_from_slice(&keyed_hash(key, &format!("credential-id/{index}/{block}"), identifier));
        block += 1;
    }
    bytes.truncate(len.clamp(16, 1023));
    CredentialId::from_bytes(bytes)
}

/// One sampled account: its rank key (from its user id) and its passkeys.
type Shape = (u64, Vec<PasskeySummary>);

/// The shapes of sampled real inventories, each with a stable rank key.
#[derive(Default)]
pub struct DecoyShapes {
    shapes: RwLock<Arc<Vec<Shape>>>,
}

impl std::fmt::Debug for DecoyShapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecoyShapes").finish_non_exhaustive()
    }
}

/// A well-mixed 64-bit value of `x` (splitmix64's finaliser).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl DecoyShapes {
    /// Replaces the sample.
    pub fn replace(&self, sample: Vec<(UserId, Vec<PasskeySummary>)>) {
        let shapes = sample
            .into_iter()
            .map(|(user, passkeys)| {
                let b = user.uuid().into_bytes();
                (u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]), passkeys)
            })
            .collect();
        *self.shapes.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(shapes);
    }

    /// Accounts in the sample.
    pub fn accounts(&self) -> usize {
        self.shapes.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The decoy inventory of an unknown identifier.
    pub(crate) fn inventory(
        &self,
        key: &[u8],
        identifier: &Identifier,
        catalog: &ProviderCatalog,
    ) -> Vec<CredentialFacts> {
        let shapes = self.shapes.read().unwrap_or_else(PoisonError::into_inner).clone();
        let h = keyed_hash(key, "shape", identifier);
        let seed = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        let Some((_, shape)) = shapes.iter().max_by_key(|(rank, _)| mix(seed ^ rank)) else {
            return fallback_inventory(key, identifier);
        };
        shape
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut facts = CredentialFacts::of_summary(p, catalog);
                facts.credential_id = decoy_id(key, identifier, i, p.credential_id.as_bytes().len());
                // Nothing that could match this browser: a decoy was never used anywhere.
                facts.created_device_id = None;
                facts.last_used_device_id = None;
                facts
            })
            .collect()
    }
}

/// The decoy before any account exists: one passkey on a phone, like most accounts that
/// sign in from a desktop.
fn fallback_inventory(key: &[u8], identifier: &Identifier) -> Vec<CredentialFacts> {
    let profile = keyed_hash(key, "profile", identifier)[0];
    let (provider, ecosystem, os, browser) = match profile % 20 {
        0..=9 => ("iCloud Keychain", Ecosystem::Apple, "iOS", "Safari"),
        10..=16 => ("Google Password Manager", Ecosystem::Google, "Android", "Chrome"),
        _ => ("Samsung Pass", Ecosystem::Samsung, "Android", "Samsung Internet"),
    };
    vec![CredentialFacts {
        credential_id: decoy_id(key, identifier, 0, 16),
        provider: provider.into(),
        ecosystem,
        transports: vec!["hybrid".into(), "internal".into()],
        attachment: Some("platform".into()),
        backup_eligible: true,
        backup_state: true,
        created_on: DeviceInfo { os: os.into(), browser: browser.into(), form_factor: FormFactor::Phone },
        created_device_id: None,
        last_used_on: None,
        last_used_device_id: None,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(len: usize, provider: &str) -> PasskeySummary {
        PasskeySummary {
            credential_id: CredentialId::from_bytes(vec![7; len]),
            aaguid: uuid::Uuid::nil(),
            provider: provider.into(),
            transports: vec!["internal".into()],
            attachment: Some("platform".into()),
            backup_eligible: true,
            backup_state: true,
            created_on: DeviceInfo::unknown(),
            created_device_id: Some("real-browser".into()),
            last_used_on: None,
            last_used_device_id: Some("real-browser".into()),
        }
    }

    #[test]
    fn decoys_are_stable_per_identifier_and_copy_real_shapes() {
        let a = Identifier::parse("nobody@example.com").unwrap();
        let b = Identifier::parse("someone@example.com").unwrap();
        let key = b"0123456789abcdef0123456789abcdef";
        let catalog = ProviderCatalog::built_in();
        let shapes = DecoyShapes::default();
        // No accounts yet: one phone passkey, stable, keyed.
        let first = shapes.inventory(key, &a, &catalog);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].credential_id, shapes.inventory(key, &a, &catalog)[0].credential_id);
        assert_ne!(first[0].credential_id, shapes.inventory(key, &b, &catalog)[0].credential_id);
        assert_ne!(first[0].credential_id, shapes.inventory(b"other key", &a, &catalog)[0].credential_id);

        let sample: Vec<(UserId, Vec<PasskeySummary>)> = (0..40)
            .map(|i| (UserId::new(), (0..=(i % 3)).map(|j| summary(16 + 16 * j, "1Password")).collect()))
            .collect();
        shapes.replace(sample.clone());
        let decoy = shapes.inventory(key, &a, &catalog);
        assert!((1..=3).contains(&decoy.len()));
        for (i, c) in decoy.iter().enumerate() {
            assert_eq!(c.credential_id.as_bytes().len(), 16 + 16 * i, "lengths copied");
            assert_ne!(c.credential_id.as_bytes(), vec![7; 16 + 16 * i].as_slice(), "never a real id");
            assert!(c.created_device_id.is_none() && c.last_used_device_id.is_none());
        }
        // More accounts: the identifier keeps its shape unless a newcomer outranks it.
        let mut grown = sample;
        grown.extend((0..4).map(|_| (UserId::new(), vec![summary(64, "Bitwarden")])));
        shapes.replace(grown);
        let moved = (0..50)
            .map(|i| Identifier::parse(&format!("ghost{i}@example.com")).unwrap())
            .filter(|id| shapes.inventory(key, id, &catalog).iter().any(|c| c.provider == "Bitwarden"))
            .count();
        assert!(moved < 20, "few identifiers move to the newcomers' shapes: {moved}/50");
    }
}
