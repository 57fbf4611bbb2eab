//! What Handoff stores about accounts and passkeys.

use webauthn_rs_core::proto::Credential;

use crate::clock::Millis;
use crate::device::DeviceInfo;
use crate::domain::{CredentialId, DisplayName, Identifier, UserId};

/// An account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its id (also the WebAuthn user handle).
    pub id: UserId,
    /// The identifier the person signs in with.
    pub identifier: Identifier,
    /// The name authenticators show.
    pub display_name: DisplayName,
    /// When it was created.
    pub created_at: Millis,
}

/// A registered passkey and the record of where it lives.
#[derive(Debug, Clone)]
pub struct PasskeyRecord {
    /// The credential id.
    pub credential_id: CredentialId,
    /// The owner.
    pub user_id: UserId,
    /// The public key and counters, as webauthn-rs keeps them.
    pub credential: Credential,
    /// The authenticator's AAGUID (nil when it sent none).
    pub aaguid: uuid::Uuid,
    /// The provider name at registration time ("unknown" when not listed).
    pub provider: String,
    /// Transports the browser reported (`internal`, `hybrid`, `usb`, …).
    pub transports: Vec<String>,
    /// `platform` or `cross-platform`, when the browser said.
    pub attachment: Option<String>,
    /// Backup eligible (BE): the key may be synced.
    pub backup_eligible: bool,
    /// Backed up (BS): the key is synced right now.
    pub backup_state: bool,
    /// The device it was made on.
    pub created_on: DeviceInfo,
    /// The first-party device cookie of the browser it was made in.
    pub created_device_id: Option<String>,
    /// When it was made.
    pub created_at: Millis,
    /// When it was last used to sign in.
    pub last_used_at: Option<Millis>,
    /// The device it was last used on.
    pub last_used_on: Option<DeviceInfo>,
    /// The device cookie of the browser it was last used in.
    pub last_used_device_id: Option<String>,
}

impl PasskeyRecord {
    /// Where it lives, without the key material.
    pub fn summary(&self) -> PasskeySummary {
        PasskeySummary {
            credential_id: self.credential_id.clone(),
            aaguid: self.aaguid,
            provider: self.provider.clone(),
            transports: self.transports.clone(),
            attachment: self.attachment.clone(),
            backup_eligible: self.backup_eligible,
            backup_state: self.backup_state,
            created_on: self.created_on.clone(),
            created_device_id: self.created_device_id.clone(),
            last_used_on: self.last_used_on.clone(),
            last_used_device_id: self.last_used_device_id.clone(),
        }
    }
}

/// Where a passkey lives, without its key material: what decisions read.
#[derive(Debug, Clone)]
pub struct PasskeySummary {
    /// The credential id.
    pub credential_id: CredentialId,
    /// The authenticator's AAGUID.
    pub aaguid: uuid::Uuid,
    /// Provider name at registration.
    pub provider: String,
    /// Transports reported at registration.
    pub transports: Vec<String>,
    /// `platform` / `cross-platform`.
    pub attachment: Option<String>,
    /// BE.
    pub backup_eligible: bool,
    /// BS.
    pub backup_state: bool,
    /// The device it was made on.
    pub created_on: DeviceInfo,
    /// The device cookie of the browser it was made in.
    pub created_device_id: Option<String>,
    /// The device it was last used on.
    pub last_used_on: Option<DeviceInfo>,
    /// The device cookie of the browser it was last used in.
    pub last_used_device_id: Option<String>,
}

/// A successful use of a passkey, written back with a compare-and-set on the counter.
#[derive(Debug, Clone)]
pub struct PasskeyUse {
    /// Which passkey.
    pub credential_id: CredentialId,
    /// The credential with its new counter and backup flags.
    pub credential: Credential,
    /// The counter the authenticator reported.
    pub counter: u32,
    /// Current backup state.
    pub backup_state: bool,
    /// Current backup eligibility.
    pub backup_eligible: bool,
    /// When.
    pub at: Millis,
    /// On which device.
    pub on: DeviceInfo,
    /// The browser's device cookie.
    pub device_id: Option<String>,
}

/// The signed-in user behind a session.
#[derive(Debug, Clone)]
pub struct SessionUser {
    /// The user.
    pub user_id: UserId,
    /// When the session started.
    pub created_at: Millis,
    /// When the session's user last completed a user-verified passkey ceremony.
    pub verified_at: Millis,
    /// SHA-256 of the session token (identifies this browser's session).
    pub session_digest: String,
}
