//! Connections kept out of the PostgreSQL pool for the short statements of a sign-in. sqlx
//! tests a pooled connection with a round trip when it is handed out and again when it
//! comes back, so one statement through the pool costs three round trips to the server,
//! and the two extra ones wake both processes on a two-core machine for nothing. The short
//! statements (the point reads, the ceremony put and take, the counter update, the new
//! session) instead borrow one of a few connections held here for the life of the process.
//! A connection goes back into its slot after a statement that completed, or that the
//! server refused (a constraint, say: the connection is fine). After any other error, or
//! when the caller gave up midway (a dropped request future), it goes back to the pool
//! instead, which tests it and closes it if broken; the slot fills again from the pool on
//! its next use. A connection that sat unused for a while is tested before its next
//! statement, as the pool would, so one the server or the network dropped in a quiet hour
//! fails no request. Transactions and everything else keep using the pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use handoff_core::error::Result;
use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection};
use tokio::sync::{Mutex, MutexGuard};

use crate::cells::Cells;
use crate::db::storage_error;
use crate::inline::{Param, Statement};

/// How long a held connection may sit unused before it is tested again.
pub(crate) const RETEST_AFTER: Duration = Duration::from_secs(5);

/// A held connection and when it last finished a statement.
type Slot = Option<(PoolConnection<Any>, Instant)>;

/// A few connections borrowed from `pool` for good, one statement at a time each.
#[derive(Debug)]
pub(crate) struct HeldConnections {
    pool: AnyPool,
    slots: Vec<Mutex<Slot>>,
    next: AtomicUsize,
}

impl HeldConnections {
    /// Up to `count` connections, taken from `pool` as they are first needed.
    pub(crate) fn new(pool: AnyPool, count: usize) -> Self {
        Self { pool, slots: (0..count.max(1)).map(|_| Mutex::new(None)).collect(), next: AtomicUsize::new(0) }
    }

    /// A free slot if there is one, else the next one in turn, once it is free.
    async fn slot(&self) -> MutexGuard<'_, Slot> {
        let count = self.slots.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % count;
        for i in 0..count {
            if let Ok(slot) = self.slots[(first + i) % count].try_lock() {
                return slot;
            }
        }
        self.slots[first].lock().await
    }

    /// Runs `work` on a held connection and puts the connection back when it is known to be
    /// clean: `work` completed, or the server answered with an error of its own.
    async fn with<T>(&self, work: impl AsyncFnOnce(&mut AnyConnection) -> sqlx::Result<T>) -> Result<T> {
        let mut slot = self.slot().await;
        let held = match slot.take() {
            Some((mut conn, last)) if last.elapsed() > RETEST_AFTER => conn.ping().await.ok().map(|()| conn),
            Some((conn, _)) => Some(conn),
            None => None,
        };
        let mut conn = match held {
            Some(conn) => conn,
            None => self.pool.acquire().await.map_err(storage_error)?,
        };
        // If this future is dropped here, `conn` goes back to the pool (which drains and
        // tests it) and the slot stays empty.
        let result = work(&mut *conn).await;
        if matches!(result, Ok(_) | Err(sqlx::Error::Database(_))) {
            *slot = Some((conn, Instant::now()));
        }
        result.map_err(storage_error)
    }

    /// Runs a statement that changes rows; returns how many it changed.
    pub(crate) async fn execute(&self, stmt: &Statement, params: &[Param]) -> Result<u64> {
        let done = self.with(async |conn| stmt.query(params).execute(conn).await).await?;
        Ok(done.rows_affected())
    }

    /// Runs a statement and decodes its first row, if any.
    pub(crate) async fn fetch_optional<T>(
        &self,
        stmt: &Statement,
        params: &[Param],
        decode: impl Fn(&dyn Cells) -> Result<T>,
    ) -> Result<Option<T>> {
        let row: Option<AnyRow> = self.with(async |conn| stmt.query(params).fetch_optional(conn).await).await?;
        row.as_ref().map(|row| decode(row)).transpose()
    }

    /// Runs a statement and decodes every row.
    pub(crate) async fn fetch_all<T>(
        &self,
        stmt: &Statement,
        params: &[Param],
        decode: impl Fn(&dyn Cells) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows: Vec<AnyRow> = self.with(async |conn| stmt.query(params).fetch_all(conn).await).await?;
        rows.iter().map(|row| decode(row)).collect()
    }

    /// Gives every held connection back to the pool (before the pool closes).
    pub(crate) async fn release(&self) {
        for slot in &self.slots {
            slot.lock().await.take();
        }
    }
}
