//! Rate-limit counters in the database: one row per key and one-minute window, raised by a
//! single upsert, so every instance on a shared PostgreSQL counts against the same limit.

use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::clock::Millis;
use handoff_core::error::Result;
use handoff_core::storage::RateCounters;

use crate::Database;
use crate::sql::Sql;

#[async_trait]
impl RateCounters for Database {
    async fn hit(&self, key: &str, window_start: Millis) -> Result<u64> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "INSERT INTO rate_counters (key, window_start, hits) VALUES ($1, $2, 1) \
                 ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_counters.hits + 1 RETURNING hits",
            )
        });
        let hits = self.returning(&SQL, vec![key.into(), window_start.into()], |row| row.int(0)).await?;
        Ok(u64::try_from(hits.first().copied().unwrap_or(1)).unwrap_or(0))
    }

    async fn hits(&self, key: &str, window_start: Millis) -> Result<u64> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("SELECT hits FROM rate_counters WHERE key = $1 AND window_start = $2"));
        let hits = self.optional(&SQL, &[key.into(), window_start.into()], |row| row.int(0)).await?.unwrap_or(0);
        Ok(u64::try_from(hits).unwrap_or(0))
    }

    async fn purge_rate_counters(&self, before: Millis) -> Result<u64> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| Sql::new("DELETE FROM rate_counters WHERE window_start < $1"));
        self.execute(&SQL, vec![before.into()]).await
    }
}
