//! Writing, one writer at a time on SQLite. SQLite lets one connection write at a time; a
//! second writer would sleep in the busy handler (1, 2, 5, 10 … ms) and retry. So every
//! write on a SQLite file first takes the *lane*: an async lock around the one rusqlite
//! connection that writes inline, on the calling thread, instead of handing each statement
//! to a sqlx worker thread and back (two thread wake-ups each).
//! - The short writes of a sign-in (ceremony put and take, the counter update, the new
//!   session) commit together: each joins a queue, and whoever holds the lane runs
//!   everything queued in one transaction and answers each caller after its commit (*group
//!   commit*). A commit writes every page it touched, whole, into the log, so sign-ins that
//!   share one write the ceremony table's few pages once instead of once each.
//! - The journal's event groups run on the same connection (`begin_batch`), so they neither
//!   pay sqlx's thread hand-offs nor empty this connection's page cache with commits from
//!   another connection.
//! - Rarer writes (registrations, rollups, purges) go through sqlx's one-connection write
//!   pool, holding the lane while they do, so the two connections never meet at the file
//!   lock.
//!
//! On PostgreSQL there is no lane: the short writes run on connections held out of the
//! pool (`held.rs`), the rest go to the pool, as reads do.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use handoff_core::DomainError;
use handoff_core::error::Result;
use rusqlite::Connection;
use sqlx::AnyConnection;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::cells::Cells;
use crate::db::storage_error;
use crate::held::HeldConnections;
use crate::inline::{Param, Statement, inline_error};

/// The write side of a [`crate::Database`].
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    pool: AnyPool,
    lane: Option<Arc<Lane>>,
    /// On PostgreSQL, where the short writes run (`held.rs`).
    held: Option<Arc<HeldConnections>>,
}

/// What a queued write does once its transaction ended: answer its caller, with its own
/// result if the transaction committed (`None`), or with the commit's error.
type Settle = Box<dyn FnOnce(Option<&str>) + Send>;
/// A queued short write: runs its statement on the lane's connection.
type QueuedWrite = Box<dyn FnOnce(&Connection) -> Settle + Send>;

/// The SQLite lane: the inline connection, and the short writes waiting to run on it.
struct Lane {
    conn: Arc<Mutex<Connection>>,
    queue: std::sync::Mutex<Vec<QueuedWrite>>,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").finish_non_exhaustive()
    }
}

