//! A software passkey authenticator driven through 1Password's `passkey` client, which
//! builds the client data and checks the RP ID against the origin as a browser would. The
//! simulator's phones and desktops sign with it, and so do the integration tests and the
//! benchmarks (through `handoff-tests`), so there is one copy of the glue around those
//! crates. Its credential store is shared and cloneable so a test can snapshot and restore
//! it (to replay an old signature counter), and it answers discoverable requests (empty
//! allowCredentials) with every passkey it holds for the RP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use passkey::authenticator::{
    Authenticator, CredentialStore, DiscoverabilitySupport, StoreInfo, UiHint, UserCheck, UserValidationMethod,
};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::AvailableBackend;
use passkey::types::Passkey;
use passkey::types::ctap2::make_credential::{Options, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity};
use passkey::types::ctap2::{Aaguid, Ctap2Error, StatusCode};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions, PublicKeyCredentialDescriptor};
use serde_json::{Value, json};
use url::Url;

/// The AAGUID 1Password's authenticator reports (named in the built-in table).
pub const ONE_PASSWORD_AAGUID: [u8; 16] =
    [0xba, 0xda, 0x55, 0x66, 0xa7, 0xaa, 0x40, 0x1f, 0xbd, 0x96, 0x45, 0x61, 0x9a, 0x55, 0x12, 0x0d];

/// Passkeys by credential id, shared between clones.
#[derive(Clone, Default)]
pub struct SharedStore(Arc<Mutex<HashMap<Vec<u8>, Passkey>>>);

impl SharedStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Passkey>> {
        // A panic while holding the lock cannot leave the map half-written (every change
        // is one insert), so a poisoned lock is still good to use.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the current contents.
    pub fn snapshot(&self) -> HashMap<Vec<u8>, Passkey> {
        self.lock().clone()
    }

    /// Puts back an earlier copy.
    pub fn restore(&self, contents: HashMap<Vec<u8>, Passkey>) {
        *self.lock() = contents;
    }
}

#[async_trait::async_trait]
impl CredentialStore for SharedStore {
    type PasskeyItem = Passkey;

    async fn find_credentials(
        &self,
        allow: Option<&[PublicKeyCredentialDescriptor]>,
        rp_id: &str,
        _user_handle: Option<&[u8]>,
    ) -> Result<Vec<Passkey>, StatusCode> {
        let store = self.lock();
        let found: Vec<Passkey> = match allow {
            Some(list) if !list.is_empty() => list.iter().filter_map(|d| store.get(&*d.id)).cloned().collect(),
            _ => store.values().filter(|p| p.rp_id == rp_id).cloned().collect(),
        };
        if found.is_empty() { Err(Ctap2Error::NoCredentials.into()) } else { Ok(found) }
    }

    async fn save_credential(
        &mut self,
        cred: Passkey,
        _user: PublicKeyCredentialUserEntity,
        _rp: PublicKeyCredentialRpEntity,
        _options: Options,
    ) -> Result<(), StatusCode> {
        self.lock().insert(cred.credential_id.to_vec(), cred);
        Ok(())
    }

    async fn update_credential(&mut self, cred: &Passkey) -> Result<(), StatusCode> {
        self.lock().insert(cred.credential_id.to_vec(), cred.clone());
        Ok(())
    }

    async fn get_info(&self) -> StoreInfo {
        StoreInfo { discoverability: DiscoverabilitySupport::ForcedDiscoverable }
    }
}

/// A user who is always present and verified.
pub struct VerifiedUser;

#[async_trait::async_trait]
impl UserValidationMethod for VerifiedUser {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck { presence, verification })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}

type PasskeyClient = Client<SharedStore, VerifiedUser, AvailableBackend, public_suffix::PublicSuffixList, ()>;

/// A software authenticator plus the client (browser) logic in front of it.
pub struct SoftKey {
    client: PasskeyClient,
    store: SharedStore,
    origin: Url,
}

impl SoftKey {
    /// An authenticator reporting 1Password's AAGUID, running at `origin`.
    pub fn new(origin: &Url) -> Self {
        Self::with_aaguid(origin, ONE_PASSWORD_AAGUID)
    }

    /// An authenticator with a chosen AAGUID.
    pub fn with_aaguid(origin: &Url, aaguid: [u8; 16]) -> Self {
        let store = SharedStore::default();
        let mut authenticator = Authenticator::new(Aaguid(aaguid), store.clone(), VerifiedUser, AvailableBackend);
        authenticator.set_make_credentials_with_signature_counter(true);
        let client = Client::new(authenticator).allows_insecure_localhost(true);
        Self { client, store, origin: origin.clone() }
    }

    /// The same authenticator presenting itself at another origin.
    pub fn at_origin(mut self, origin: &Url) -> Self {
        self.origin = origin.clone();
        self
    }

    /// The origin it presents.
    pub fn origin(&self) -> &Url {
        &self.origin
    }

    /// Its credential store.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// `navigator.credentials.create({publicKey})`, returning `RegistrationResponseJSON`.
    pub async fn create(&mut self, public_key: &Value) -> Result<Value, KeyError> {
        let options: CredentialCreationOptions = serde_json::from_value(json!({ "publicKey": public_key }))
            .map_err(|e| KeyError(format!("the creation options do not parse: {e}")))?;
        let created = self
            .client
            .register(&self.origin, options, DefaultClientData)
            .await
            .map_err(|e| KeyError(format!("the authenticator did not create a passkey: {e:?}")))?;
        serde_json::to_value(created).map_err(|e| KeyError(e.to_string()))
    }

    /// `navigator.credentials.get({publicKey})`, returning `AuthenticationResponseJSON`.
    pub async fn get(&mut self, public_key: &Value) -> Result<Value, KeyError> {
        let options: CredentialRequestOptions = serde_json::from_value(json!({ "publicKey": public_key }))
            .map_err(|e| KeyError(format!("the request options do not parse: {e}")))?;
        let asserted = self
            .client
            .authenticate(&self.origin, options, DefaultClientData)
            .await
            .map_err(|e| KeyError(format!("the authenticator did not sign: {e:?}")))?;
        serde_json::to_value(asserted).map_err(|e| KeyError(e.to_string()))
    }
}

/// The authenticator or its client refused (bad options, no matching passkey, RP ID not
/// on the origin).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);
