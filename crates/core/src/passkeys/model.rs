//! What Handoff stores about accounts and passkeys.

use serde::{Deserialize, Serialize};
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
    /// How the session was made.
    pub method: SessionMethod,
    /// When this browser last completed a user-verified passkey ceremony (0: never; a
    /// session made by QR approval, a device grant or recovery starts without one).
    pub verified_at: Millis,
    /// Sensitive actions are allowed until this time (`verified_at` plus the step-up
    /// window); `None` when this browser never ran a passkey ceremony in the session.
    pub step_up_until: Option<Millis>,
    /// Until when this session may add one passkey on this device without a step-up
    /// (granted on the phone for a QR approval, or a recovery session); 0: not at all.
    pub may_add_passkey_until: Millis,
    /// SHA-256 of the session token (identifies this browser's session).
    pub session_digest: String,
}

impl SessionUser {
    /// True while a sensitive action needs no new passkey ceremony (PRODUCT §8).
    pub fn stepped_up(&self, now: Millis) -> bool {
        self.step_up_until.is_some_and(|until| now < until)
    }

    /// `Ok` when the session completed a user-verified passkey ceremony on this device
    /// within the step-up window, else `ReauthRequired`.
    pub fn require_step_up(&self, now: Millis) -> crate::error::Result<()> {
        if self.stepped_up(now) { Ok(()) } else { Err(crate::error::DomainError::ReauthRequired) }
    }

    /// True while the session holds an unused grant to add a passkey on this device.
    pub fn may_add_passkey(&self, now: Millis) -> bool {
        now < self.may_add_passkey_until
    }
}

/// How a session was made. Only a passkey ceremony in this browser (here or cross-device,
/// where the browser ran the ceremony with the phone nearby) counts as a verification on
/// this device; the others start without one and must step up before sensitive actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SessionMethod {
    /// A passkey on this device (sign-in or sign-up).
    Passkey,
    /// The browser's cross-device (hybrid) flow with a phone's passkey.
    CrossDevice,
    /// Handoff QR approval: a signed-in phone approved this browser.
    QrApproval,
    /// A one-time code sent by email (PRODUCT §7): a recovery session.
    EmailCode,
    /// One of the account's recovery codes: a recovery session.
    RecoveryCode,
    /// An operator's single-use recovery link: a recovery session.
    RecoveryLink,
}

impl SessionMethod {
    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::CrossDevice => "cross-device",
            Self::QrApproval => "qr-approval",
            Self::EmailCode => "email-code",
            Self::RecoveryCode => "recovery-code",
            Self::RecoveryLink => "recovery-link",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "passkey" => Self::Passkey,
            "cross-device" => Self::CrossDevice,
            "qr-approval" => Self::QrApproval,
            "email-code" => Self::EmailCode,
            "recovery-code" => Self::RecoveryCode,
            "recovery-link" => Self::RecoveryLink,
            _ => return None,
        })
    }

    /// True when making the session ran a user-verified passkey ceremony in this browser.
    pub fn verifies_here(self) -> bool {
        matches!(self, Self::Passkey | Self::CrossDevice)
    }

    /// True for sessions made by a recovery method (PRODUCT §7): they may add a passkey on
    /// this device and see the account; anything else sensitive needs a passkey ceremony
    /// on this device first.
    pub fn is_recovery(self) -> bool {
        matches!(self, Self::EmailCode | Self::RecoveryCode | Self::RecoveryLink)
    }
}
