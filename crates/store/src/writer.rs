//! Writing, one writer at a time on SQLite. SQLite lets one connection write at a time; a
//! second writer would sleep in the busy handler (1, 2, 5, 10 … ms) and retry. So every
//! write on a SQLite file first takes the *lane*: an async lock around the one rusqlite
//! connection that writes inline. The short writes of a sign-in (ceremony put and take,
//! the counter update, the new session) run on that connection on the calling thread, in
//! tens of microseconds, instead of being handed to a sqlx worker thread and back (two
//! thread wake-ups each, the largest cost in the sign-in profile). Longer writes (event
//! batches, rollups, registrations) still go through sqlx's one-connection write pool, but
//! hold the lane while they do, so the two connections never meet at the file lock. On
//! PostgreSQL there is no lane: writes go to the pool, as reads do.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use handoff_core::error::Result;
use rusqlite::Connection;
use sqlx::AnyConnection;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::cells::Cells;
use crate::db::storage_error;
use crate::inline::{Param, Statement, inline_error};

/// The write side of a [`crate::Database`].
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    pool: AnyPool,
    lane: Option<Arc<Mutex<Connection>>>,
}

/// A pooled connection for writing, holding the lane while it lives.
pub(crate) struct WriteConn {
    conn: PoolConnection<Any>,
    _lane: Option<OwnedMutexGuard<Connection>>,
}

/// A write transaction, holding the lane until it commits or is dropped (rolled back).
pub(crate) struct WriteTx {
    tx: Transaction<'static, Any>,
    _lane: Option<OwnedMutexGuard<Connection>>,
}

impl Writer {
    /// Writes go to `pool`, with no lane (PostgreSQL, or an in-memory SQLite database that
    /// has exactly one connection anyway).
    pub(crate) fn pooled(pool: AnyPool) -> Self {
        Self { pool, lane: None }
    }

    /// Writes to the SQLite file at `path` go through a lane around one inline connection
    /// (opened here, after the migrations ran) and `pool` (of one connection).
    pub(crate) fn sqlite(pool: AnyPool, path: &str) -> std::result::Result<Self, rusqlite::Error> {
        let conn = Connection::open(path)?;
        // The same settings as the sqlx connections (see `Database::connect`): these are
        // per connection. The lane keeps this process's other writers (and its restarting
        // checkpoints) away, so the busy handler waits only for another process writing
        // the same file, and then at most a second, on the calling thread.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 1000; PRAGMA foreign_keys = ON; \
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 0; \
             PRAGMA journal_size_limit = 268435456;",
        )?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Self { pool, lane: Some(Arc::new(Mutex::new(conn))) })
    }

    /// Waits for the lane (on SQLite); the guard keeps every other writer out.
    pub(crate) async fn hold_lane(&self) -> Option<OwnedMutexGuard<Connection>> {
        match &self.lane {
            Some(lane) => Some(lane.clone().lock_owned().await),
            None => None,
        }
    }

    /// A connection to write through with sqlx.
    pub(crate) async fn conn(&self) -> Result<WriteConn> {
        let lane = self.hold_lane().await;
        let conn = self.pool.acquire().await.map_err(storage_error)?;
        Ok(WriteConn { conn, _lane: lane })
    }

    /// A transaction to write through with sqlx.
    pub(crate) async fn begin(&self) -> Result<WriteTx> {
        let lane = self.hold_lane().await;
        let tx = self.pool.begin().await.map_err(storage_error)?;
        Ok(WriteTx { tx, _lane: lane })
    }

    /// Runs one short writing statement and returns how many rows it changed: inline on
    /// SQLite, through the pool on PostgreSQL.
    pub(crate) async fn execute(&self, stmt: &Statement, params: &[Param]) -> Result<u64> {
        if let Some(lane) = &self.lane {
            let conn = lane.lock().await;
            let changed = conn
                .prepare_cached(&stmt.inline)
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(params)))
                .map_err(inline_error)?;
            return Ok(changed as u64);
        }
        let done = Param::bind_all(sqlx::query(&stmt.sqlx), params).execute(&self.pool).await.map_err(storage_error)?;
        Ok(done.rows_affected())
    }

    /// Runs one short writing statement that returns at most one row (`… RETURNING`), and
    /// decodes that row.
    pub(crate) async fn fetch_optional<T>(
        &self,
        stmt: &Statement,
        params: &[Param],
        decode: impl Fn(&dyn Cells) -> Result<T>,
    ) -> Result<Option<T>> {
        match &self.lane {
            Some(lane) => stmt.first_row_inline(&*lane.lock().await, params, decode),
            None => stmt.first_row(&self.pool, params, decode).await,
        }
    }

    /// Closes the pool, waiting for connections to return.
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

impl Deref for WriteConn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl WriteTx {
    /// Commits, then lets the next writer in.
    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await.map_err(storage_error)
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}
