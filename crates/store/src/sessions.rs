//! Sessions, keyed by token digest.

use async_trait::async_trait;
use handoff_core::DomainError;
use handoff_core::clock::Millis;
use handoff_core::domain::UserId;
use handoff_core::error::Result;
use handoff_core::passkeys::SessionMethod;
use handoff_core::storage::{SessionRecord, Sessions};
use std::sync::LazyLock;

use sqlx::Row;

use crate::db::{Database, storage_error};
use crate::inline::Statement;

fn method(stored: &str) -> Result<SessionMethod> {
    SessionMethod::parse(stored)
        .ok_or_else(|| DomainError::Storage(format!("stored session method {stored:?} is unknown")))
}

#[async_trait]
impl Sessions for Database {
    async fn create(&self, s: &SessionRecord) -> Result<()> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new(
                "INSERT INTO sessions (token_digest, user_id, created_at, expires_at, verified_at, user_agent, ip, \
                 method, may_add_passkey_until, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                    .into(),
            )
        });
        let params = [
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
        self.writer.execute(&SQL, params).await?;
        Ok(())
    }

    async fn find(&self, token_digest: &str, now: Millis) -> Result<Option<SessionRecord>> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new(
                "SELECT user_id, created_at, expires_at, verified_at, user_agent, ip, method, may_add_passkey_until, \
                 last_seen_at FROM sessions WHERE token_digest = $1 AND expires_at > $2"
                    .into(),
            )
        });
        self.read_optional(&SQL, &[token_digest.into(), now.into()], |row| {
            Ok(SessionRecord {
                token_digest: token_digest.to_owned(),
                user_id: UserId::parse(&row.text(0)?)
                    .map_err(|_| DomainError::Storage("stored user id does not parse".into()))?,
                created_at: row.int(1)?,
                expires_at: row.int(2)?,
                verified_at: row.int(3)?,
                user_agent: row.opt_text(4)?,
                ip: row.opt_text(5)?,
                method: method(&row.text(6)?)?,
                may_add_passkey_until: row.int(7)?,
                last_seen_at: row.int(8)?,
            })
        })
        .await
    }

    async fn revoke(&self, token_digest: &str) -> Result<bool> {
        static SQL: LazyLock<Statement> =
            LazyLock::new(|| Statement::new("DELETE FROM sessions WHERE token_digest = $1".into()));
        Ok(self.writer.execute(&SQL, [token_digest.into()]).await? == 1)
    }

    async fn of_user(&self, user: UserId, now: Millis) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query(
            "SELECT token_digest, created_at, expires_at, verified_at, user_agent, ip, method, may_add_passkey_until, \
             last_seen_at FROM sessions WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC LIMIT 100",
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
                    method: method(&row.try_get::<String, _>(6).map_err(storage_error)?)?,
                    may_add_passkey_until: row.try_get(7).map_err(storage_error)?,
                    last_seen_at: row.try_get(8).map_err(storage_error)?,
                })
            })
            .collect()
    }

    async fn revoke_for_user(&self, user: UserId, id_prefix: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND substr(token_digest, 1, 32) = $2")
            .bind(user.to_string())
            .bind(id_prefix)
            .execute(&mut *self.writer.conn().await?)
            .await
            .map_err(storage_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn mark_verified(&self, token_digest: &str, at: Millis) -> Result<bool> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new("UPDATE sessions SET verified_at = $2 WHERE token_digest = $1 AND expires_at > $2".into())
        });
        Ok(self.writer.execute(&SQL, [token_digest.into(), at.into()]).await? == 1)
    }

    async fn take_passkey_grant(&self, token_digest: &str, now: Millis) -> Result<bool> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new(
                "UPDATE sessions SET may_add_passkey_until = 0 \
                 WHERE token_digest = $1 AND may_add_passkey_until > $2 AND expires_at > $2"
                    .into(),
            )
        });
        Ok(self.writer.execute(&SQL, [token_digest.into(), now.into()]).await? == 1)
    }

    async fn revoke_all(&self, user: UserId) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *self.writer.conn().await?)
            .await
            .map_err(storage_error)?;
        Ok(done.rows_affected())
    }

    async fn touch(&self, token_digest: &str, now: Millis) -> Result<()> {
        static SQL: LazyLock<Statement> =
            LazyLock::new(|| Statement::new("UPDATE sessions SET last_seen_at = $2 WHERE token_digest = $1".into()));
        self.writer.execute(&SQL, [token_digest.into(), now.into()]).await?;
        Ok(())
    }

    async fn purge_expired(&self, now: Millis, idle_since: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2")
            .bind(now)
            .bind(idle_since)
            .execute(&mut *self.writer.conn().await?)
            .await
            .map_err(storage_error)?;
        Ok(done.rows_affected())
    }
}
