//! Point reads on SQLite run inline, on the calling thread, through rusqlite. sqlx hands
//! every statement to its connection's own OS thread and the rows back: two thread
//! wake-ups per statement, which the sign-in profile showed as half the server's CPU in
//! the kernel's scheduler. A reader in WAL mode never waits for the writer, so a lookup by
//! key (tens of microseconds) can run on an async thread like any other short computation.
//! Only short lookups belong here; scans (funnels, searches) stay on the sqlx pools.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use handoff_core::DomainError;
use handoff_core::error::Result;
use rusqlite::{Connection, OpenFlags};

use crate::cells::Cells;

/// A few read-only connections to the SQLite file, each used by one caller at a time.
pub(crate) struct InlineReaders {
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for InlineReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineReaders").field("connections", &self.connections.len()).finish()
    }
}

/// The file behind a `sqlite:` URL, when it names one (not an in-memory database).
pub(crate) fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:") && !url.contains("mode=memory")).then(|| path.to_owned())
}

impl InlineReaders {
    /// Opens `count` read-only connections to the file (which must exist: the writer
    /// creates and migrates it first).
    pub(crate) fn open(path: &str, count: usize) -> std::result::Result<Self, rusqlite::Error> {
        let connections = (0..count.max(1))
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(path, flags)?;
                // A WAL reader waits only in rare moments (log recovery, a restarting
                // checkpoint), and it would wait on an async thread: briefly, then fail. A
                // small page cache, since every commit elsewhere empties it anyway.
                conn.execute_batch("PRAGMA busy_timeout = 250; PRAGMA cache_size = -4096;")?;
                conn.set_prepared_statement_cache_capacity(32);
                Ok(Mutex::new(conn))
            })
            .collect::<std::result::Result<Vec<_>, rusqlite::Error>>()?;
        Ok(Self { connections, next: AtomicUsize::new(0) })
    }

    /// Runs `read` on a free connection (or waits for the next one in turn).
    pub(crate) fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let n = self.connections.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let lock = |i: usize| self.connections[i % n].try_lock().ok();
        let conn = match (start..start + n).find_map(lock) {
            Some(conn) => conn,
            None => self.connections[start].lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        };
        read(&conn).map_err(inline_error)
    }
}

/// A rusqlite error as a domain storage error.
pub(crate) fn inline_error(e: rusqlite::Error) -> DomainError {
    DomainError::Storage(e.to_string())
}

/// One statement's text for both drivers, built once: `sqlx` with `$n` placeholders, and
/// `inline` the same numbered for rusqlite.
pub(crate) struct Statement {
    pub(crate) sqlx: String,
    pub(crate) inline: String,
}

impl Statement {
    pub(crate) fn new(sql: String) -> Self {
        let inline = numbered(&sql);
        Self { sqlx: sql, inline }
    }

    /// Runs the statement on a rusqlite connection and decodes its first row, if any.
    pub(crate) fn first_row_inline<T>(
        &self,
        conn: &Connection,
        params: &[Param],
        decode: impl Fn(&dyn Cells) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut prepared = conn.prepare_cached(&self.inline).map_err(inline_error)?;
        let mut rows = prepared.query(rusqlite::params_from_iter(params)).map_err(inline_error)?;
        rows.next().map_err(inline_error)?.map(|row| decode(row)).transpose()
    }

    /// The statement for sqlx, with `params` bound.
    pub(crate) fn query<'q>(
        &'q self,
        params: &[Param],
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        Param::bind_all(sqlx::query(&self.sqlx), params)
    }

    /// Runs the statement through sqlx and decodes its first row, if any.
    pub(crate) async fn first_row<'e, T>(
        &self,
        executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
        params: &[Param],
        decode: impl Fn(&dyn Cells) -> Result<T>,
    ) -> Result<Option<T>> {
        let row = self.query(params).fetch_optional(executor).await.map_err(crate::db::storage_error)?;
        row.as_ref().map(|row| decode(row)).transpose()
    }
}

/// One bound parameter, for either driver. NULLs keep their type: PostgreSQL checks a
/// parameter's declared type against its column even when the value is NULL.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    /// An integer, or a NULL integer.
    Int(Option<i64>),
    /// A text, or a NULL text.
    Text(Option<String>),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}

impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Self::Text(Some(v))
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_owned()))
    }
}

impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}

impl Param {
    /// Binds `params`, in order, to a sqlx query.
    pub(crate) fn bind_all<'q>(
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        params: &[Param],
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for p in params {
            query = match p {
                Self::Int(v) => query.bind(*v),
                Self::Text(v) => query.bind(v.clone()),
            };
        }
        query
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

/// The same statement text as the sqlx queries (`$1`, `$2`, … placeholders), numbered for
/// rusqlite (`?1`, `?2`, …), so each query is still written once.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_and_paths_found() {
        assert_eq!(numbered("a = $1 AND b = $12 AND c = '$x'"), "a = ?1 AND b = ?12 AND c = '$x'");
        assert_eq!(sqlite_path("sqlite:///tmp/h.db?mode=rwc").as_deref(), Some("/tmp/h.db"));
        assert_eq!(sqlite_path("sqlite://data/h.db").as_deref(), Some("data/h.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}
