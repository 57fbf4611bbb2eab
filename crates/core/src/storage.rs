//! Storage traits, one per concern. The store crate implements each for SQLite and
//! PostgreSQL; the domain only ever sees these. Every method that must be atomic says so,
//! and implementations do it in one statement (compare-and-set or delete-returning), never
//! read-then-write.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Millis;
use crate::domain::{CeremonyId, CredentialId, Identifier, UserId};
use crate::error::Result;
use crate::passkeys::{Account, PasskeyRecord, PasskeyUse};

/// Accounts and their passkeys.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// The account with this identifier.
    async fn find_by_identifier(&self, identifier: &Identifier) -> Result<Option<Account>>;
    /// The account with this id.
    async fn find_by_id(&self, id: UserId) -> Result<Option<Account>>;
    /// Creates an account and its first passkey together (one transaction).
    /// Fails with `IdentifierTaken` or `CredentialExists`.
    async fn create_with_passkey(&self, account: &Account, passkey: &PasskeyRecord) -> Result<()>;
    /// Adds a passkey to an existing account. Fails with `CredentialExists`.
    async fn add_passkey(&self, passkey: &PasskeyRecord) -> Result<()>;
    /// All passkeys of an account, oldest first.
    async fn passkeys_of(&self, user: UserId) -> Result<Vec<PasskeyRecord>>;
    /// One passkey by credential id, with its owner's account.
    async fn find_passkey(&self, id: &CredentialId) -> Result<Option<(PasskeyRecord, Account)>>;
    /// Records a sign-in. Atomic compare-and-set: succeeds only when the stored counter is
    /// below the new one, or both are zero (authenticators without counters). Returns
    /// false when the counter did not advance (a clone or a concurrent replay).
    async fn record_use(&self, usage: &PasskeyUse) -> Result<bool>;
    /// Deletes a passkey of this user; false when there was none.
    async fn delete_passkey(&self, user: UserId, id: &CredentialId) -> Result<bool>;
}

/// Which ceremony a stored state belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// `navigator.credentials.create`.
    Registration,
    /// `navigator.credentials.get`.
    Authentication,
}

impl CeremonyKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Authentication => "authentication",
        }
    }
}

/// A ceremony in flight.
#[derive(Debug, Clone)]
pub struct CeremonyRecord {
    /// Its id.
    pub id: CeremonyId,
    /// What kind.
    pub kind: CeremonyKind,
    /// Opaque JSON the passkey service wrote (webauthn state and context).
    pub payload: String,
    /// When it started.
    pub created_at: Millis,
    /// When it stops being usable.
    pub expires_at: Millis,
}

/// Ceremony state, single-use.
#[async_trait]
pub trait Ceremonies: Send + Sync {
    /// Stores a new ceremony.
    async fn put(&self, ceremony: &CeremonyRecord) -> Result<()>;
    /// Removes and returns the ceremony of this id and kind, atomically: of two concurrent
    /// takes, at most one gets it. Expired ceremonies are returned too (the caller says
    /// "expired" rather than "unknown").
    async fn take(&self, id: CeremonyId, kind: CeremonyKind) -> Result<Option<CeremonyRecord>>;
    /// Deletes ceremonies that expired before `now`; returns how many.
    async fn purge_expired(&self, now: Millis) -> Result<u64>;
}

/// A stored session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// SHA-256 of the token (the token itself is never stored).
    pub token_digest: String,
    /// The user.
    pub user_id: UserId,
    /// When it started.
    pub created_at: Millis,
    /// When it ends.
    pub expires_at: Millis,
    /// Last user-verified passkey ceremony in this session.
    pub verified_at: Millis,
    /// The device's user agent when it started.
    pub user_agent: Option<String>,
    /// The client's IP when it started.
    pub ip: Option<String>,
}

/// Server-side sessions.
#[async_trait]
pub trait Sessions: Send + Sync {
    /// Stores a session.
    async fn create(&self, session: &SessionRecord) -> Result<()>;
    /// The live (unexpired) session with this token digest.
    async fn find(&self, token_digest: &str, now: Millis) -> Result<Option<SessionRecord>>;
    /// Deletes a session; false when there was none.
    async fn revoke(&self, token_digest: &str) -> Result<bool>;
    /// Deletes expired sessions; returns how many.
    async fn purge_expired(&self, now: Millis) -> Result<u64>;
}

/// A security-relevant event (counter regression, refused QR scan, …).
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    /// Stable kind, e.g. `counter-regression`.
    pub kind: String,
    /// The user concerned, when known.
    pub user_id: Option<UserId>,
    /// JSON details.
    pub detail: serde_json::Value,
    /// When.
    pub at: Millis,
    /// Client IP, when known.
    pub ip: Option<String>,
    /// Client user agent, when known.
    pub user_agent: Option<String>,
}

/// The security event log.
#[async_trait]
pub trait SecurityEvents: Send + Sync {
    /// Appends an event.
    async fn record(&self, event: &SecurityEvent) -> Result<()>;
    /// The latest events of a user, newest first.
    async fn of_user(&self, user: UserId, limit: u32) -> Result<Vec<SecurityEvent>>;
}

/// All storage a Handoff instance uses.
#[derive(Clone)]
pub struct Storage {
    /// Accounts and passkeys.
    pub accounts: Arc<dyn Accounts>,
    /// Ceremony state.
    pub ceremonies: Arc<dyn Ceremonies>,
    /// Sessions.
    pub sessions: Arc<dyn Sessions>,
    /// Security events.
    pub security: Arc<dyn SecurityEvents>,
}
