//! Handoff as an identity provider (PRODUCT §6): an OpenID Connect provider whose sign-in
//! page is Handoff's own (so every passkey flow, QR approval and journey works inside an
//! application's sign-in), and signed sign-in proofs for applications that run the SDK on
//! their own pages. The state machines are ours and small; JOSE is josekit
//! (`docs/decisions/0014-oidc-provider.md`). Nothing here knows HTTP: the server's
//! `oidc` area turns requests into these calls and the answers into RFC-shaped replies.

pub mod authorize;
pub mod clients;
pub mod device;
pub mod device_model;
pub mod keys;
pub mod model;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

pub use authorize::{AuthorizeError, Next};
pub use clients::{ClientRegistry, ConfiguredClient, Registered};
pub use keys::{KeyRing, SigningAlg};
pub use model::{Client, ClientSpec};
pub use tokens::{OAuthError, TokenRequest, TokenResponse};

use crate::clock::{Clock, Millis};
use crate::passkeys::SessionMethod;
use crate::storage::{Accounts, Grants, SecurityEvents};

/// Lifetimes and names of the provider.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// `iss` (HANDOFF_ISSUER, default the first origin), without a trailing slash.
    pub issuer: String,
    /// An authorization code's life (at most 60 s, PRODUCT §6.1).
    pub code_ttl: Duration,
    /// An access token's life.
    pub access_ttl: Duration,
    /// An ID token's life.
    pub id_token_ttl: Duration,
    /// The life of a refresh token family, from the sign-in.
    pub refresh_ttl: Duration,
    /// How long an authorization request waits for the sign-in and consent.
    pub request_ttl: Duration,
    /// A sign-in proof's life (at most 2 min, PRODUCT §6.3).
    pub proof_ttl: Duration,
    /// A device sign-in's life (at most 10 min, PRODUCT §6.2).
    pub device_ttl: Duration,
    /// How long a device waits between polls, at first.
    pub device_interval: Duration,
}

impl OidcSettings {
    /// The defaults for `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            code_ttl: Duration::from_secs(60),
            access_ttl: Duration::from_secs(10 * 60),
            id_token_ttl: Duration::from_secs(60 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            request_ttl: Duration::from_secs(30 * 60),
            proof_ttl: Duration::from_secs(120),
            device_ttl: Duration::from_secs(600),
            device_interval: Duration::from_secs(5),
        }
    }

    /// The longest any signed token lives: a retired key stays published this long.
    pub fn longest_signed(&self) -> Duration {
        self.id_token_ttl.max(self.proof_ttl)
    }

    pub(crate) fn ms(d: Duration) -> Millis {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
    pub(crate) fn code_ttl_ms(&self) -> Millis {
        Self::ms(self.code_ttl)
    }
    pub(crate) fn access_ttl_ms(&self) -> Millis {
        Self::ms(self.access_ttl)
    }
    pub(crate) fn id_token_ttl_ms(&self) -> Millis {
        Self::ms(self.id_token_ttl)
    }
    pub(crate) fn refresh_ttl_ms(&self) -> Millis {
        Self::ms(self.refresh_ttl)
    }
    pub(crate) fn request_ttl_ms(&self) -> Millis {
        Self::ms(self.request_ttl)
    }
}

/// RFC 8176 `amr` values for how a session was made. `pop`: a key proved possession (a
/// passkey); `mfa`: the passkey verified the user *on this device* (possession plus PIN
/// or biometrics); `mca`: a second device and channel took part. A QR approval lacks `mfa`
/// because this device ran no passkey ceremony (the same reason it needs a step-up,
/// PRODUCT §8). `docs/decisions/0014-oidc-provider.md` has the table.
pub fn amr_of(method: SessionMethod) -> &'static [&'static str] {
    match method {
        SessionMethod::Passkey => &["pop", "mfa"],
        SessionMethod::CrossDevice => &["pop", "mfa", "mca"],
        SessionMethod::QrApproval => &["pop", "mca"],
        // A code or link someone received: a one-time password, nothing more.
        SessionMethod::EmailCode | SessionMethod::RecoveryCode | SessionMethod::RecoveryLink => &["otp"],
    }
}

/// The provider: authorization, tokens, userinfo, logout and sign-in proofs.
#[derive(Clone)]
pub struct OidcService {
    settings: Arc<OidcSettings>,
    clients: ClientRegistry,
    storage: Arc<dyn Grants>,
    accounts: Arc<dyn Accounts>,
    storage_security: Arc<dyn SecurityEvents>,
    recovery: Arc<dyn crate::storage::Recovery>,
    keys: KeyRing,
    clock: Clock,
    journal: Option<crate::observe::Journal>,
}

impl OidcService {
    /// Records `oidc.code_issued` and the device sign-ins' steps in their journeys
    /// through `journal`.
    pub fn with_journal(mut self, journal: crate::observe::Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The provider over `storage`, signing with `keys`.
    pub fn new(settings: OidcSettings, storage: &crate::storage::Storage, keys: KeyRing, clock: Clock) -> Self {
        Self {
            settings: Arc::new(settings),
            clients: ClientRegistry::new(storage.oidc_clients.clone(), clock.clone()),
            storage: storage.grants.clone(),
            accounts: storage.accounts.clone(),
            storage_security: storage.security.clone(),
            recovery: storage.recovery.clone(),
            keys,
            clock,
            journal: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The client registry.
    pub fn clients(&self) -> &ClientRegistry {
        &self.clients
    }

    /// The signing keys.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Deletes expired requests, codes, tokens and proof ids.
    pub async fn purge(&self) -> crate::error::Result<u64> {
        self.storage.purge_expired_grants(self.clock.now_ms()).await
    }
}
