//! Rate-limit counters in the database: one row per key and one-minute window, raised by a
//! single upsert, so every instance on a shared PostgreSQL counts against the same limit.

use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::clock::Millis;
use handoff_core::error::Result;
use handoff_core::storage::RateCounters;

use crate::Database;
use crate::sql::{Param, Sql};

#[async_trait]
impl RateCounters for Database {
    async fn hit(&self, keys: &[String], window_start: Millis) -> Result<Vec<u64>> {
        /// The statement for one to four keys (a request counts under at most two).
        static SQL: LazyLock<Vec<Sql>> = LazyLock::new(|| {
            (1..=4)
                .map(|n| {
                    let rows: Vec<String> = (0..n).map(|i| format!("(${}, $1, 1)", i + 2)).collect();
                    Sql::new(format!(
                        "INSERT INTO rate_counters (key, window_start, hits) VALUES {} \
                         ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_counters.hits + 1 RETURNING key, hits",
                        rows.join(", ")
                    ))
                })
                .collect()
        });
        let mut counted = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(SQL.len()) {
            let params = std::iter::once(Param::from(window_start)).chain(chunk.iter().map(|k| k.as_str().into()));
            let rows = self.returning(&SQL[chunk.len() - 1], params.collect(), |row| Ok((row.text(0)?, row.int(1)?)));
            let rows = rows.await?;
            for key in chunk {
                let hits = rows.iter().find(|(k, _)| k == key).map_or(1, |(_, n)| *n);
                counted.push(u64::try_from(hits).unwrap_or(0));
            }
        }
        Ok(counted)
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
