//! Storage of the identity provider (PRODUCT §6): clients and consents, signing keys,
//! authorization requests, grants, codes, tokens and used proof ids. Single-use steps
//! (redeeming a code, rotating a refresh token, using a proof id) are one conditional
//! statement each, so two concurrent uses cannot both succeed.

use async_trait::async_trait;

use crate::clock::Millis;
use crate::domain::UserId;
use crate::error::Result;
use crate::oidc::device_model::{DeviceAuthorization, DeviceTransition};
use crate::oidc::keys::SigningAlg;
use crate::oidc::model::{
    AuthRequest, Client, CodeRecord, CodeRedemption, GrantRecord, RefreshUse, TokenKind, TokenRecord,
};

/// Registered clients and the consents people gave them.
#[async_trait]
pub trait OidcClients: Send + Sync {
    /// Registers a client; `Invalid(client-exists)` when the id is taken.
    async fn add_client(&self, client: &Client) -> Result<()>;
    /// Registers or replaces a client (the configuration file's, at start).
    async fn put_client(&self, client: &Client) -> Result<()>;
    /// The client with this id.
    async fn client(&self, id: &str) -> Result<Option<Client>>;
    /// Every client, oldest first.
    async fn clients(&self) -> Result<Vec<Client>>;
    /// Removes a client with its consents, grants and tokens; false when there was none.
    async fn remove_client(&self, id: &str) -> Result<bool>;
    /// True when the user consented to exactly this scope set for this client.
    async fn has_consent(&self, user: UserId, client_id: &str, scope: &str) -> Result<bool>;
    /// Records a consent.
    async fn add_consent(&self, user: UserId, client_id: &str, scope: &str, at: Millis) -> Result<()>;
}

/// A stored signing key.
#[derive(Debug, Clone)]
pub struct SigningKeyRecord {
    /// Key id (`kid`).
    pub kid: String,
    /// Algorithm.
    pub alg: SigningAlg,
    /// The key pair as a JWK (private: the database is the key store).
    pub private_jwk: String,
    /// When it was made.
    pub created_at: Millis,
    /// When a newer key replaced it; `None` while it signs.
    pub retired_at: Option<Millis>,
}

/// Signing keys.
#[async_trait]
pub trait SigningKeys: Send + Sync {
    /// Every stored key.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Adds a key.
    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<()>;
    /// In one transaction: retires the keys of `key.alg` that sign now, and adds `key`.
    async fn rotate_signing_key(&self, key: &SigningKeyRecord, now: Millis) -> Result<()>;
}

/// Authorization requests, grants, codes and tokens.
#[async_trait]
pub trait Grants: Send + Sync {
    /// Keeps a request until `expires_at`.
    async fn put_request(&self, request: &AuthRequest, expires_at: Millis) -> Result<()>;
    /// The live request with this id.
    async fn request(&self, id: &str, now: Millis) -> Result<Option<AuthRequest>>;
    /// Removes a request; false when it was gone (used by a concurrent answer).
    async fn take_request(&self, id: &str) -> Result<bool>;
    /// In one transaction: stores a grant and its code.
    async fn issue_code(&self, grant: &GrantRecord, code: &CodeRecord) -> Result<()>;
    /// Marks a code of this client used, atomically, and says what it was (another
    /// client's code is `Unknown` and stays unused).
    async fn redeem_code(&self, digest: &str, client_id: &str, now: Millis) -> Result<CodeRedemption>;
    /// Stores tokens issued to a client (at most two: an access and a refresh token).
    async fn add_tokens(&self, client_id: &str, tokens: &[TokenRecord]) -> Result<()>;
    /// A live token of `kind` with its live grant.
    async fn token(&self, digest: &str, kind: TokenKind, now: Millis) -> Result<Option<(TokenRecord, GrantRecord)>>;
    /// Rotates a refresh token of this client away, atomically, and says what it was
    /// (another client's token is `Unknown` and stays usable).
    async fn use_refresh(&self, digest: &str, client_id: &str, now: Millis) -> Result<RefreshUse>;
    /// Revokes a grant and deletes its tokens.
    async fn revoke_grant(&self, grant_id: &str, now: Millis) -> Result<()>;
    /// Deletes one token; returns its kind and grant when it existed.
    async fn delete_token(&self, digest: &str) -> Result<Option<(TokenKind, String)>>;
    /// Records a proof id as used until `expires_at`; false when it was used already.
    async fn use_proof_id(&self, jti: &str, expires_at: Millis) -> Result<bool>;
    /// Stores a new device sign-in.
    async fn add_device(&self, authorization: &DeviceAuthorization) -> Result<()>;
    /// The device sign-in with this user code digest, whatever its state.
    async fn device_by_user_code(&self, digest: &str) -> Result<Option<DeviceAuthorization>>;
    /// The device sign-in with this device code digest, whatever its state.
    async fn device_by_device_code(&self, digest: &str) -> Result<Option<DeviceAuthorization>>;
    /// One compare-and-set step; the authorization after it, or `None` when it was not in
    /// `from` (or not claimed by `session`).
    async fn device_transition(&self, t: &DeviceTransition) -> Result<Option<DeviceAuthorization>>;
    /// Records a poll, atomically: only when the last poll is still `last_polled` (so two
    /// concurrent polls cannot both pass); sets the new interval. False when it lost.
    async fn device_polled(&self, id: &str, last_polled: Millis, now: Millis, interval_ms: Millis) -> Result<bool>;
    /// In one transaction: approved → redeemed, and the grant stored. False when it was
    /// not approved any more (redeemed by a concurrent poll).
    async fn redeem_device(&self, id: &str, grant: &GrantRecord, now: Millis) -> Result<bool>;
    /// Marks every unfinished device sign-in past its time expired; returns them as they
    /// were before (their state says where they stopped).
    async fn expire_devices(&self, now: Millis) -> Result<Vec<DeviceAuthorization>>;
    /// Deletes expired requests, codes, tokens, grants and proof ids; returns how many rows.
    async fn purge_expired_grants(&self, now: Millis) -> Result<u64>;
}
