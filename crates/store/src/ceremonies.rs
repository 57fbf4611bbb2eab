//! Ceremony state: put, take (delete-returning, so single use is one atomic statement),
//! purge.

use async_trait::async_trait;
use handoff_core::clock::Millis;
use handoff_core::domain::CeremonyId;
use handoff_core::error::Result;
use handoff_core::storage::{Ceremonies, CeremonyKind, CeremonyRecord};
use sqlx::Row;

use crate::db::{Database, storage_error};

#[async_trait]
impl Ceremonies for Database {
    async fn put(&self, c: &CeremonyRecord) -> Result<()> {
        sqlx::query("INSERT INTO ceremonies (id, kind, payload, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(c.id.to_string())
            .bind(c.kind.as_str())
            .bind(c.payload.clone())
            .bind(c.created_at)
            .bind(c.expires_at)
            .execute(&self.writer)
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    async fn take(&self, id: CeremonyId, kind: CeremonyKind) -> Result<Option<CeremonyRecord>> {
        let row =
            sqlx::query("DELETE FROM ceremonies WHERE id = $1 AND kind = $2 RETURNING payload, created_at, expires_at")
                .bind(id.to_string())
                .bind(kind.as_str())
                .fetch_optional(&self.writer)
                .await
                .map_err(storage_error)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(CeremonyRecord {
            id,
            kind,
            payload: row.try_get(0).map_err(storage_error)?,
            created_at: row.try_get(1).map_err(storage_error)?,
            expires_at: row.try_get(2).map_err(storage_error)?,
        }))
    }

    async fn purge_expired(&self, now: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM ceremonies WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(storage_error)?;
        Ok(done.rows_affected())
    }
}
