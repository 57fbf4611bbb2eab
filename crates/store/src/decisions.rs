//! What the decision engine reads and writes: attempts per browser, server-wide secrets
//! and passkey-append offers.

use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::clock::Millis;
use handoff_core::domain::UserId;
use handoff_core::error::Result;
use handoff_core::intelligence::FailureHistory;
use handoff_core::storage::{AppendAction, AppendHistory, AppendOffers, Attempt, Attempts, Secrets};
use sqlx::Row;

use crate::db::{Database, flag, storage_error};
use crate::inline::Statement;

fn count(v: Option<i64>) -> u32 {
    u32::try_from(v.unwrap_or(0).max(0)).unwrap_or(u32::MAX)
}

#[async_trait]
impl Attempts for Database {
    async fn record_attempt(&self, a: &Attempt) -> Result<()> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new(
                "INSERT INTO attempts (identifier, device_id, at, failed, detail) VALUES ($1, $2, $3, $4, $5)".into(),
            )
        });
        let params = [
            a.identifier.clone().into(),
            a.device_id.clone().into(),
            a.at.into(),
            flag(a.failed).into(),
            a.detail.clone().into(),
        ];
        self.writer.execute(&SQL, params).await?;
        Ok(())
    }

    async fn failure_history(&self, identifier: &str, device_id: &str, since: Millis) -> Result<FailureHistory> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new(
                "SELECT COUNT(*), MAX(at) FROM attempts WHERE identifier = $1 AND device_id = $2 \
                 AND failed = 1 AND at >= $3 AND at > COALESCE((SELECT MAX(at) FROM attempts \
                     WHERE identifier = $1 AND device_id = $2 AND failed = 0), -1)"
                    .to_owned(),
            )
        });
        let params = [identifier.into(), device_id.into(), since.into()];
        let history = self.read_optional(&SQL, &params, |row| {
            Ok(FailureHistory { recent_failures: count(row.opt_int(0)?), last_failure_at: row.opt_int(1)? })
        });
        Ok(history.await?.unwrap_or_default())
    }
}

#[async_trait]
impl Secrets for Database {
    async fn get_or_create(&self, name: &str, candidate: &str) -> Result<String> {
        sqlx::query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate)
            .execute(&mut *self.writer.conn().await?)
            .await
            .map_err(storage_error)?;
        let row = sqlx::query("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(storage_error)?;
        row.try_get(0).map_err(storage_error)
    }
}

#[async_trait]
impl AppendOffers for Database {
    async fn record_append(&self, user: UserId, device_id: &str, at: Millis, action: AppendAction) -> Result<()> {
        sqlx::query("INSERT INTO append_offers (user_id, device_id, at, action) VALUES ($1, $2, $3, $4)")
            .bind(user.to_string())
            .bind(device_id)
            .bind(at)
            .bind(action.as_str())
            .execute(&mut *self.writer.conn().await?)
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    async fn append_history(&self, user: UserId, since: Millis) -> Result<AppendHistory> {
        let row = sqlx::query(
            "SELECT SUM(CASE WHEN action = 'offered' AND at >= $2 THEN 1 ELSE 0 END), \
                    SUM(CASE WHEN action = 'skipped' THEN 1 ELSE 0 END), \
                    MAX(CASE WHEN action = 'skipped' THEN at END) \
             FROM append_offers WHERE user_id = $1",
        )
        .bind(user.to_string())
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(storage_error)?;
        Ok(AppendHistory {
            offers_since: count(row.try_get(0).map_err(storage_error)?),
            skips_total: count(row.try_get(1).map_err(storage_error)?),
            last_skip_at: row.try_get(2).map_err(storage_error)?,
        })
    }
}
