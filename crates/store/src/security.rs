//! The security event log (append-only).

use async_trait::async_trait;
use handoff_core::domain::UserId;
use handoff_core::error::Result;
use handoff_core::storage::{SecurityEvent, SecurityEvents};
use sqlx::Row;

use crate::db::{Database, storage_error};

#[async_trait]
impl SecurityEvents for Database {
    async fn record(&self, e: &SecurityEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO security_events (kind, user_id, detail, at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.kind.clone())
        .bind(e.user_id.map(|u| u.to_string()))
        .bind(e.detail.to_string())
        .bind(e.at)
        .bind(e.ip.clone())
        .bind(e.user_agent.clone())
        .execute(&mut *self.writer.conn().await?)
        .await
        .map_err(storage_error)?;
        Ok(())
    }

    async fn of_user(&self, user: UserId, limit: u32) -> Result<Vec<SecurityEvent>> {
        let rows = sqlx::query(
            "SELECT kind, detail, at, ip, user_agent FROM security_events WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(user.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(storage_error)?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get(1).map_err(storage_error)?;
                Ok(SecurityEvent {
                    kind: r.try_get(0).map_err(storage_error)?,
                    user_id: Some(user),
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                    at: r.try_get(2).map_err(storage_error)?,
                    ip: r.try_get(3).map_err(storage_error)?,
                    user_agent: r.try_get(4).map_err(storage_error)?,
                })
            })
            .collect()
    }
}