impl Lane {
    /// Queues `work` and waits until it has run and its transaction ended: run by this
    /// caller, when it gets the lane first, or by whoever holds the lane before.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let (answer, mut answered) = oneshot::channel::<Result<T>>();
        let queued: QueuedWrite = Box::new(move |conn| {
            let outcome = work(conn);
            Box::new(move |failed: Option<&str>| {
                let _ = answer.send(match failed {
                    None => outcome,
                    Some(e) => Err(DomainError::Storage(e.to_owned())),
                });
            })
        });
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(queued);
        let stopped = || DomainError::Storage("the SQLite writer stopped before answering".into());
        tokio::select! {
            biased;
            // Someone holding the lane ran it.
            outcome = &mut answered => outcome.map_err(|_| stopped())?,
            conn = self.conn.lock() => {
                self.run_queued(&conn);
                drop(conn);
                answered.await.map_err(|_| stopped())?
            }
        }
    }

    /// Runs every queued write: alone in autocommit mode, or several in one transaction.
    /// Inside it a failing statement undoes only itself (SQLite's statement rollback), so
    /// one caller's constraint error is its own; a failed commit fails them all.
    fn run_queued(&self, conn: &Connection) {
        let mut queued = std::mem::take(&mut *self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if queued.len() <= 1 || conn.execute_batch("BEGIN IMMEDIATE").is_err() {
            // One write (or no transaction to be had): each commits on its own.
            for write in queued {
                write(conn)(None);
            }
            return;
        }
        let mut ran = Vec::with_capacity(queued.len());
        let mut rest = queued.drain(..);
        for write in rest.by_ref() {
            ran.push(write(conn));
            if conn.is_autocommit() {
                // An I/O or memory error rolled the whole transaction back: what ran is
                // undone; what has not run yet commits on its own.
                let failed = "a write failed and rolled back its group's transaction; try again";
                ran.into_iter().for_each(|settle| settle(Some(failed)));
                rest.for_each(|write| write(conn)(None));
                return;
            }
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => ran.into_iter().for_each(|settle| settle(None)),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                let failed = format!("could not commit: {e}");
                ran.into_iter().for_each(|settle| settle(Some(&failed)));
            }
        }
    }
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
    /// has exactly one connection anyway); short writes through `held` if given.
    pub(crate) fn pooled(pool: AnyPool, held: Option<Arc<HeldConnections>>) -> Self {
        Self { pool, lane: None, held }
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
        // The short writes, and the journal's statements in their ladder of sizes.
        conn.set_prepared_statement_cache_capacity(160);
        let lane = Lane { conn: Arc::new(Mutex::new(conn)), queue: std::sync::Mutex::default() };
        Ok(Self { pool, lane: Some(Arc::new(lane)), held: None })
    }

    /// Waits for the lane (on SQLite); the guard keeps every other writer out.
    pub(crate) async fn hold_lane(&self) -> Option<OwnedMutexGuard<Connection>> {
        match &self.lane {
            Some(lane) => Some(lane.conn.clone().lock_owned().await),
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

    /// A transaction for statements built at run time (the journal's multi-row inserts): on
    /// SQLite on the lane's own connection, inline, so the journal neither hands each
    /// statement to a sqlx thread nor empties the lane connection's page cache with commits
    /// from a second connection; elsewhere a sqlx transaction.
    pub(crate) async fn begin_batch(&self) -> Result<BatchTx> {
        match &self.lane {
            Some(lane) => {
                let conn = lane.conn.clone().lock_owned().await;
                conn.execute_batch("BEGIN IMMEDIATE").map_err(inline_error)?;
                Ok(BatchTx::Inline(InlineTx { conn, open: true }))
            }
            None => Ok(BatchTx::Pooled(self.begin().await?)),
        }
    }

    /// Runs one short writing statement and returns how many rows it changed: on SQLite
    /// inline, committed with whatever else is queued; through the pool on PostgreSQL.
    pub(crate) async fn execute(&self, stmt: &'static Statement, params: impl Into<Vec<Param>>) -> Result<u64> {
        let params = params.into();
        if let Some(lane) = &self.lane {
            return lane
                .run(move |conn| {
                    let changed = conn
                        .prepare_cached(&stmt.inline)
                        .and_then(|mut s| s.execute(rusqlite::params_from_iter(&params)))
                        .map_err(inline_error)?;
                    Ok(changed as u64)
                })
                .await;
        }
        if let Some(held) = &self.held {
            return held.execute(stmt, &params).await;
        }
        let done = stmt.query(&params).execute(&self.pool).await.map_err(storage_error)?;
        Ok(done.rows_affected())
    }

    /// Runs one short writing statement that returns at most one row (`… RETURNING`), and
    /// decodes that row.
    pub(crate) async fn fetch_optional<T: Send + 'static>(
        &self,
        stmt: &'static Statement,
        params: impl Into<Vec<Param>>,
        decode: impl Fn(&dyn Cells) -> Result<T> + Send + 'static,
    ) -> Result<Option<T>> {
        let params = params.into();
        match (&self.lane, &self.held) {
            (Some(lane), _) => lane.run(move |conn| stmt.first_row_inline(conn, &params, decode)).await,
            (None, Some(held)) => held.fetch_optional(stmt, &params, decode).await,
            (None, None) => stmt.first_row(&self.pool, &params, decode).await,
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

/// Statement text for either driver: a [`Statement`] has one of each; a text built at run
/// time for one backend (`?` or `$n` placeholders) serves as both.
pub(crate) trait SqlText {
    /// The text for sqlx.
    fn for_sqlx(&self) -> &str;
    /// The text for rusqlite.
    fn for_inline(&self) -> &str;
}

impl SqlText for Statement {
    fn for_sqlx(&self) -> &str {
        &self.sqlx
    }
    fn for_inline(&self) -> &str {
        &self.inline
    }
}

impl SqlText for str {
    fn for_sqlx(&self) -> &str {
        self
    }
    fn for_inline(&self) -> &str {
        self
    }
}

/// A transaction on the lane's connection; rolled back if dropped before `commit`.
pub(crate) struct InlineTx {
    conn: OwnedMutexGuard<Connection>,
    open: bool,
}

impl Drop for InlineTx {
    fn drop(&mut self) {
        if self.open
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %e, "could not roll back an unfinished SQLite transaction");
        }
    }
}

/// A write transaction from [`Writer::begin_batch`].
pub(crate) enum BatchTx {
    /// On SQLite: the lane's connection, inline.
    Inline(InlineTx),
    /// On PostgreSQL (or an in-memory SQLite database): a sqlx transaction.
    Pooled(WriteTx),
}

impl BatchTx {
    /// Runs a statement; returns how many rows it changed.
    pub(crate) async fn execute(&mut self, sql: &(impl SqlText + ?Sized), params: &[Param]) -> Result<u64> {
        match self {
            Self::Inline(tx) => {
                let mut stmt = tx.conn.prepare_cached(sql.for_inline()).map_err(inline_error)?;
                Ok(stmt.execute(rusqlite::params_from_iter(params)).map_err(inline_error)? as u64)
            }
            Self::Pooled(tx) => {
                let done = Param::bind_all(sqlx::query(sql.for_sqlx()), params)
                    .execute(&mut **tx)
                    .await
                    .map_err(storage_error)?;
                Ok(done.rows_affected())
            }
        }
    }

    /// Runs a statement and decodes every row it returns.
    pub(crate) async fn fetch_all<T>(
        &mut self,
        sql: &(impl SqlText + ?Sized),
        params: &[Param],
        decode: impl Fn(&dyn Cells) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self {
            Self::Inline(tx) => {
                let mut stmt = tx.conn.prepare_cached(sql.for_inline()).map_err(inline_error)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(inline_error)?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(inline_error)? {
                    out.push(decode(row)?);
                }
                Ok(out)
            }
            Self::Pooled(tx) => {
                let rows = Param::bind_all(sqlx::query(sql.for_sqlx()), params)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(storage_error)?;
                rows.iter().map(|row| decode(row)).collect()
            }
        }
    }

    /// Commits, then lets the next writer in.
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Self::Inline(mut tx) => {
                tx.open = false;
                if let Err(e) = tx.conn.execute_batch("COMMIT") {
                    let _ = tx.conn.execute_batch("ROLLBACK");
                    return Err(inline_error(e));
                }
                Ok(())
            }
            Self::Pooled(tx) => tx.commit().await,
        }
    }
}
