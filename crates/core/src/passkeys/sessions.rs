//! Server-side sessions. The client holds a random 256-bit token; storage holds only its
//! SHA-256, so reading the database does not let anyone sign in. Sign-out deletes the row.
//! Each session records how it was made and when this browser last ran a user-verified
//! passkey ceremony: sensitive actions need one within the step-up window (PRODUCT §8,
//! `docs/decisions/0001-step-up.md`), so a session made by approving a QR code on a phone
//! cannot add, delete or approve anything on its own.

use std::time::Duration;

use crate::clock::{Clock, Millis};
use crate::domain::{SecretToken, UserId};
use crate::error::Result;
use crate::passkeys::{SessionMethod, SessionUser};
use crate::storage::{SessionRecord, Storage};
use crate::webhooks::{EventType, Reporter};

/// Creates, resolves and revokes sessions.
#[derive(Clone)]
pub struct SessionService {
    storage: Storage,
    ttl: Duration,
    step_up: Duration,
    idle: Duration,
    clock: Clock,
    reporter: Reporter,
}

/// How stale `last_seen_at` may be before a request writes it again: the idle timeout is
/// kept to the minute, not to the request, so an active session costs a write a minute.
const TOUCH_EVERY: Millis = 60_000;

/// How long a grant to add a passkey on this device (chosen on the phone for a QR
/// approval) lasts after the session starts: long enough for the append offer.
pub const PASSKEY_GRANT: Duration = Duration::from_secs(10 * 60);

/// A session's public id: the first 32 hex digits of its digest (as the account page shows).
fn public_id(digest: &str) -> &str {
    digest.get(..32).unwrap_or(digest)
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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
    /// How the session is made.
    pub method: SessionMethod,
    /// The session may add one passkey on this device without a step-up (for
    /// [`PASSKEY_GRANT`]).
    pub passkey_grant: bool,
}

impl SessionService {
    /// Sessions last `ttl`, and end after `idle` without use; a passkey ceremony allows
    /// sensitive actions for `step_up`.
    pub fn new(storage: Storage, ttl: Duration, step_up: Duration, idle: Duration) -> Self {
        Self { storage, ttl, step_up, idle, clock: Clock::system(), reporter: Reporter::default() }
    }

    /// Reports `session.created` and `session.revoked` to webhook subscribers.
    pub fn with_reporter(mut self, reporter: Reporter) -> Self {
        self.reporter = reporter;
        self
    }

    /// Takes the time from `clock` (tests move it forward instead of waiting).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The current time, as this service sees it.
    pub fn now_ms(&self) -> Millis {
        self.clock.now_ms()
    }

