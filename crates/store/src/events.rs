//! Product events: appended in one transaction per batch (durable when the call returns),
//! idempotent by event id.

use async_trait::async_trait;
use handoff_core::domain::JourneyId;
use handoff_core::error::Result;
use handoff_core::storage::{Events, StoredEvent};
use sqlx::Row;

use crate::db::{Database, storage_error};

#[async_trait]
impl Events for Database {
    async fn append(&self, events: &[StoredEvent]) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        // One multi-row INSERT: atomic on its own, one round trip, no BEGIN/COMMIT.
        const COLUMNS: usize = 12;
        let rows: Vec<String> = (0..events.len())
            .map(|r| {
                let params: Vec<String> = (1..=COLUMNS).map(|c| format!("${}", r * COLUMNS + c)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO events (event_id, journey_id, name, device, flow, ts, received_at, attrs, os, browser, \
             form_factor, app_version) VALUES {} ON CONFLICT (event_id) DO NOTHING",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for e in events {
            query = query
                .bind(e.event_id.clone())
                .bind(e.journey_id.to_string())
                .bind(e.name.clone())
                .bind(e.device.clone())
                .bind(e.flow.clone())
                .bind(e.ts)
                .bind(e.received_at)
                .bind(e.attrs.to_string())
                .bind(e.os.clone())
                .bind(e.browser.clone())
                .bind(e.form_factor.clone())
                .bind(e.app_version.clone());
        }
        let done = query.execute(&self.pool).await.map_err(storage_error)?;
        Ok(done.rows_affected())
    }

    async fn of_journey(&self, journey: JourneyId) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT event_id, name, device, flow, ts, received_at, attrs, os, browser, form_factor, app_version \
             FROM events WHERE journey_id = $1 ORDER BY received_at, seq",
        )
        .bind(journey.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(storage_error)?;
        rows.iter()
            .map(|r| {
                let attrs: String = r.try_get(6).map_err(storage_error)?;
                Ok(StoredEvent {
                    event_id: r.try_get(0).map_err(storage_error)?,
                    journey_id: journey,
                    name: r.try_get(1).map_err(storage_error)?,
                    device: r.try_get(2).map_err(storage_error)?,
                    flow: r.try_get(3).map_err(storage_error)?,
                    ts: r.try_get(4).map_err(storage_error)?,
                    received_at: r.try_get(5).map_err(storage_error)?,
                    attrs: serde_json::from_str(&attrs).unwrap_or(serde_json::Value::String(attrs)),
                    os: r.try_get(7).map_err(storage_error)?,
                    browser: r.try_get(8).map_err(storage_error)?,
                    form_factor: r.try_get(9).map_err(storage_error)?,
                    app_version: r.try_get(10).map_err(storage_error)?,
                })
            })
            .collect()
    }
}
