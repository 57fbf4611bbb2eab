//! The passkey service: configuration, the webauthn-rs core it drives, and the helpers
//! its ceremonies share (storing and taking ceremony state).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;
use webauthn_rs_core::WebauthnCore;

use crate::clock::{Clock, Millis};
use crate::domain::{CeremonyId, JourneyId};
use crate::error::{DomainError, Result};
use crate::intelligence::DecisionRules;
use crate::observe::{Journal, JourneyBinder};
use crate::provider::ProviderCatalog;
use crate::storage::{CeremonyKind, CeremonyRecord, Storage, StoredEvent};

/// Relying-party settings.
#[derive(Debug, Clone)]
pub struct PasskeyConfig {
    /// The RP ID (a registrable domain, e.g. `example.com` or `localhost`).
    pub rp_id: String,
    /// The RP name authenticators show.
    pub rp_name: String,
    /// Origins allowed to run ceremonies (scheme, host and port).
    pub origins: Vec<Url>,
    /// How long a ceremony may take, start to finish.
    pub ceremony_ttl: Duration,
    /// Operator rules for sign-in decisions.
    pub rules: DecisionRules,
    /// When to offer creating a passkey on this device after a cross-device sign-in.
    pub append: AppendPolicy,
    /// The fallback methods the server offers (`RecoveryService::methods`), named in
    /// every decision.
    pub fallbacks: Vec<String>,
}

/// Caps on passkey-append offers, so a person who said "not now" is not nagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendPolicy {
    /// Offers per user per day, at most.
    pub max_offers_per_day: u32,
    /// After this many skips in total, stop offering.
    pub max_skips_total: u32,
    /// No offer for this long after a skip.
    pub skip_cooldown: Duration,
}

impl Default for AppendPolicy {
    fn default() -> Self {
        Self { max_offers_per_day: 2, max_skips_total: 3, skip_cooldown: Duration::from_secs(24 * 3600) }
    }
}

impl PasskeyConfig {
    /// Validates the RP ID against the origins: each origin's host must be the RP ID or
    /// a subdomain of it, as WebAuthn requires.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.rp_id.is_empty() {
            return Err("RP ID is empty".into());
        }
        if self.origins.is_empty() {
            return Err("at least one origin is required".into());
        }
        for origin in &self.origins {
            let host = origin.host_str().unwrap_or_default();
            let ok = host == self.rp_id || host.ends_with(&format!(".{}", self.rp_id));
            if !ok {
                return Err(format!(
                    "origin {origin} is not on RP ID {:?}: its host must be the RP ID or a subdomain of it",
                    self.rp_id
                ));
            }
            if !matches!(origin.scheme(), "https" | "http") {
                return Err(format!("origin {origin} must be http or https"));
            }
        }
        Ok(())
    }
}

/// Runs passkey registration and sign-in ceremonies.
#[derive(Clone)]
pub struct PasskeyService {
    pub(crate) core: Arc<WebauthnCore>,
    pub(crate) storage: Storage,
    pub(crate) catalog: Arc<ProviderCatalog>,
    pub(crate) config: PasskeyConfig,
    pub(crate) decoy_key: Arc<[u8]>,
    pub(crate) journal: Journal,
    pub(crate) journeys: JourneyBinder,
    pub(crate) decoys: Arc<super::decoy::DecoyShapes>,
    pub(crate) clock: Clock,
    pub(crate) reporter: crate::webhooks::Reporter,
}

impl PasskeyService {
    /// Builds the service. `decoy_key` is the server-wide secret behind the decoy passkeys
    /// of unknown identifiers (every instance must use the same). Fails with a sentence
    /// when the configuration is inconsistent.
    pub fn new(
        config: PasskeyConfig,
        storage: Storage,
        catalog: Arc<ProviderCatalog>,
        decoy_key: &[u8],
        journal: Journal,
    ) -> std::result::Result<Self, String> {
        config.validate()?;
        let core = WebauthnCore::new_unsafe_experts_only(
            &config.rp_name,
            &config.rp_id,
            config.origins.clone(),
            config.ceremony_ttl,
            Some(false),
            Some(false),
        );
        let journeys = JourneyBinder::new(decoy_key);
        Ok(Self {
            core: Arc::new(core),
            storage,
            catalog,
            config,
            decoy_key: decoy_key.into(),
            journal,
            journeys,
            decoys: Arc::default(),
            clock: Clock::system(),
            reporter: crate::webhooks::Reporter::default(),
        })
    }

    /// Reports `user.created`, `passkey.created` and `passkey.deleted` to webhook
    /// subscribers.
    pub fn with_reporter(mut self, reporter: crate::webhooks::Reporter) -> Self {
        self.reporter = reporter;
        self
    }

