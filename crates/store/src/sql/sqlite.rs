//! SQLite through rusqlite, and nothing else. Three kinds of connection to one file (WAL
//! mode), each opened and configured by [`open`], the one place that sets PRAGMAs:
//! - **Readers** answer the short reads by key inline, on the calling async thread. sqlx
//!   handed every statement to a connection thread and the rows back (two thread wake-ups
//!   per statement, half the server's CPU in the scheduler in the sign-in profile); a WAL
//!   reader never waits for the writer, so a lookup of tens of microseconds runs like any
//!   other short computation. See `docs/decisions/0004-one-executor.md`.
//! - **Scanners** run the long reads (funnels, searches) on tokio's blocking pool, so an
//!   async thread never waits behind one; they also run the passive WAL checkpoints.
//! - **The write lane**: the one connection that writes. SQLite lets one connection write at
//!   a time, so every write takes the lane (an async lock) instead of sleeping in SQLite's
//!   busy handler. Short writes queue and whoever holds the lane runs everything queued in
//!   one transaction, answering each caller after the shared commit (*group commit*: a
//!   commit writes each page it touched whole into the log, so sign-ins that share one write
//!   the ceremony table's pages once). Transactions ([`LaneTx`]) and migrations run on it too.

use std::sync::Arc;
use std::sync::Mutex as SyncMutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use handoff_core::DomainError;
use handoff_core::error::Result;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::{Failure, Param, Row, Violation};

/// Connections for short reads (inline).
const READERS: usize = 4;
/// Connections for long reads (blocking pool).
const SCANNERS: usize = 2;

/// What a connection is for; decides how [`open`] configures it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Writer,
    Reader,
    Scanner,
}

/// Opens `path` for `role`. Settings, once for all:
/// - WAL (set by the writer; it stays with the file) lets readers run beside the writer.
/// - `synchronous = NORMAL` syncs at checkpoints: every commit survives a process crash (not
///   a power cut) at a fraction of the fsync cost.
/// - Automatic checkpoints are off on every connection: the server runs them beside the
///   writers ([`Sqlite::checkpoint`]), not inside the commit that crosses the threshold. The
///   log is trimmed only past 256 MiB, where a restart checkpoint runs (trimming at 64 MiB
///   meant truncating and re-growing it after almost every checkpoint: -15 % CPU per
///   sign-in once that stopped).
/// - The writer waits at most 1 s for another *process* writing the same file (this
///   process's writers wait on the lane); a reader 250 ms, on an async thread, for the rare
///   moments a WAL reader waits at all (log recovery, a restart checkpoint); a scanner 5 s.
/// - Page caches: the writer 8 MiB, scanners 32 MiB (event indexes are read at random),
///   readers 4 MiB (every commit elsewhere empties it anyway).
fn open(path: &str, role: Role) -> rusqlite::Result<Connection> {
    let flags = match role {
        Role::Reader => OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        Role::Writer | Role::Scanner => {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        }
    };
    let conn = Connection::open_with_flags(path, flags)?;
    let (busy_ms, cache_kib, statements) = match role {
        Role::Writer => (1_000, 8_192, 160),
        Role::Reader => (250, 4_096, 32),
        Role::Scanner => (5_000, 32_768, 32),
    };
    if role == Role::Writer {
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA journal_size_limit = 268435456;")?;
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA busy_timeout = {busy_ms}; PRAGMA cache_size = -{cache_kib};"
    ))?;
    // The writer caches the short writes and the journal's statements in their ladder of
    // sizes.
    conn.set_prepared_statement_cache_capacity(statements);
    Ok(conn)
}

/// The file behind a `sqlite:` URL. An in-memory database is refused: each connection
/// would get its own.
pub(crate) fn path_of(url: &str) -> std::result::Result<String, String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).ok_or("not a sqlite: URL")?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
        return Err("an in-memory SQLite database is not supported (each connection would see its own); \
                    use a file, e.g. sqlite://data/handoff.db"
            .into());
    }
    Ok(path.to_owned())
}

