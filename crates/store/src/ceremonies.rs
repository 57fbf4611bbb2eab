//! Ceremony state: put, take (delete-returning, so single use is one atomic statement),
//! purge.

use async_trait::async_trait;
use handoff_core::clock::Millis;
use handoff_core::domain::CeremonyId;
use handoff_core::error::Result;
use handoff_core::storage::{Ceremonies, CeremonyKind, CeremonyRecord};
use std::sync::LazyLock;

use crate::db::{Database, storage_error};
use crate::inline::Statement;

#[async_trait]
impl Ceremonies for Database {
    async fn put(&self, c: &CeremonyRecord) -> Result<()> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new(
                "INSERT INTO ceremonies (id, kind, payload, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)".into(),
            )
        });
        let params = [
            c.id.to_string().into(),
            c.kind.as_str().into(),
            c.payload.clone().into(),
            c.created_at.into(),
            c.expires_at.into(),
        ];
        self.writer.execute(&SQL, params).await?;
        Ok(())
    }

    async fn take(&self, id: CeremonyId, kind: CeremonyKind) -> Result<Option<CeremonyRecord>> {
        static SQL: LazyLock<Statement> = LazyLock::new(|| {
            Statement::new(
                "DELETE FROM ceremonies WHERE id = $1 AND kind = $2 RETURNING payload, created_at, expires_at".into(),
            )
        });
        let params = [id.to_string().into(), kind.as_str().into()];
        self.writer
            .fetch_optional(&SQL, params, move |row| {
                Ok(CeremonyRecord { id, kind, payload: row.text(0)?, created_at: row.int(1)?, expires_at: row.int(2)? })
            })
            .await
    }

    async fn purge_expired(&self, now: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM ceremonies WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *self.writer.conn().await?)
            .await
            .map_err(storage_error)?;
        Ok(done.rows_affected())
    }
}
