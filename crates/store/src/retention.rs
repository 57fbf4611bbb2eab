//! Retention: one batch of deletions of what is older than the cutoff, in one write
//! transaction (on SQLite through the write lane, so sign-ins wait at most one batch).
//! Journeys are deleted with their events, oldest first, and only when their start hour is
//! rolled up (not dirty): the rollup keeps counting them after the rows are gone, and
//! deleting does not mark the hour dirty, so it is never recomputed from what is left.

use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::clock::Millis;
use handoff_core::error::Result;
use handoff_core::storage::{Purged, Retention};

use crate::sql::{Param, Sql};
use crate::{Backend, Database};

static OLD_JOURNEYS: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        "SELECT journey_id FROM journeys WHERE started_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM rollup_dirty d WHERE d.hour = journeys.started_at / 3600000) \
         ORDER BY started_at LIMIT $2",
    )
});

static OLD_QR: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        "DELETE FROM qr_attempts WHERE id IN (SELECT id FROM qr_attempts WHERE expires_at < $1 \
         AND state NOT IN ('created', 'scanned', 'approved') LIMIT $2)",
    )
});

static OLD_SECURITY: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new("DELETE FROM security_events WHERE id IN (SELECT id FROM security_events WHERE at < $1 LIMIT $2)")
});

/// Tables without a key of their own are batched by the row's physical id.
fn by_row_id(backend: Backend, table: &str) -> Sql {
    let id = match backend {
        Backend::Sqlite => "rowid",
        Backend::Postgres => "ctid",
    };
    Sql::new(format!("DELETE FROM {table} WHERE {id} IN (SELECT {id} FROM {table} WHERE at < $1 LIMIT $2)"))
}

#[async_trait]
impl Retention for Database {
    async fn purge_before(&self, cutoff: Millis, batch: u32) -> Result<Purged> {
        let limit = i64::from(batch.max(1));
        let window = [Param::from(cutoff), Param::from(limit)];
        let mut tx = self.begin().await?;
        let mut purged = Purged::default();
        let journeys: Vec<String> = tx.all(&OLD_JOURNEYS, &window, |row| row.text(0)).await?;
        if !journeys.is_empty() {
            let marks: Vec<String> = (1..=journeys.len()).map(|i| format!("${i}")).collect();
            let ids: Vec<Param> = journeys.iter().map(|j| Param::from(j.as_str())).collect();
            let events = Sql::new(format!("DELETE FROM events WHERE journey_id IN ({})", marks.join(", ")));
            purged.events = tx.execute(&events, &ids).await?;
            let rows = Sql::new(format!("DELETE FROM journeys WHERE journey_id IN ({})", marks.join(", ")));
            purged.journeys = tx.execute(&rows, &ids).await?;
        }
        purged.qr_attempts = tx.execute(&OLD_QR, &window).await?;
        purged.security_events = tx.execute(&OLD_SECURITY, &window).await?;
        purged.attempts = tx.execute(&by_row_id(self.backend(), "attempts"), &window).await?;
        purged.append_offers = tx.execute(&by_row_id(self.backend(), "append_offers"), &window).await?;
        tx.commit().await?;
        Ok(purged)
    }
}