    /// The oldest last use a live session can have at `now`.
    pub fn idle_since(&self, now: Millis) -> Millis {
        now.saturating_sub(millis(self.idle))
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session; returns its token. It counts as verified on this device only
    /// when `method` ran a passkey ceremony in this browser.
    pub async fn start(&self, new: NewSession) -> Result<SecretToken> {
        let token = SecretToken::generate()?;
        let now = self.clock.now_ms();
        let record = SessionRecord {
            token_digest: token.digest(),
            user_id: new.user_id,
            created_at: now,
            expires_at: now.saturating_add(millis(self.ttl)),
            method: new.method,
            verified_at: if new.method.verifies_here() { now } else { 0 },
            may_add_passkey_until: if new.passkey_grant { now.saturating_add(millis(PASSKEY_GRANT)) } else { 0 },
            last_seen_at: now,
            user_agent: new.user_agent,
            ip: new.ip,
        };
        let report = self.reporter.message(EventType::SessionCreated, || {
            serde_json::json!({
                "userId": record.user_id.to_string(),
                "sessionId": public_id(&record.token_digest),
                "method": record.method.as_str(),
                "amr": crate::oidc::amr_of(record.method),
                "ip": record.ip,
                "userAgent": record.user_agent,
                "expiresAt": crate::clock::rfc3339(record.expires_at),
            })
        });
        self.storage.sessions.create(&record, report.as_ref()).await?;
        self.reporter.committed(report.as_ref());
        Ok(token)
    }

    /// The user behind a token, if the session is live: not expired, and used within the
    /// idle timeout (a use moves that on).
    pub async fn resolve(&self, token: &SecretToken) -> Result<Option<SessionUser>> {
        let now = self.clock.now_ms();
        let Some(s) = self.storage.sessions.find(&token.digest(), now).await? else { return Ok(None) };
        if s.last_seen_at < self.idle_since(now) {
            // Ended by the idle timeout: an expiry, not a revocation (no webhook).
            self.storage.sessions.revoke(&s.token_digest, None).await?;
            return Ok(None);
        }
        if now.saturating_sub(s.last_seen_at) >= TOUCH_EVERY {
            self.storage.sessions.touch(&s.token_digest, now).await?;
        }
        Ok(Some(s).map(|s| SessionUser {
            user_id: s.user_id,
            created_at: s.created_at,
            method: s.method,
            verified_at: s.verified_at,
            step_up_until: (s.verified_at > 0).then(|| s.verified_at.saturating_add(millis(self.step_up))),
            may_add_passkey_until: s.may_add_passkey_until,
            session_digest: s.token_digest,
        }))
    }

    /// A new user-verified passkey ceremony by the user already signed in with `token`:
    /// the session stays (so what it started, like a QR claim, carries on) and counts as
    /// freshly verified. Returns false when the session is not live.
    pub async fn reverify(&self, token: &SecretToken) -> Result<bool> {
        self.storage.sessions.mark_verified(&token.digest(), self.clock.now_ms()).await
    }

    /// The user's live sessions (signed-in devices), newest first.
    pub async fn of_user(&self, user: UserId) -> Result<Vec<SessionRecord>> {
        let now = self.clock.now_ms();
        let mut live = self.storage.sessions.of_user(user, now).await?;
        live.retain(|s| s.last_seen_at >= self.idle_since(now));
        Ok(live)
    }

    /// Ends every session of the signed-in user, this one included ("sign out
    /// everywhere"); needs a step-up, since it ends other devices' sessions. Returns how
    /// many ended.
    pub async fn end_all(&self, user: &SessionUser) -> Result<u64> {
        user.require_step_up(self.clock.now_ms())?;
        let report = self.revoked(user.user_id, None, "signed-out-everywhere");
        let ended = self.storage.sessions.revoke_all(user.user_id, report.as_ref()).await?;
        self.reporter.committed(report.as_ref());
        Ok(ended)
    }

    /// Ends one of the user's sessions by its public id (the first 32 hex digits of its
    /// digest); false when the user has no such session. Ending another device's session
    /// needs a step-up; ending this one is signing out.
    pub async fn end(&self, user: &SessionUser, id: &str) -> Result<bool> {
        let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !valid {
            return Err(crate::DomainError::invalid(
                "invalid-session-id",
                "session id must be 32 lowercase hex digits",
            ));
        }
        let this_one = user.session_digest.starts_with(id);
        if !this_one {
            user.require_step_up(self.clock.now_ms())?;
        }
        let reason = if this_one { "signed-out" } else { "ended-from-another-device" };
        let report = self.revoked(user.user_id, Some(id), reason);
        let ended = self.storage.sessions.revoke_for_user(user.user_id, id, report.as_ref()).await?;
        self.reporter.committed(report.as_ref());
        Ok(ended)
    }

    /// Ends a session (signing out); false when it did not exist.
    pub async fn revoke(&self, token: &SecretToken) -> Result<bool> {
        let digest = token.digest();
        // Whose session it is matters only to a webhook: read it only when one listens.
        let report = match self.reporter.listens(EventType::SessionRevoked) {
            true => match self.storage.sessions.find(&digest, self.clock.now_ms()).await? {
                Some(s) => self.revoked(s.user_id, Some(public_id(&digest)), "signed-out"),
                None => None,
            },
            false => None,
        };
        let ended = self.storage.sessions.revoke(&digest, report.as_ref()).await?;
        self.reporter.committed(report.as_ref());
        Ok(ended)
    }

    /// The `session.revoked` message, when someone listens (`session`: `None` for all).
    fn revoked(&self, user: UserId, session: Option<&str>, reason: &str) -> Option<crate::webhooks::Message> {
        self.reporter.message(EventType::SessionRevoked, || {
            let mut data = serde_json::json!({"userId": user.to_string(), "reason": reason});
            match session {
                Some(id) => data["sessionId"] = id.into(),
                None => data["all"] = true.into(),
            }
            data
        })
    }
}
