//! Webhook endpoints, subscriptions and the outbox of deliveries (migration 0011). The
//! deliveries a change reports are written beside the change by the executor
//! (`sql/mod.rs`: `execute_reported`, `Tx::report`); here are the registry, the workers'
//! claim (a lease; on PostgreSQL `FOR UPDATE SKIP LOCKED`, so instances share the work and
//! never wait on each other's rows) and settlement (fenced by the lease, so a worker whose
//! lease ran out cannot overwrite a newer attempt; a batch of attempts in one statement), and
//! the operator's listings.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use handoff_core::DomainError;
use handoff_core::clock::Millis;
use handoff_core::error::Result;
use handoff_core::storage::{ClaimedDelivery, Delivery, HealthChange, Settled, Settlement, Webhooks};
use handoff_core::webhooks::{Endpoint, EventType};

use crate::sql::{Param, Row, Sql, Tx};
use crate::{Backend, Database};

const ENDPOINT_COLUMNS: &str = "id, url, secret, source, created_at, consecutive_failures, failing_since";

fn endpoint_from_row(row: &dyn Row) -> Result<Endpoint> {
    Ok(Endpoint {
        id: row.text(0)?,
        url: row.text(1)?,
        secret: row.text(2)?,
        source: row.text(3)?,
        created_at: row.int(4)?,
        consecutive_failures: row.int(5)?,
        failing_since: row.opt_int(6)?,
        events: Vec::new(),
    })
}

/// Inserts (or, for a configured one, updates) an endpoint and makes its subscriptions
/// exactly its event types.
async fn put_endpoint(tx: &mut Tx, e: &Endpoint) -> Result<()> {
    static UPSERT: LazyLock<Sql> = LazyLock::new(|| {
        Sql::new(format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, 0, NULL) \
             ON CONFLICT (id) DO UPDATE SET url = excluded.url, secret = excluded.secret, source = excluded.source"
        ))
    });
    static CLEAR: LazyLock<Sql> =
        LazyLock::new(|| Sql::new("DELETE FROM webhook_subscriptions WHERE endpoint_id = $1"));
    static SUBSCRIBE: LazyLock<Sql> =
        LazyLock::new(|| Sql::new("INSERT INTO webhook_subscriptions (event_type, endpoint_id) VALUES ($1, $2)"));
    let params: [Param; 5] = [
        e.id.clone().into(),
        e.url.clone().into(),
        e.secret.clone().into(),
        e.source.clone().into(),
        e.created_at.into(),
    ];
    tx.execute(&UPSERT, &params).await?;
    tx.execute(&CLEAR, &[e.id.clone().into()]).await?;
    for t in &e.events {
        tx.execute(&SUBSCRIBE, &[t.as_str().into(), e.id.clone().into()]).await?;
    }
    Ok(())
}

fn delivery_from_row(r: &dyn Row) -> Result<Delivery> {
    let state = r.text(4)?;
    Ok(Delivery {
        id: r.int(0)?,
        endpoint_id: r.text(1)?,
        message_id: r.text(2)?,
        event_type: r.text(3)?,
        next_attempt_at: (state == "pending").then(|| r.int(7)).transpose()?,
        state,
        attempts: r.int(5)?,
        created_at: r.int(6)?,
        last_status: r.opt_int(8)?,
        last_error: r.opt_text(9)?,
        delivered_at: r.opt_int(10)?,
    })
}

