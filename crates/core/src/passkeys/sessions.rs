//! Server-side sessions. The client holds a random 256-bit token; storage holds only its
//! SHA-256, so reading the database does not let anyone sign in. Sign-out deletes the row.

use std::time::Duration;

use crate::clock::{Millis, now_ms};
use crate::domain::{SecretToken, UserId};
use crate::error::Result;
use crate::passkeys::SessionUser;
use crate::storage::{SessionRecord, Storage};

/// Creates, resolves and revokes sessions.
#[derive(Clone)]
pub struct SessionService {
    storage: Storage,
    ttl: Duration,
}

/// What starting a session needs to know.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The user.
    pub user_id: UserId,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The client's IP.
    pub ip: Option<String>,
}

impl SessionService {
    /// Sessions last `ttl`.
    pub fn new(storage: Storage, ttl: Duration) -> Self {
        Self { storage, ttl }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session after a user-verified passkey ceremony; returns its token.
    pub async fn start(&self, new: NewSession) -> Result<SecretToken> {
        let token = SecretToken::generate()?;
        let now = now_ms();
        let ttl: Millis = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let record = SessionRecord {
            token_digest: token.digest(),
            user_id: new.user_id,
            created_at: now,
            expires_at: now.saturating_add(ttl),
            verified_at: now,
            user_agent: new.user_agent,
            ip: new.ip,
        };
        self.storage.sessions.create(&record).await?;
        Ok(token)
    }

    /// The user behind a token, if the session is live.
    pub async fn resolve(&self, token: &SecretToken) -> Result<Option<SessionUser>> {
        let found = self.storage.sessions.find(&token.digest(), now_ms()).await?;
        Ok(found.map(|s| SessionUser {
            user_id: s.user_id,
            created_at: s.created_at,
            verified_at: s.verified_at,
            session_digest: s.token_digest,
        }))
    }

    /// A new user-verified passkey ceremony by the user already signed in with `token`:
    /// the session stays (so what it started, like a QR claim, carries on) and counts as
    /// freshly verified. Returns false when the session is not live.
    pub async fn reverify(&self, token: &SecretToken) -> Result<bool> {
        self.storage.sessions.mark_verified(&token.digest(), now_ms()).await
    }

    /// The user's live sessions (signed-in devices), newest first.
    pub async fn of_user(&self, user: UserId) -> Result<Vec<SessionRecord>> {
        self.storage.sessions.of_user(user, now_ms()).await
    }

    /// Ends one of the user's sessions by its public id (the first 32 hex digits of its
    /// digest); false when the user has no such session.
    pub async fn end(&self, user: UserId, id: &str) -> Result<bool> {
        let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !valid {
            return Err(crate::DomainError::invalid(
                "invalid-session-id",
                "session id must be 32 lowercase hex digits",
            ));
        }
        self.storage.sessions.revoke_for_user(user, id).await
    }

    /// Ends a session; false when it did not exist.
    pub async fn revoke(&self, token: &SecretToken) -> Result<bool> {
        self.storage.sessions.revoke(&token.digest()).await
    }
}
