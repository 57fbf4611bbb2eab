//! The signals a decision weighs. Every client signal is optional: missing means
//! "unknown", never "no".

use crate::clock::Millis;
use crate::decision::Verdict;
use crate::device::DeviceInfo;
use crate::domain::CredentialId;
use crate::passkeys::PasskeyRecord;
use crate::provider::{Ecosystem, ProviderCatalog};

/// What the browser and the request say about the current client.
#[derive(Debug, Clone)]
pub struct ClientSignals {
    /// OS, browser and form factor (headers, Client Hints, the SDK's user agent).
    pub device: DeviceInfo,
    /// Handoff's first-party device cookie, when the browser has one.
    pub device_id: Option<String>,
    /// `getClientCapabilities().hybridTransport`.
    pub hybrid_transport: Option<bool>,
    /// `isUserVerifyingPlatformAuthenticatorAvailable()` (or the `passkeyPlatformAuthenticator` capability).
    pub platform_authenticator: Option<bool>,
    /// `isConditionalMediationAvailable()`.
    pub conditional_mediation: Option<bool>,
    /// The credential this browser used last (first-party hint).
    pub last_credential_id: Option<CredentialId>,
    /// The method the page asks for, after the previous one failed (`decision.retry.then`).
    pub requested: Option<Verdict>,
}

impl ClientSignals {
    /// A client we know nothing about.
    pub fn unknown() -> Self {
        Self {
            device: DeviceInfo::unknown(),
            device_id: None,
            hybrid_transport: None,
            platform_authenticator: None,
            conditional_mediation: None,
            last_credential_id: None,
            requested: None,
        }
    }
}

/// What the engine knows about one of the user's passkeys.
#[derive(Debug, Clone)]
pub struct CredentialFacts {
    /// The credential.
    pub credential_id: CredentialId,
    /// Provider name ("unknown" when unlisted).
    pub provider: String,
    /// How the provider syncs.
    pub ecosystem: Ecosystem,
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

impl CredentialFacts {
    /// The facts of a stored passkey.
    pub fn of(p: &PasskeyRecord, catalog: &ProviderCatalog) -> Self {
        Self::of_summary(&p.summary(), catalog)
    }

    /// The facts of a passkey summary (what decisions read from storage).
    pub fn of_summary(p: &crate::passkeys::PasskeySummary, catalog: &ProviderCatalog) -> Self {
        Self {
            credential_id: p.credential_id.clone(),
            provider: p.provider.clone(),
            ecosystem: catalog.lookup(&p.aaguid).ecosystem,
            transports: p.transports.clone(),
            attachment: p.attachment.clone(),
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
            created_on: p.created_on.clone(),
            created_device_id: p.created_device_id.clone(),
            last_used_on: p.last_used_on.clone(),
            last_used_device_id: p.last_used_device_id.clone(),
        }
    }

    /// True when the browser reported this transport.
    pub fn has_transport(&self, t: &str) -> bool {
        self.transports.iter().any(|x| x == t)
    }
}

/// This identifier's recent failed passkey attempts in this browser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureHistory {
    /// Failures since the last success, within the cooldown window.
    pub recent_failures: u32,
    /// When the latest of them happened.
    pub last_failure_at: Option<Millis>,
}