/// The batch sizes a settlement statement is written for (a batch is padded up to the next
/// one with rows that match nothing), so a handful of statements stay prepared.
const SETTLE_ROWS: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// Settles up to 64 deliveries in one statement, each fenced by its lease: the rows go in a
/// `VALUES` list joined by id and lease, so whatever their outcomes one statement (one write
/// lane job on SQLite, one round trip on PostgreSQL) stores them all.
fn settle_sql(rows: usize) -> Sql {
    let values = (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=7).map(|c| format!("${}", r * 7 + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    Sql::new(format!(
        "WITH s (sid, slease, sstate, snext, sstatus, serror, sdelivered) AS (VALUES {values}) \
         UPDATE webhook_deliveries SET state = sstate, next_attempt_at = snext, last_status = sstatus, \
         last_error = serror, delivered_at = sdelivered, locked_until = 0 \
         FROM s WHERE id = sid AND locked_until = slease RETURNING id"
    ))
}

impl Database {
    /// Settles at most `SETTLE_ROWS`' largest batch; returns the ids whose lease held.
    async fn settle_chunk(&self, chunk: &[Settled]) -> Result<Vec<i64>> {
        static SETTLE: LazyLock<Vec<Sql>> = LazyLock::new(|| SETTLE_ROWS.iter().map(|&n| settle_sql(n)).collect());
        let Some(size) = SETTLE_ROWS.iter().position(|&n| n >= chunk.len()) else {
            return Err(DomainError::Internal(format!("a settlement batch of {} deliveries", chunk.len())));
        };
        let mut params = Vec::with_capacity(SETTLE_ROWS[size] * 7);
        for s in chunk {
            let (state, next, delivered_at) = match s.outcome {
                Settlement::Delivered => ("delivered", s.at, Some(s.at)),
                Settlement::Retry(at) => ("pending", at, None),
                Settlement::Dead => ("dead", s.at, None),
            };
            params.extend([
                s.id.into(),
                s.lease.into(),
                state.into(),
                next.into(),
                s.status.into(),
                s.error.clone().into(),
                delivered_at.into(),
            ]);
        }
        // Padding: id 0 is never a delivery's (ids start at 1).
        for _ in chunk.len()..SETTLE_ROWS[size] {
            params.extend([
                0i64.into(),
                0i64.into(),
                "pending".into(),
                0i64.into(),
                None::<i64>.into(),
                None::<String>.into(),
                None::<i64>.into(),
            ]);
        }
        self.returning(&SETTLE[size], params, |r| r.int(0)).await
    }
}

#[async_trait]
impl Webhooks for Database {
    async fn add_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let mut tx = self.begin().await?;
        put_endpoint(&mut tx, endpoint).await?;
        tx.commit().await
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>> {
        static ENDPOINTS: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"))
        });
        static SUBSCRIPTIONS: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("SELECT endpoint_id, event_type FROM webhook_subscriptions"));
        let mut endpoints = self.all(&ENDPOINTS, &[], endpoint_from_row).await?;
        let subscriptions = self.all(&SUBSCRIPTIONS, &[], |r| Ok((r.text(0)?, r.text(1)?))).await?;
        let mut by_endpoint: HashMap<String, Vec<EventType>> = HashMap::new();
        for (endpoint, name) in subscriptions {
            let t = EventType::parse(&name)
                .ok_or_else(|| DomainError::Storage(format!("stored event type {name:?} is unknown")))?;
            by_endpoint.entry(endpoint).or_default().push(t);
        }
        for e in &mut endpoints {
            let mut events = by_endpoint.remove(&e.id).unwrap_or_default();
            events.sort_by_key(|t| EventType::ALL.iter().position(|a| a == t));
            e.events = events;
        }
        Ok(endpoints)
    }

    async fn remove_endpoint(&self, id: &str) -> Result<bool> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| Sql::new("DELETE FROM webhook_endpoints WHERE id = $1"));
        Ok(self.execute(&SQL, vec![id.into()]).await? == 1)
    }

    async fn replace_configured(&self, endpoints: &[Endpoint]) -> Result<()> {
        static CONFIGURED: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("SELECT id FROM webhook_endpoints WHERE source = 'config'"));
        static REMOVE: LazyLock<Sql> = LazyLock::new(|| Sql::new("DELETE FROM webhook_endpoints WHERE id = $1"));
        let mut tx = self.begin().await?;
        for id in tx.all(&CONFIGURED, &[], |r| r.text(0)).await? {
            if !endpoints.iter().any(|e| e.id == id) {
                tx.execute(&REMOVE, &[id.into()]).await?;
            }
        }
        for e in endpoints {
            put_endpoint(&mut tx, e).await?;
        }
        tx.commit().await
    }

    async fn subscribed_types(&self) -> Result<Vec<String>> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("SELECT DISTINCT event_type FROM webhook_subscriptions ORDER BY event_type"));
        self.all(&SQL, &[], |r| r.text(0)).await
    }

    async fn claim_deliveries(&self, now: Millis, lease: Millis, limit: u32) -> Result<Vec<ClaimedDelivery>> {
        // The same claim on both; PostgreSQL skips rows another instance is claiming
        // instead of waiting for them (SQLite's one writer serialises claims anyway).
        fn claim(lock: &str) -> Sql {
            Sql::new(format!(
                "UPDATE webhook_deliveries SET locked_until = $2, attempts = attempts + 1 WHERE id IN \
                 (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
                 AND locked_until <= $1 ORDER BY next_attempt_at LIMIT $3{lock}) \
                 RETURNING id, endpoint_id, message_id, payload, attempts, retry_from, locked_until, \
                 (SELECT consecutive_failures FROM webhook_endpoints e WHERE e.id = endpoint_id)"
            ))
        }
        static SQLITE: LazyLock<Sql> = LazyLock::new(|| claim(""));
        static POSTGRES: LazyLock<Sql> = LazyLock::new(|| claim(" FOR UPDATE SKIP LOCKED"));
        let sql = match self.backend() {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        };
        let mut claimed = self
            .returning(sql, vec![now.into(), lease.into(), i64::from(limit).into()], |r| {
                Ok(ClaimedDelivery {
                    id: r.int(0)?,
                    endpoint_id: r.text(1)?,
                    message_id: r.text(2)?,
                    payload: r.text(3)?,
                    attempts: r.int(4)?,
                    retry_from: r.int(5)?,
                    lease: r.int(6)?,
                    endpoint_healthy: r.opt_int(7)? == Some(0),
                })
            })
            .await?;
        // Oldest first: an endpoint receives its events in the order they happened, as far
        // as one batch goes.
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    async fn settle_deliveries(&self, settled: &[Settled]) -> Result<Vec<i64>> {
        static HEALTHY: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "UPDATE webhook_endpoints SET consecutive_failures = $2, \
                 failing_since = CASE WHEN $2 >= $3 THEN $4 ELSE NULL END \
                 WHERE id = $1 AND (consecutive_failures <> $2 OR failing_since IS NOT NULL OR $2 >= $3)",
            )
        });
        static FAILED: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + $2, \
                 failing_since = CASE WHEN failing_since IS NULL AND consecutive_failures + $2 >= $3 THEN $4 \
                 ELSE failing_since END WHERE id = $1",
            )
        });
        let mut held = Vec::with_capacity(settled.len());
        for chunk in settled.chunks(SETTLE_ROWS[SETTLE_ROWS.len() - 1]) {
            held.extend(self.settle_chunk(chunk).await?);
        }
        let lost = settled.iter().map(|s| s.id).filter(|id| !held.contains(id)).collect();
        for h in HealthChange::of(settled.iter().filter(|s| held.contains(&s.id))) {
            let sql = if h.reset { &HEALTHY } else { &FAILED };
            let params = vec![h.endpoint_id.into(), h.failures.into(), i64::from(h.failing_after).into(), h.at.into()];
            self.execute(sql, params).await?;
        }
        Ok(lost)
    }

    async fn deliveries(&self, endpoint_id: Option<&str>, limit: u32) -> Result<Vec<Delivery>> {
        const COLUMNS: &str = "id, endpoint_id, message_id, event_type, state, attempts, created_at, next_attempt_at, \
             last_status, last_error, delivered_at";
        static ALL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new(format!("SELECT {COLUMNS} FROM webhook_deliveries ORDER BY id DESC LIMIT $1")));
        static OF: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "SELECT {COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $2 ORDER BY id DESC LIMIT $1"
            ))
        });
        let limit = Param::from(i64::from(limit));
        match endpoint_id {
            Some(id) => self.scan(&OF, vec![limit, id.into()], delivery_from_row).await,
            None => self.scan(&ALL, vec![limit], delivery_from_row).await,
        }
    }

    async fn redeliver(&self, id: i64, now: Millis) -> Result<bool> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $2, retry_from = $2, \
                 locked_until = 0, delivered_at = NULL WHERE id = $1",
            )
        });
        Ok(self.execute(&SQL, vec![id.into(), now.into()]).await? == 1)
    }
}
