//! Plausible passkeys for identifiers that have no account, so that `/login/start` does
//! not reveal which accounts exist: the same response shape, a stable credential list per
//! identifier (derived with a server-wide secret, so repeated requests and other instances
//! agree), and a decision made by the same engine on that inventory.

use sha2::{Digest, Sha256};

use crate::device::{DeviceInfo, FormFactor};
use crate::domain::{CredentialId, Identifier};
use crate::intelligence::CredentialFacts;
use crate::provider::Ecosystem;

fn keyed_hash(key: &[u8], label: &str, identifier: &Identifier) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(label.as_bytes());
    h.update([0]);
    h.update(identifier.as_str().as_bytes());
    h.finalize().into()
}

/// The decoy inventory of an unknown identifier: one passkey on a phone, like most
/// accounts that sign in from a desktop.
pub(crate) fn decoy_inventory(key: &[u8], identifier: &Identifier) -> Vec<CredentialFacts> {
    let id_bytes = keyed_hash(key, "credential-id", identifier);
    let profile = keyed_hash(key, "profile", identifier)[0];
    let (provider, ecosystem, os, browser) = match profile % 20 {
        0..=9 => ("iCloud Keychain", Ecosystem::Apple, "iOS", "Safari"),
        10..=16 => ("Google Password Manager", Ecosystem::Google, "Android", "Chrome"),
        _ => ("Samsung Pass", Ecosystem::Samsung, "Android", "Samsung Internet"),
    };
    vec![CredentialFacts {
        credential_id: CredentialId::from_bytes(id_bytes[..16].to_vec()),
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

    #[test]
    fn decoys_are_stable_per_identifier_and_differ_between_identifiers() {
        let a = Identifier::parse("nobody@example.com").unwrap();
        let b = Identifier::parse("someone@example.com").unwrap();
        let key = b"0123456789abcdef0123456789abcdef";
        assert_eq!(decoy_inventory(key, &a)[0].credential_id, decoy_inventory(key, &a)[0].credential_id);
        assert_ne!(decoy_inventory(key, &a)[0].credential_id, decoy_inventory(key, &b)[0].credential_id);
        assert_ne!(decoy_inventory(b"other key", &a)[0].credential_id, decoy_inventory(key, &a)[0].credential_id);
    }
}
