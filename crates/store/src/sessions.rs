//! Sessions, keyed by token digest.

use async_trait::async_trait;
use handoff_core::DomainError;
use handoff_core::clock::Millis;
use handoff_core::domain::UserId;
use handoff_core::error::Result;
use handoff_core::storage::{SessionRecord, Sessions};
use sqlx::Row;

use crate::db::{Database, storage_error};

#[async_trait]
impl Sessions for Database {
    async fn create(&self, s: &SessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_digest, user_id, created_at, expires_at, verified_at, user_agent, ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(s.token_digest.clone())
        .bind(s.user_id.to_string())
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.verified_at)
        .bind(s.user_agent.clone())
        .bind(s.ip.clone())
        .execute(&self.writer)
        .await
        .map_err(storage_error)?;
        Ok(())
    }

    async fn find(&self, token_digest: &str, now: Millis) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT user_id, created_at, expires_at, verified_at, user_agent, ip FROM sessions \
             WHERE token_digest = $1 AND expires_at > $2",
        )
        .bind(token_digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage_error)?;
        let Some(row) = row else { return Ok(None) };
        let user: String = row.try_get(0).map_err(storage_error)?;
        Ok(Some(SessionRecord {
            token_digest: token_digest.to_owned(),
            user_id: UserId::parse(&user).map_err(|_| DomainError::Storage("stored user id does not parse".into()))?,
            created_at: row.try_get(1).map_err(storage_error)?,
            expires_at: row.try_get(2).map_err(storage_error)?,
            verified_at: row.try_get(3).map_err(storage_error)?,
            user_agent: row.try_get(4).map_err(storage_error)?,
            ip: row.try_get(5).map_err(storage_error)?,
        }))
    }

    async fn revoke(&self, token_digest: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_digest = $1")
            .bind(token_digest)
            .execute(&self.writer)
            .await
            .map_err(storage_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn of_user(&self, user: UserId, now: Millis) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query(
            "SELECT token_digest, created_at, expires_at, verified_at, user_agent, ip FROM sessions \
             WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC LIMIT 100",
        )
        .bind(user.to_string())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(storage_error)?;
        rows.iter()
            .map(|row| {
                Ok(SessionRecord {
                    token_digest: row.try_get(0).map_err(storage_error)?,
                    user_id: user,
                    created_at: row.try_get(1).map_err(storage_error)?,
                    expires_at: row.try_get(2).map_err(storage_error)?,
                    verified_at: row.try_get(3).map_err(storage_error)?,
                    user_agent: row.try_get(4).map_err(storage_error)?,
                    ip: row.try_get(5).map_err(storage_error)?,
                })
            })
            .collect()
    }

    async fn revoke_for_user(&self, user: UserId, id_prefix: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND substr(token_digest, 1, 32) = $2")
            .bind(user.to_string())
            .bind(id_prefix)
            .execute(&self.writer)
            .await
            .map_err(storage_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn mark_verified(&self, token_digest: &str, at: Millis) -> Result<bool> {
        let done = sqlx::query("UPDATE sessions SET verified_at = $2 WHERE token_digest = $1 AND expires_at > $2")
            .bind(token_digest)
            .bind(at)
            .execute(&self.writer)
            .await
            .map_err(storage_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_expired(&self, now: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(storage_error)?;
        Ok(done.rows_affected())
    }
}