/// A rusqlite error in the shared terms.
pub(crate) fn failure(e: rusqlite::Error) -> Failure {
    let violation = match e.sqlite_error() {
        Some(err) if err.code == ErrorCode::ConstraintViolation => match err.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                Some(Violation::Unique)
            }
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(Violation::ForeignKey),
            _ => None,
        },
        _ => None,
    };
    let message = e.to_string();
    // "UNIQUE constraint failed: users.identifier"
    let table = violation
        .and_then(|_| message.rsplit_once(": "))
        .and_then(|(_, cols)| cols.split('.').next())
        .map(str::to_owned);
    Failure { violation, table, message }
}

fn domain(e: rusqlite::Error) -> DomainError {
    failure(e).into_domain()
}

impl Row for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String> {
        self.get(i).map_err(domain)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.get(i).map_err(domain)
    }
    fn int(&self, i: usize) -> Result<i64> {
        self.get(i).map_err(domain)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.get(i).map_err(domain)
    }
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Self::Int(v) => v.to_sql(),
            Self::Text(v) => v.to_sql(),
        }
    }
}

/// Runs a statement on `conn`; returns how many rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &str, params: &[Param]) -> Result<u64> {
    let mut stmt = conn.prepare_cached(sql).map_err(domain)?;
    Ok(stmt.execute(rusqlite::params_from_iter(params)).map_err(domain)? as u64)
}

/// Runs a statement on `conn` and decodes every row.
pub(crate) fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: &[Param],
    decode: &dyn Fn(&dyn Row) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(domain)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(domain)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(domain)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Runs a statement on `conn` and decodes its first row, if any.
pub(crate) fn first<T>(
    conn: &Connection,
    sql: &str,
    params: &[Param],
    decode: &dyn Fn(&dyn Row) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(domain)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(domain)?;
    rows.next().map_err(domain)?.map(|row| decode(row)).transpose()
}

/// A few connections, each used by one caller at a time.
struct Connections {
    connections: Vec<SyncMutex<Connection>>,
    next: AtomicUsize,
}

impl Connections {
    fn open(path: &str, role: Role, count: usize) -> rusqlite::Result<Self> {
        let connections =
            (0..count).map(|_| open(path, role).map(SyncMutex::new)).collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Self { connections, next: AtomicUsize::new(0) })
    }

    /// Runs `work` on a free connection (or waits for the next one in turn).
    fn with<T>(&self, work: impl FnOnce(&Connection) -> T) -> T {
        let n = self.connections.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let lock = |i: usize| self.connections[i % n].try_lock().ok();
        let conn = match (start..start + n).find_map(lock) {
            Some(conn) => conn,
            None => self.connections[start].lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        };
        work(&conn)
    }
}

/// A SQLite file: readers, scanners and the write lane.
pub(crate) struct Sqlite {
    readers: Connections,
    scanners: Arc<Connections>,
    pub(crate) lane: Lane,
}

impl Sqlite {
    /// Opens (creating it if needed) the file at `path`: the writer first, which creates it
    /// and switches it to WAL, then the others.
    pub(crate) fn open(path: &str) -> rusqlite::Result<Self> {
        if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let writer = open(path, Role::Writer)?;
        Ok(Self {
            readers: Connections::open(path, Role::Reader, READERS)?,
            scanners: Arc::new(Connections::open(path, Role::Scanner, SCANNERS)?),
            lane: Lane { conn: Arc::new(Mutex::new(writer)), queue: SyncMutex::default() },
        })
    }

    /// Runs a short read inline on a reader.
    pub(crate) fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.readers.with(read)
    }

    /// Runs a long read on a scanner, on the blocking pool.
    pub(crate) async fn scan<T: Send + 'static>(
        &self,
        sql: Arc<str>,
        params: Vec<Param>,
        decode: impl Fn(&dyn Row) -> Result<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        let scanners = self.scanners.clone();
        tokio::task::spawn_blocking(move || scanners.with(|conn| rows(conn, &sql, &params, &decode)))
            .await
            .map_err(|e| DomainError::Storage(format!("a SQLite scan stopped: {e}")))?
    }

    /// Copies committed WAL pages into the file, beside the writers, on the blocking pool:
    /// a passive checkpoint on a scanner never blocks anyone, but under steady writes it
    /// never reaches the end of the log, so once the log holds more than 256 MiB a restart
    /// checkpoint finishes the copy, holding the lane (writers wait for that moment) and
    /// the next commit starts the log afresh. Returns the log's size in pages before.
    pub(crate) async fn checkpoint(&self) -> Result<i64> {
        const CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";
        let scanners = self.scanners.clone();
        let run = move |sql: &'static str| {
            let scanners = scanners.clone();
            tokio::task::spawn_blocking(move || {
                scanners.with(|conn| conn.query_row(sql, [], |row| row.get::<_, i64>(1)).map_err(domain))
            })
        };
        let stopped = |e: tokio::task::JoinError| DomainError::Storage(format!("a SQLite checkpoint stopped: {e}"));
        let log = run(CHECKPOINT).await.map_err(stopped)??;
        if log > 65_536 {
            let _lane = self.lane.conn.lock().await;
            run("PRAGMA wal_checkpoint(RESTART)").await.map_err(stopped)??;
        }
        Ok(log)
    }
}

