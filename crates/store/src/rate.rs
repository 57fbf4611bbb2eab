//! Rate-limit counters in the database: one row per key and one-minute window, raised by a
//! single upsert, so every instance on a shared PostgreSQL counts against the same limit.

use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::clock::Millis;
use handoff_core::error::Result;
use handoff_core::storage::RateCounters;

use crate::db::{Database, storage_error};
use crate::inline::Statement;

#[async_trait]
impl RateCounters for Database {
    async fn hit(&self, key: &str, window_start: Millis) -> Result<u64> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new(
                "INSERT INTO rate_counters (key, window_start, hits) VALUES ($1, $2, 1) \
                 ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_counters.hits + 1 RETURNING hits"
                    .into(),
            )
        });
        let hits =
            self.writer.fetch_optional(&SQL, [key.into(), window_start.into()], |row| row.int(0)).await?.unwrap_or(1);
        Ok(u64::try_from(hits).unwrap_or(0))
    }

    async fn hits(&self, key: &str, window_start: Millis) -> Result<u64> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new("SELECT hits FROM rate_counters WHERE key = $1 AND window_start = $2".into())
        });
        let hits = self.read_optional(&SQL, &[key.into(), window_start.into()], |row| row.int(0)).await?.unwrap_or(0);
        Ok(u64::try_from(hits).unwrap_or(0))
    }

    async fn purge_rate_counters(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM rate_counters WHERE window_start < $1")
            .bind(before)
            .execute(&mut *self.writer.conn().await?)
            .await
            .map_err(storage_error)?;
        Ok(done.rows_affected())
    }
}
