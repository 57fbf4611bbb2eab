//! Connecting, configuring and migrating a database, and mapping sqlx errors into domain
//! errors once.

use std::sync::Arc;
use std::time::Duration;

use handoff_core::DomainError;
use handoff_core::storage::Storage;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use crate::cells::Cells;
use crate::held::HeldConnections;
use crate::inline::{InlineReaders, Param, Statement, sqlite_path};
use crate::writer::Writer;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// Connecting failed.
    #[error("cannot connect to {backend:?} database: {source}")]
    Connect {
        /// Which backend.
        backend: Backend,
        /// Why.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The SQLite file could not be opened for inline reads and writes.
    #[error("cannot open the SQLite file {path}: {reason}")]
    Inline {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Connection pools plus the backend they talk to. Implements every storage trait.
///
/// Reads go to `pool`; statements that write go to `writer`. On PostgreSQL both are the
/// same pool. On SQLite, which lets one connection write at a time, writers take turns
/// (woken in order the moment the previous one is done) instead of contending for the
/// file lock, and short writes run inline (`writer.rs`). Readers never wait for writers
/// (WAL). On PostgreSQL the short statements run on connections held out of the pool
/// (`held.rs`).
#[derive(Clone, Debug)]
pub struct Database {
    pub(crate) pool: AnyPool,
    pub(crate) writer: Writer,
    /// On a SQLite file: read-only connections for point reads run inline (`inline.rs`).
    pub(crate) inline: Option<Arc<InlineReaders>>,
    /// On PostgreSQL: connections held out of the pool for short statements (`held.rs`).
    pub(crate) held: Option<Arc<HeldConnections>>,
    backend: Backend,
}

/// Reading connections on SQLite (the writer is one more).
const SQLITE_READERS: u32 = 4;
/// Connections to PostgreSQL, in all.
const POSTGRES_CONNECTIONS: u32 = 16;
/// Of those, how many are held out of the pool for the short statements (`held.rs`); the
/// rest serve transactions, scans and the operator's queries.
const POSTGRES_HELD: usize = 8;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Database {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let options = |max: u32| {
            AnyPoolOptions::new().max_connections(max).acquire_timeout(Duration::from_secs(10)).after_connect(
                move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL lets readers run beside the one writer; NORMAL syncs at
                            // checkpoints, which keeps every commit durable across a process
                            // crash (not a power cut) at a fraction of the fsync cost. Statement
                            // journals (multi-row upserts) stay in memory, and each connection
                            // caches up to 32 MiB of pages (event indexes are written at random).
                            // Checkpoints run beside the writers (`checkpoint`), not inside the
                            // commit that happens to cross the threshold. The log file is
                            // trimmed only past 256 MiB, the size at which a restart checkpoint
                            // runs: trimming it at 64 MiB meant truncating and re-growing the
                            // file after almost every checkpoint under load (-15 % CPU per
                            // sign-in once that stopped).
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
                             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768; \
                             PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 268435456;",
                            )
                            .await?;
                        }
                        Ok(())
                    })
                },
            )
        };
        let connect = |max: u32| {
            let url = url.clone();
            async move { options(max).connect(&url).await.map_err(|source| StoreError::Connect { backend, source }) }
        };
        let mut inline = None;
        let mut held = None;
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                // The writer first: it creates the file and runs the migrations.
                let writer = connect(1).await?;
                SQLITE_MIGRATIONS.run(&writer).await?;
                let writer = match sqlite_path(&url) {
                    Some(path) => {
                        let failed =
                            |e: rusqlite::Error| StoreError::Inline { path: path.clone(), reason: e.to_string() };
                        let readers = InlineReaders::open(&path, SQLITE_READERS as usize).map_err(failed)?;
                        inline = Some(Arc::new(readers));
                        Writer::sqlite(writer, &path).map_err(failed)?
                    }
                    None => Writer::pooled(writer, None),
                };
                (connect(SQLITE_READERS).await?, writer)
            }
            Backend::Postgres => {
                let pool = connect(POSTGRES_CONNECTIONS).await?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                let short = Arc::new(HeldConnections::new(pool.clone(), POSTGRES_HELD));
                held = Some(short.clone());
                (pool.clone(), Writer::pooled(pool, Some(short)))
            }
        };
        Ok(Self { pool, writer, inline, held, backend })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for health checks and tests.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The storage traits, all backed by this database.
    pub fn storage(&self) -> Storage {
        let this = Arc::new(self.clone());
        Storage {
            accounts: this.clone(),
            ceremonies: this.clone(),
            sessions: this.clone(),
            security: this.clone(),
            attempts: this.clone(),
            journeys: this.clone(),
            secrets: this.clone(),
            append_offers: this.clone(),
            qr: this.clone(),
            rate_counters: this.clone(),
            retention: this,
        }
    }

    /// Copies committed WAL pages into the SQLite file, beside the writers: automatic
    /// checkpoints are off so that no request pays for one inside its commit, and the
    /// server calls this every second instead. A passive checkpoint never blocks
    /// anyone, but under steady writes it never reaches the end of the log, so the log
    /// would only grow; once it holds more than 256 MiB, a restart checkpoint finishes the
    /// copy (writers wait for that moment) and the next commit starts the log afresh
    /// (`journal_size_limit` trims the file only when it grew past that size). Returns the
    /// log's size in pages before this call. A no-op on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<i64, DomainError> {
        if self.backend != Backend::Sqlite {
            return Ok(0);
        }
        let pages =
            |row: &sqlx::any::AnyRow| -> Result<i64, DomainError> { sqlx::Row::try_get(row, 1).map_err(storage_error) };
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&self.pool).await.map_err(storage_error)?;
        let log = pages(&row)?;
        if log > 65_536 {
            // A restart waits for the writer to finish; holding the lane, none is writing.
            let _lane = self.writer.hold_lane().await;
            sqlx::query("PRAGMA wal_checkpoint(RESTART)").fetch_one(&self.pool).await.map_err(storage_error)?;
        }
        Ok(log)
    }

    /// Runs a point read that returns at most one row, and decodes that row: inline on a
    /// SQLite file (`inline.rs`), through the read pool otherwise.
    pub(crate) async fn read_optional<T>(
        &self,
        stmt: &Statement,
        params: &[Param],
        decode: impl Fn(&dyn Cells) -> Result<T, DomainError>,
    ) -> Result<Option<T>, DomainError> {
        if let Some(inline) = &self.inline {
            return inline.read(|conn| Ok(stmt.first_row_inline(conn, params, decode)))?;
        }
        match &self.held {
            Some(held) => held.fetch_optional(stmt, params, decode).await,
            None => stmt.first_row(&self.pool, params, decode).await,
        }
    }

    /// Closes the pools, waiting for connections to return.
    pub async fn close(&self) {
        if let Some(held) = &self.held {
            held.release().await;
        }
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// Maps a sqlx error to a domain storage error (logged by the caller's error path).
pub(crate) fn storage_error(err: sqlx::Error) -> DomainError {
    DomainError::Storage(err.to_string())
}

/// True when the error is a unique-constraint violation whose message mentions `column`.
pub(crate) fn is_unique_violation_on(err: &sqlx::Error, column: &str) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                && (db.message().contains(column) || db.constraint().is_some_and(|c| c.contains(column)))
        }
        _ => false,
    }
}

/// 0/1 for a flag.
pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}
