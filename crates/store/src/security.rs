//! The security event log (append-only).

use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::domain::UserId;
use handoff_core::error::Result;
use handoff_core::storage::{SecurityEvent, SecurityEvents};

use crate::Database;
use crate::sql::Sql;

#[async_trait]
impl SecurityEvents for Database {
    async fn record(&self, e: &SecurityEvent) -> Result<()> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "INSERT INTO security_events (kind, user_id, detail, at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6)",
            )
        });
        let params = vec![
            e.kind.clone().into(),
            e.user_id.map(|u| u.to_string()).into(),
            e.detail.to_string().into(),
            e.at.into(),
            e.ip.clone().into(),
            e.user_agent.clone().into(),
        ];
        self.execute(&SQL, params).await.map(drop)
    }

    async fn of_user(&self, user: UserId, limit: u32) -> Result<Vec<SecurityEvent>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "SELECT kind, detail, at, ip, user_agent FROM security_events WHERE user_id = $1 \
                 ORDER BY at DESC, id DESC LIMIT $2",
            )
        });
        self.all(&SQL, &[user.to_string().into(), i64::from(limit).into()], |r| {
            let detail = r.text(1)?;
            Ok(SecurityEvent {
                kind: r.text(0)?,
                user_id: Some(user),
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                at: r.int(2)?,
                ip: r.opt_text(3)?,
                user_agent: r.opt_text(4)?,
            })
        })
        .await
    }
}
