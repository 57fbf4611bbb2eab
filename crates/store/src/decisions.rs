//! What the decision engine reads and writes: attempts per browser, server-wide secrets
//! and passkey-append offers.

use std::sync::LazyLock;

use crate::Database;
use crate::sql::Sql;
use async_trait::async_trait;
use handoff_core::clock::Millis;
use handoff_core::domain::UserId;
use handoff_core::error::Result;
use handoff_core::intelligence::FailureHistory;
use handoff_core::storage::{AppendAction, AppendHistory, AppendOffers, Attempt, Attempts, Secrets};

fn count(v: Option<i64>) -> u32 {
    u32::try_from(v.unwrap_or(0).max(0)).unwrap_or(u32::MAX)
}

#[async_trait]
impl Attempts for Database {
    async fn record_attempt(&self, a: &Attempt) -> Result<()> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("INSERT INTO attempts (identifier, device_id, at, failed, detail) VALUES ($1, $2, $3, $4, $5)")
        });
        let params = vec![
            a.identifier.clone().into(),
            a.device_id.clone().into(),
            a.at.into(),
            a.failed.into(),
            a.detail.clone().into(),
        ];
        self.execute(&SQL, params).await.map(drop)
    }

    async fn failure_history(&self, identifier: &str, device_id: &str, since: Millis) -> Result<FailureHistory> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "SELECT COUNT(*), MAX(at) FROM attempts WHERE identifier = $1 AND device_id = $2 \
                 AND failed = 1 AND at >= $3 AND at > COALESCE((SELECT MAX(at) FROM attempts \
                     WHERE identifier = $1 AND device_id = $2 AND failed = 0), -1)",
            )
        });
        let params = [identifier.into(), device_id.into(), since.into()];
        let history = self.optional(&SQL, &params, |row| {
            Ok(FailureHistory { recent_failures: count(row.opt_int(0)?), last_failure_at: row.opt_int(1)? })
        });
        Ok(history.await?.unwrap_or_default())
    }
}

#[async_trait]
impl Secrets for Database {
    async fn get_or_create(&self, name: &str, candidate: &str) -> Result<String> {
        static INSERT: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        });
        static SELECT: LazyLock<Sql> = LazyLock::new(|| Sql::new("SELECT value FROM secrets WHERE name = $1"));
        self.execute(&INSERT, vec![name.into(), candidate.into()]).await?;
        self.one(&SELECT, &[name.into()], |row| row.text(0)).await
    }
}

#[async_trait]
impl AppendOffers for Database {
    async fn record_append(&self, user: UserId, device_id: &str, at: Millis, action: AppendAction) -> Result<()> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("INSERT INTO append_offers (user_id, device_id, at, action) VALUES ($1, $2, $3, $4)")
        });
        let params = vec![user.to_string().into(), device_id.into(), at.into(), action.as_str().into()];
        self.execute(&SQL, params).await.map(drop)
    }

    async fn append_history(&self, user: UserId, since: Millis) -> Result<AppendHistory> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "SELECT SUM(CASE WHEN action = 'offered' AND at >= $2 THEN 1 ELSE 0 END), \
                        SUM(CASE WHEN action = 'skipped' THEN 1 ELSE 0 END), \
                        MAX(CASE WHEN action = 'skipped' THEN at END) \
                 FROM append_offers WHERE user_id = $1",
            )
        });
        self.one(&SQL, &[user.to_string().into(), since.into()], |row| {
            Ok(AppendHistory {
                offers_since: count(row.opt_int(0)?),
                skips_total: count(row.opt_int(1)?),
                last_skip_at: row.opt_int(2)?,
            })
        })
        .await
    }
}