    /// Takes the time from `clock` (tests move it forward instead of waiting).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Samples real accounts' inventories again, so that decoys for unknown identifiers
    /// keep the shape of real ones (the server calls it at start and every ten minutes).
    /// Returns how many accounts are in the sample.
    pub async fn refresh_decoys(&self) -> Result<usize> {
        let sample = self.storage.accounts.sample_inventories(super::decoy::SAMPLE).await?;
        self.decoys.replace(sample);
        Ok(self.decoys.accounts())
    }

    /// The journey a request from the browser with device cookie `device` works in: the
    /// one it names when this browser started it, else a new one (see `JourneyBinder`).
    pub fn journey_for(&self, named: Option<JourneyId>, device: Option<&str>) -> JourneyId {
        self.journeys.continue_or_start(named, device)
    }

    /// The provider catalog (names and icons).
    pub fn catalog(&self) -> &ProviderCatalog {
        &self.catalog
    }

    /// The storage this service writes to.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The relying-party configuration.
    pub fn config(&self) -> &PasskeyConfig {
        &self.config
    }

    /// The account of a signed-in user.
    pub async fn account(&self, user: crate::domain::UserId) -> Result<super::Account> {
        self.storage.accounts.find_by_id(user).await?.ok_or(DomainError::NotSignedIn)
    }

    /// The passkeys of an account, oldest first.
    pub async fn passkeys(&self, user: crate::domain::UserId) -> Result<Vec<super::PasskeyRecord>> {
        self.storage.accounts.passkeys_of(user).await
    }

    /// Deletes one passkey of the signed-in user; needs a step-up (PRODUCT §8).
    #[tracing::instrument(skip_all, fields(user = %user.user_id))]
    pub async fn delete_passkey(&self, user: &super::SessionUser, id: &crate::domain::CredentialId) -> Result<()> {
        user.require_step_up(self.clock.now_ms())?;
        let report = self.reporter.message(
            crate::webhooks::EventType::PasskeyDeleted,
            || serde_json::json!({"userId": user.user_id.to_string(), "credentialId": id.to_base64url()}),
        );
        if self.storage.accounts.delete_passkey(user.user_id, id, report.as_ref()).await? {
            self.reporter.committed(report.as_ref());
            tracing::info!(credential = %id.to_base64url(), "passkey deleted");
            Ok(())
        } else {
            Err(DomainError::PasskeyNotFound)
        }
    }

    /// Stores server-side product events; a storage failure is logged, never fatal to the
    /// sign-in it describes.
    pub(crate) async fn emit(&self, journey: JourneyId, flow: Option<&str>, events: &[(&str, serde_json::Value)]) {
        let now = self.clock.now_ms();
        let stored =
            events.iter().map(|(name, attrs)| StoredEvent::server(journey, name, flow, attrs.clone(), now)).collect();
        self.journal.submit_server(stored);
    }

    pub(crate) fn ttl_ms(&self) -> Millis {
        i64::try_from(self.config.ceremony_ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Stores ceremony state and returns its id.
    pub(crate) async fn put_ceremony<T: Serialize>(&self, kind: CeremonyKind, payload: &T) -> Result<CeremonyId> {
        let id = CeremonyId::new();
        let now = self.clock.now_ms();
        let payload = serde_json::to_string(payload)
            .map_err(|e| DomainError::Internal(format!("cannot serialise ceremony state: {e}")))?;
        let record = CeremonyRecord { id, kind, payload, created_at: now, expires_at: now + self.ttl_ms() };
        self.storage.ceremonies.put(&record).await?;
        Ok(id)
    }

    /// Takes (single use) the ceremony state of this id, refusing unknown, used and
    /// expired ones.
    pub(crate) async fn take_ceremony<T: DeserializeOwned>(&self, id: CeremonyId, kind: CeremonyKind) -> Result<T> {
        let record = self.storage.ceremonies.take(id, kind).await?.ok_or(DomainError::CeremonyNotFound)?;
        if record.expires_at <= self.clock.now_ms() {
            return Err(DomainError::CeremonyExpired);
        }
        serde_json::from_str(&record.payload)
            .map_err(|e| DomainError::Internal(format!("stored ceremony state does not parse: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rp: &str, origins: &[&str]) -> PasskeyConfig {
        PasskeyConfig {
            rp_id: rp.into(),
            rp_name: "x".into(),
            origins: origins.iter().map(|o| Url::parse(o).unwrap()).collect(),
            ceremony_ttl: Duration::from_secs(300),
            rules: DecisionRules::default(),
            append: AppendPolicy::default(),
            fallbacks: Vec::new(),
        }
    }

    #[test]
    fn origins_must_sit_on_the_rp_id() {
        assert!(cfg("localhost", &["http://localhost:8080"]).validate().is_ok());
        assert!(cfg("example.com", &["https://login.example.com"]).validate().is_ok());
        let err = cfg("example.com", &["https://evil.com"]).validate().unwrap_err();
        assert!(err.contains("evil.com"), "{err}");
        assert!(cfg("example.com", &["https://notexample.com"]).validate().is_err());
        assert!(cfg("localhost", &[]).validate().is_err());
    }
}
