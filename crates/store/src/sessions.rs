//! Sessions, keyed by token digest.

use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::DomainError;
use handoff_core::clock::Millis;
use handoff_core::domain::UserId;
use handoff_core::error::Result;
use handoff_core::passkeys::SessionMethod;
use handoff_core::storage::{SessionRecord, Sessions};
use handoff_core::webhooks::Message;

use crate::Database;
use crate::sql::{Reported, Row, Sql};

/// The columns after the token digest and the user, in [`session_from_row`]'s order.
const COLUMNS: &str =
    "created_at, expires_at, verified_at, user_agent, ip, method, may_add_passkey_until, last_seen_at";

/// A session from `COLUMNS` starting at `at`.
fn session_from_row(row: &dyn Row, at: usize, token_digest: String, user_id: UserId) -> Result<SessionRecord> {
    let stored = row.text(at + 5)?;
    Ok(SessionRecord {
        token_digest,
        user_id,
        created_at: row.int(at)?,
        expires_at: row.int(at + 1)?,
        verified_at: row.int(at + 2)?,
        user_agent: row.opt_text(at + 3)?,
        ip: row.opt_text(at + 4)?,
        method: SessionMethod::parse(&stored)
            .ok_or_else(|| DomainError::Storage(format!("stored session method {stored:?} is unknown")))?,
        may_add_passkey_until: row.int(at + 6)?,
        last_seen_at: row.int(at + 7)?,
    })
}

#[async_trait]
impl Sessions for Database {
    async fn create(&self, s: &SessionRecord, report: Option<&Message>) -> Result<()> {
        static SQL: LazyLock<Reported> = LazyLock::new(|| {
            Reported::new(format!(
                "INSERT INTO sessions (token_digest, user_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
        });
        let params = vec![
            s.token_digest.clone().into(),
            s.user_id.to_string().into(),
            s.created_at.into(),
            s.expires_at.into(),
            s.verified_at.into(),
            s.user_agent.clone().into(),
            s.ip.clone().into(),
            s.method.as_str().into(),
            s.may_add_passkey_until.into(),
            s.last_seen_at.into(),
        ];
        self.execute_reported(&SQL, params, report).await.map(drop)
    }

    async fn find(&self, token_digest: &str, now: Millis) -> Result<Option<SessionRecord>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!("SELECT user_id, {COLUMNS} FROM sessions WHERE token_digest = $1 AND expires_at > $2"))
        });
        self.optional(&SQL, &[token_digest.into(), now.into()], |row| {
            let user = UserId::parse(&row.text(0)?)
                .map_err(|_| DomainError::Storage("stored user id does not parse".into()))?;
            session_from_row(row, 1, token_digest.to_owned(), user)
        })
        .await
    }

    async fn revoke(&self, token_digest: &str, report: Option<&Message>) -> Result<bool> {
        static SQL: LazyLock<Reported> =
            LazyLock::new(|| Reported::new("DELETE FROM sessions WHERE token_digest = $1"));
        Ok(self.execute_reported(&SQL, vec![token_digest.into()], report).await? == 1)
    }

    async fn of_user(&self, user: UserId, now: Millis) -> Result<Vec<SessionRecord>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "SELECT token_digest, {COLUMNS} FROM sessions WHERE user_id = $1 AND expires_at > $2 \
                 ORDER BY created_at DESC LIMIT 100"
            ))
        });
        self.all(&SQL, &[user.to_string().into(), now.into()], |row| session_from_row(row, 1, row.text(0)?, user)).await
    }

    async fn revoke_for_user(&self, user: UserId, id_prefix: &str, report: Option<&Message>) -> Result<bool> {
        static SQL: LazyLock<Reported> = LazyLock::new(|| {
            Reported::new("DELETE FROM sessions WHERE user_id = $1 AND substr(token_digest, 1, 32) = $2")
        });
        Ok(self.execute_reported(&SQL, vec![user.to_string().into(), id_prefix.into()], report).await? > 0)
    }

    async fn mark_verified(&self, token_digest: &str, at: Millis) -> Result<bool> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("UPDATE sessions SET verified_at = $2 WHERE token_digest = $1 AND expires_at > $2")
        });
        Ok(self.execute(&SQL, vec![token_digest.into(), at.into()]).await? == 1)
    }

    async fn take_passkey_grant(&self, token_digest: &str, now: Millis) -> Result<bool> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "UPDATE sessions SET may_add_passkey_until = 0 \
                 WHERE token_digest = $1 AND may_add_passkey_until > $2 AND expires_at > $2",
            )
        });
        Ok(self.execute(&SQL, vec![token_digest.into(), now.into()]).await? == 1)
    }

    async fn revoke_all(&self, user: UserId, report: Option<&Message>) -> Result<u64> {
        static SQL: LazyLock<Reported> = LazyLock::new(|| Reported::new("DELETE FROM sessions WHERE user_id = $1"));
        self.execute_reported(&SQL, vec![user.to_string().into()], report).await
    }

    async fn touch(&self, token_digest: &str, now: Millis) -> Result<()> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("UPDATE sessions SET last_seen_at = $2 WHERE token_digest = $1"));
        self.execute(&SQL, vec![token_digest.into(), now.into()]).await.map(drop)
    }

    async fn purge_expired(&self, now: Millis, idle_since: Millis) -> Result<u64> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2"));
        self.execute(&SQL, vec![now.into(), idle_since.into()]).await
    }
}