/// What a queued write does once its transaction ended: answer its caller, with its own
/// result if the transaction committed (`None`), or with the commit's error.
type Settle = Box<dyn FnOnce(Option<&str>) + Send>;
/// A queued short write: runs its statement on the lane's connection.
type QueuedWrite = Box<dyn FnOnce(&Connection) -> Settle + Send>;

/// The write lane: the one connection that writes, and the short writes waiting for it.
pub(crate) struct Lane {
    conn: Arc<Mutex<Connection>>,
    queue: SyncMutex<Vec<QueuedWrite>>,
}

impl Lane {
    /// A short write; returns how many rows it changed.
    pub(crate) async fn execute(&self, sql: Arc<str>, params: Vec<Param>) -> Result<u64> {
        self.run(move |conn| execute(conn, &sql, &params)).await
    }

    /// A short write that returns rows.
    pub(crate) async fn returning<T: Send + 'static>(
        &self,
        sql: Arc<str>,
        params: Vec<Param>,
        decode: impl Fn(&dyn Row) -> Result<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        self.run(move |conn| rows(conn, &sql, &params, &decode)).await
    }

    /// A short write and, when it changed something, the outbox statement `outbox`, in one
    /// job inside a `SAVEPOINT`: both commit (with the rest of the group) or neither does.
    /// `write` returns its result and whether it changed a row.
    pub(crate) async fn reported<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<(T, bool)> + Send + 'static,
        outbox: (Arc<str>, Vec<Param>),
    ) -> Result<T> {
        self.run(move |conn| {
            // Outside a group transaction the savepoint is the transaction, and its
            // release the commit.
            let outer = conn.is_autocommit();
            // Prepared once (a sign-in that reports runs both): `execute_batch` parses anew.
            execute(conn, "SAVEPOINT report", &[])?;
            let done = write(conn).and_then(|(value, changed)| {
                if changed {
                    execute(conn, &outbox.0, &outbox.1)?;
                }
                Ok(value)
            });
            let done = done.and_then(|value| execute(conn, "RELEASE report", &[]).map(|_| value));
            if done.is_err() {
                let undo = if outer { "ROLLBACK" } else { "ROLLBACK TO report; RELEASE report" };
                if let Err(e) = conn.execute_batch(undo) {
                    tracing::error!(error = %e, "could not undo a reported write");
                }
            }
            done
        })
        .await
    }

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

    /// A transaction on the lane's connection, holding the lane until it ends.
    pub(crate) async fn begin(&self) -> Result<LaneTx> {
        let conn = self.conn.clone().lock_owned().await;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(domain)?;
        Ok(LaneTx { conn, open: true })
    }
}

/// A transaction on the lane's connection; rolled back if dropped before `commit`.
pub(crate) struct LaneTx {
    conn: OwnedMutexGuard<Connection>,
    open: bool,
}

impl LaneTx {
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Commits, then lets the next writer in.
    pub(crate) fn commit(mut self) -> Result<()> {
        self.open = false;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(domain(e));
        }
        Ok(())
    }
}

impl Drop for LaneTx {
    fn drop(&mut self) {
        if self.open
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %e, "could not roll back an unfinished SQLite transaction");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_found_and_memory_refused() {
        assert_eq!(path_of("sqlite:///tmp/h.db?mode=rwc").as_deref(), Ok("/tmp/h.db"));
        assert_eq!(path_of("sqlite://data/h.db").as_deref(), Ok("data/h.db"));
        assert!(path_of("sqlite::memory:").unwrap_err().contains("in-memory"));
        assert!(path_of("sqlite://h.db?mode=memory").is_err());
    }
}
