//! The client registry: the operator registers relying parties (CLI, API, `[[clients]]`),
//! and the token endpoints authenticate them. A generated secret is shown once and only
//! its digest is kept.

use std::sync::Arc;

use super::model::{Client, ClientSource, ClientSpec, check_client_id, digest, digests_equal};
use crate::clock::Clock;
use crate::domain::SecretToken;
use crate::error::{DomainError, Result};
use crate::storage::OidcClients;

/// A client from the configuration file: its id and secret are chosen by the operator.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ConfiguredClient {
    /// `client_id`.
    pub id: String,
    /// The secret (at least 32 characters); absent for a public client.
    #[serde(default)]
    pub secret: Option<String>,
    /// Shown on the consent page.
    pub name: String,
    /// Exact redirect URIs.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Origins whose pages may call the API with credentials.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// No secret; PKCE required.
    #[serde(default)]
    pub public: bool,
    /// No consent screen.
    #[serde(default)]
    pub first_party: bool,
    /// `RS256` (default) or `ES256`.
    #[serde(default)]
    pub id_token_alg: Option<String>,
    /// May use the device grant.
    #[serde(default)]
    pub device: bool,
}

/// The shortest secret a configuration file may give a client.
pub const MIN_CONFIGURED_SECRET: usize = 32;

impl ConfiguredClient {
    fn into_client(self, now: crate::clock::Millis) -> Result<Client> {
        let id = check_client_id(&self.id)?;
        if let Some(secret) = &self.secret
            && secret.chars().count() < MIN_CONFIGURED_SECRET
        {
            return Err(DomainError::invalid(
                "invalid-client",
                format!("client {id}: the secret must have at least {MIN_CONFIGURED_SECRET} characters"),
            ));
        }
        let public = self.public || self.secret.is_none();
        let spec = ClientSpec {
            name: self.name,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            allowed_origins: self.allowed_origins,
            public,
            first_party: self.first_party,
            id_token_alg: self.id_token_alg,
            device: self.device,
        };
        spec.into_client(id.clone(), self.secret.as_deref(), ClientSource::Config, now)
            .map_err(|e| DomainError::invalid("invalid-client", format!("client {id}: {e}")))
    }
}

/// Registers, lists, removes and authenticates clients.
#[derive(Clone)]
pub struct ClientRegistry {
    storage: Arc<dyn OidcClients>,
    clock: Clock,
    origins: Arc<std::sync::RwLock<OriginCache>>,
}

/// Every client's allowed origins, read again after [`ORIGINS_FRESH_FOR`] (a client added by
/// another instance or the CLI is seen that much later) and at once after a change here.
#[derive(Default)]
struct OriginCache {
    read_at: Option<crate::clock::Millis>,
    origins: Arc<std::collections::HashSet<String>>,
}

/// How long the allowed-origin list is trusted.
pub const ORIGINS_FRESH_FOR: crate::clock::Millis = 30_000;

/// A registration's result: the client and, for a confidential one, its secret (shown once).
#[derive(Debug)]
pub struct Registered {
    /// The client.
    pub client: Client,
    /// The generated secret.
    pub secret: Option<SecretToken>,
}

impl ClientRegistry {
    /// A registry over `storage`.
    pub fn new(storage: Arc<dyn OidcClients>, clock: Clock) -> Self {
        Self { storage, clock, origins: Arc::default() }
    }

    /// True when some client lists `origin` among its allowed origins (cross-origin SDK
    /// calls with credentials, PRODUCT §6.3).
    pub async fn allows_origin(&self, origin: &str) -> Result<bool> {
        let now = self.clock.now_ms();
        let cached = self.origins.read().ok().and_then(|c| {
            c.read_at.filter(|at| now.saturating_sub(*at) < ORIGINS_FRESH_FOR).map(|_| c.origins.clone())
        });
        let origins = match cached {
            Some(origins) => origins,
            None => {
                let all: std::collections::HashSet<String> =
                    self.storage.clients().await?.into_iter().flat_map(|c| c.allowed_origins).collect();
                let all = Arc::new(all);
                if let Ok(mut cache) = self.origins.write() {
                    *cache = OriginCache { read_at: Some(now), origins: all.clone() };
                }
                all
            }
        };
        Ok(origins.contains(origin))
    }

    fn forget_origins(&self) {
        if let Ok(mut cache) = self.origins.write() {
            cache.read_at = None;
        }
    }

    /// Registers a client with a generated id and, unless public, a generated secret.
    pub async fn add(&self, spec: ClientSpec) -> Result<Registered> {
        let secret = if spec.public { None } else { Some(SecretToken::generate()?) };
        let id = format!("client-{}", &SecretToken::generate()?.digest()[..20]);
        let client = spec.into_client(
            id,
            secret.as_ref().map(SecretToken::expose),
            ClientSource::Operator,
            self.clock.now_ms(),
        )?;
        self.storage.add_client(&client).await?;
        self.forget_origins();
        tracing::info!(client = %client.id, name = %client.name, "registered a client");
        Ok(Registered { client, secret })
    }

    /// Makes the configuration file's clients exist as written (replacing earlier versions).
    pub async fn sync_configured(&self, clients: Vec<ConfiguredClient>) -> Result<usize> {
        let now = self.clock.now_ms();
        let count = clients.len();
        for configured in clients {
            let client = configured.into_client(now)?;
            self.storage.put_client(&client).await?;
        }
        self.forget_origins();
        Ok(count)
    }

    /// Every client.
    pub async fn list(&self) -> Result<Vec<Client>> {
        self.storage.clients().await
    }

    /// One client.
    pub async fn get(&self, id: &str) -> Result<Option<Client>> {
        if id.len() > 200 {
            return Ok(None);
        }
        self.storage.client(id).await
    }

    /// Removes a client; false when there was none.
    pub async fn remove(&self, id: &str) -> Result<bool> {
        let removed = self.storage.remove_client(id).await?;
        self.forget_origins();
        if removed {
            tracing::info!(client = %id, "removed a client");
        }
        Ok(removed)
    }

    /// True when `user` consented to exactly `scope` for `client_id`.
    pub async fn has_consent(&self, user: crate::domain::UserId, client_id: &str, scope: &str) -> Result<bool> {
        self.storage.has_consent(user, client_id, scope).await
    }

    /// Records that `user` consented to `scope` for `client_id`.
    pub async fn add_consent(&self, user: crate::domain::UserId, client_id: &str, scope: &str) -> Result<()> {
        self.storage.add_consent(user, client_id, scope, self.clock.now_ms()).await
    }

    /// The confidential client `id` when `secret` is its secret.
    pub async fn authenticate(&self, id: &str, secret: &str) -> Result<Option<Client>> {
        let Some(client) = self.get(id).await? else { return Ok(None) };
        let presented = digest(secret);
        Ok(client.secret_digest.as_deref().is_some_and(|stored| digests_equal(stored, &presented)).then_some(client))
    }
}
