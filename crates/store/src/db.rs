//! Opening and migrating a database, and what the server asks of it beside the storage
//! traits: checkpoints, notifications, closing.

use std::sync::Arc;

use handoff_core::error::Result;
use handoff_core::storage::Storage;

use crate::sql::{Engine, Listener, Postgres, Sqlite};

/// Which database is behind a [`Database`].
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
    #[error("unsupported database URL {url:?}: {why}")]
    UnsupportedUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// Connecting or opening failed.
    #[error("cannot open the {backend:?} database: {reason}")]
    Connect {
        /// Which backend.
        backend: Backend,
        /// Why.
        reason: String,
    },
    /// A migration failed.
    #[error("{0}")]
    Migrate(handoff_core::DomainError),
}

/// A database, SQLite or PostgreSQL. Implements every storage trait; each store module
/// runs its statements through the executor in `sql/`.
#[derive(Clone)]
pub struct Database {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("backend", &self.backend()).finish()
    }
}

impl Database {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`:
    /// `sqlite://PATH` or `postgres://…`.
    pub async fn connect(url: &str) -> std::result::Result<Self, StoreError> {
        let unsupported = |why: &str| StoreError::UnsupportedUrl { url: url.to_owned(), why: why.to_owned() };
        let engine = if url.starts_with("sqlite:") {
            let path = crate::sql::sqlite_path(url).map_err(|why| unsupported(&why))?;
            let sqlite = Sqlite::open(&path)
                .map_err(|e| StoreError::Connect { backend: Backend::Sqlite, reason: format!("{path}: {e}") })?;
            Engine::Sqlite(sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pg = Postgres::connect(url)
                .await
                .map_err(|e| StoreError::Connect { backend: Backend::Postgres, reason: e.to_string() })?;
            Engine::Postgres(pg)
        } else {
            return Err(unsupported("use sqlite://PATH or postgres://…"));
        };
        let db = Self { engine: Arc::new(engine) };
        let tx = db.begin().await.map_err(StoreError::Migrate)?;
        crate::sql::migrate(tx).await.map_err(StoreError::Migrate)?;
        Ok(db)
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match *self.engine {
            Engine::Sqlite(_) => Backend::Sqlite,
            Engine::Postgres(_) => Backend::Postgres,
        }
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
            retention: this.clone(),
            oidc_clients: this.clone(),
            signing_keys: this.clone(),
            grants: this.clone(),
            recovery: this.clone(),
            webhooks: this,
        }
    }

    /// Copies committed WAL pages into the SQLite file, beside the writers (the server calls
    /// this every second; automatic checkpoints are off so no request pays for one inside
    /// its commit). Returns the log's size in pages before. A no-op on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<i64> {
        match self.engine() {
            Engine::Sqlite(db) => db.checkpoint().await,
            Engine::Postgres(_) => Ok(0),
        }
    }

    /// Sends `payload` to every [`Listener`] of `channel` on this database, whichever
    /// instance made it (PostgreSQL `NOTIFY`). `None` on SQLite, which has one instance:
    /// the caller tells its own waiters directly.
    pub async fn notify(&self, channel: &str, payload: &str) -> Option<Result<()>> {
        match self.engine() {
            Engine::Sqlite(_) => None,
            Engine::Postgres(db) => Some(db.notify(channel, payload).await),
        }
    }

    /// Starts listening on `channel` (PostgreSQL `LISTEN`, on a connection of its own);
    /// `None` on SQLite.
    pub async fn listen(&self, channel: &str) -> Option<Result<Listener>> {
        match self.engine() {
            Engine::Sqlite(_) => None,
            Engine::Postgres(db) => Some(db.listen(channel).await),
        }
    }

    /// Runs a script of SQL statements in one transaction: for tests and maintenance, not
    /// for the product's own queries (those go through the store modules).
    pub async fn run_script(&self, script: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.script(script).await?;
        tx.commit().await
    }

    /// Closes the connections (on PostgreSQL, waiting for them to return).
    pub async fn close(&self) {
        if let Engine::Postgres(db) = self.engine() {
            db.close().await;
        }
    }
}
