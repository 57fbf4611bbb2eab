//! Test support shared by the integration tests (`it/`), the benchmarks (`bench/decision`,
//! `bench/qr`) and the Chromium tests' fixtures: the software authenticator, the
//! simulator's [`handoff_simulate::SoftKey`] with its errors turned into panics (there a
//! failure to sign is a test failure), and a GeoIP database ([`geoip`]).

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod geoip;

use serde_json::Value;
use url::Url;

pub use handoff_simulate::softkey::{ONE_PASSWORD_AAGUID, SharedStore};

/// A software authenticator plus the client (browser) logic in front of it; panics when it
/// cannot create or sign.
pub struct SoftKey(handoff_simulate::SoftKey);

impl SoftKey {
    /// An authenticator reporting 1Password's AAGUID, running at `origin`.
    pub fn new(origin: &Url) -> Self {
        Self(handoff_simulate::SoftKey::new(origin))
    }

    /// An authenticator with a chosen AAGUID.
    pub fn with_aaguid(origin: &Url, aaguid: [u8; 16]) -> Self {
        Self(handoff_simulate::SoftKey::with_aaguid(origin, aaguid))
    }

    /// The same authenticator presenting itself at another origin.
    pub fn at_origin(self, origin: &Url) -> Self {
        Self(self.0.at_origin(origin))
    }

    /// Its credential store.
    pub fn store(&self) -> &SharedStore {
        self.0.store()
    }

    /// `navigator.credentials.create({publicKey})`, returning `RegistrationResponseJSON`.
    pub async fn create(&mut self, public_key: &Value) -> Value {
        self.0.create(public_key).await.expect("authenticator creates")
    }

    /// `navigator.credentials.get({publicKey})`, returning `AuthenticationResponseJSON`.
    pub async fn get(&mut self, public_key: &Value) -> Value {
        self.0.get(public_key).await.expect("authenticator signs")
    }
}
