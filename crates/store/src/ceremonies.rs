//! Ceremony state: put, take (delete-returning, so single use is one atomic statement),
//! purge.

use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::clock::Millis;
use handoff_core::domain::CeremonyId;
use handoff_core::error::Result;
use handoff_core::storage::{Ceremonies, CeremonyKind, CeremonyRecord};

use crate::Database;
use crate::sql::Sql;

#[async_trait]
impl Ceremonies for Database {
    async fn put(&self, c: &CeremonyRecord) -> Result<()> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("INSERT INTO ceremonies (id, kind, payload, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        });
        let params = vec![
            c.id.to_string().into(),
            c.kind.as_str().into(),
            c.payload.clone().into(),
            c.created_at.into(),
            c.expires_at.into(),
        ];
        self.execute(&SQL, params).await.map(drop)
    }

    async fn take(&self, id: CeremonyId, kind: CeremonyKind) -> Result<Option<CeremonyRecord>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new("DELETE FROM ceremonies WHERE id = $1 AND kind = $2 RETURNING payload, created_at, expires_at")
        });
        let params = vec![id.to_string().into(), kind.as_str().into()];
        let mut taken = self
            .returning(&SQL, params, move |row| {
                Ok(CeremonyRecord { id, kind, payload: row.text(0)?, created_at: row.int(1)?, expires_at: row.int(2)? })
            })
            .await?;
        Ok(taken.pop())
    }

    async fn purge_expired(&self, now: Millis) -> Result<u64> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| Sql::new("DELETE FROM ceremonies WHERE expires_at <= $1"));
        self.execute(&SQL, vec![now.into()]).await
    }
}
