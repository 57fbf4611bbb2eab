//! The one way a store module runs a statement. A module writes its SQL once (with `$1, $2,
//! …` placeholders, which [`Sql`] renumbers for SQLite), binds [`Param`]s, decodes each row
//! with one function over [`Row`], and calls the method of [`Database`] that says what kind
//! of statement it is, because that decides where it runs:
//!
//! | method | for | SQLite (`sqlite.rs`, rusqlite) | PostgreSQL (`postgres.rs`, sqlx) |
//! |---|---|---|---|
//! | `optional`, `all` | a short read by key | inline on a reader connection | a held connection |
//! | `scan` | a read over many rows | a scan connection on the blocking pool | the pool |
//! | `execute`, `returning` | a short write | group commit on the write lane | a held connection |
//! | `begin` → [`Tx`] | statements that commit together | the write lane's connection | a pooled transaction |
//!
//! A short write that reports a change to webhook subscribers (`execute_reported`,
//! `returning_reported`, `Tx::report`) also writes the outbox: one delivery per subscribed
//! endpoint, by an `INSERT … SELECT` from `webhook_subscriptions`, only when the write
//! changed a row, and committed with it or not at all. On SQLite the two statements run in
//! one job of the write lane inside a `SAVEPOINT`; on PostgreSQL they are one statement (a
//! data-modifying `WITH`) on a held connection. Without a message the write runs exactly
//! as before. See `docs/decisions/0016-webhooks.md`.
//!
//! Errors of either driver become domain errors in one place ([`Failure::into_domain`]): a
//! unique violation on `users` is `IdentifierTaken`, on `passkeys` `CredentialExists`,
//! whichever of the paths above ran the statement.

mod migrate;
mod postgres;
mod sqlite;

use std::sync::{Arc, LazyLock};

use handoff_core::DomainError;
use handoff_core::error::Result;
use handoff_core::webhooks::Message;

pub(crate) use migrate::run as migrate;
pub(crate) use postgres::Postgres;
pub use postgres::{Listener, Notice};
pub(crate) use sqlite::{Sqlite, path_of as sqlite_path};

use crate::db::Database;

/// The driver behind a [`Database`].
pub(crate) enum Engine {
    /// A SQLite file, through rusqlite.
    Sqlite(Sqlite),
    /// A PostgreSQL server, through sqlx.
    Postgres(Postgres),
}

/// One statement's text for both dialects, built once: PostgreSQL's `$n` placeholders, and
/// the same renumbered `?n` for SQLite (SQLite would read `$1` as a *named* parameter and
/// number those in order of appearance).
#[derive(Clone, Debug)]
pub(crate) struct Sql {
    pub(crate) postgres: Arc<str>,
    pub(crate) sqlite: Arc<str>,
}

impl Sql {
    /// A statement written once for both dialects.
    pub(crate) fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let sqlite = numbered(&text);
        Self { postgres: text.into(), sqlite: sqlite.into() }
    }

    /// A statement already written for the one backend it runs on (the journal's multi-row
    /// statements, which use plain `?` on SQLite: binding thousands of numbered parameters
    /// looks each name up in a list).
    pub(crate) fn verbatim(text: impl Into<String>) -> Self {
        let text: Arc<str> = text.into().into();
        Self { postgres: text.clone(), sqlite: text }
    }
}

/// A short write that may report itself to webhook subscribers: the write alone, and for
/// PostgreSQL the write with the outbox fan-out as one statement.
#[derive(Clone, Debug)]
pub(crate) struct Reported {
    /// The write alone (also what runs on SQLite, followed by [`FANOUT`]).
    pub(crate) write: Sql,
    /// `WITH w AS (write RETURNING …), o AS (fan-out if w has rows) SELECT * FROM w`.
    with_outbox: Sql,
}

impl Reported {
    /// A write written once for both dialects (with `RETURNING` when the caller reads rows).
    pub(crate) fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let first = highest_placeholder(&text) + 1;
        let returning = if text.contains(" RETURNING ") { "" } else { " RETURNING 1" };
        let with_outbox = format!(
            "WITH w AS ({text}{returning}), o AS ({}) SELECT * FROM w",
            fanout_sql(first, "EXISTS (SELECT 1 FROM w) AND ")
        );
        Self { write: Sql::new(text), with_outbox: Sql::verbatim(with_outbox) }
    }
}

/// The highest `$n` in a statement.
fn highest_placeholder(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// The outbox fan-out with its four parameters numbered from `first` (message id, type,
/// body, time): a pending delivery for every endpoint subscribed to the type.
fn fanout_sql(first: usize, guard: &str) -> String {
    let (id, kind, body, at) = (first, first + 1, first + 2, first + 3);
    format!(
        "INSERT INTO webhook_deliveries (endpoint_id, message_id, event_type, payload, created_at, state, \
         next_attempt_at, retry_from) SELECT endpoint_id, ${id}, ${kind}, ${body}, ${at}, 'pending', ${at}, ${at} \
         FROM webhook_subscriptions WHERE {guard}event_type = ${kind}"
    )
}

/// The fan-out on its own (SQLite, and inside transactions).
pub(crate) static FANOUT: LazyLock<Sql> = LazyLock::new(|| Sql::new(fanout_sql(1, "")));

/// The fan-out's parameters for `message`.
pub(crate) fn fanout_params(message: &Message) -> Vec<Param> {
    vec![message.id.clone().into(), message.event_type.as_str().into(), message.body.clone().into(), message.at.into()]
}

/// `$1`, `$2`, … as `?1`, `?2`, … (a `$` not followed by a digit is kept).
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

/// One bound parameter. NULLs keep their type: PostgreSQL checks a parameter's declared type
/// against its column even when the value is NULL.
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

impl From<bool> for Param {
    /// Flags are stored as 0/1 integers on both backends.
    fn from(v: bool) -> Self {
        Self::Int(Some(i64::from(v)))
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

/// Typed access to the cells of one result row, whichever driver produced it, so each row
/// is decoded by one function.
pub(crate) trait Row {
    /// A text cell.
    fn text(&self, i: usize) -> Result<String>;
    /// A text cell that may be NULL.
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    /// An integer cell.
    fn int(&self, i: usize) -> Result<i64>;
    /// An integer cell that may be NULL.
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
}

/// How a statement broke a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A unique or primary key.
    Unique,
    /// A foreign key.
    ForeignKey,
}

/// What a driver reported, in the terms both share.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The constraint broken, if that is what happened.
    pub(crate) violation: Option<Violation>,
    /// The table the constraint belongs to, when the driver names it.
    pub(crate) table: Option<String>,
    /// The driver's message.
    pub(crate) message: String,
}

impl Failure {
    /// Any other failure (I/O, a lost connection, a decoding error).
    pub(crate) fn other(message: impl std::fmt::Display) -> Self {
        Self { violation: None, table: None, message: message.to_string() }
    }

    /// The domain's name for it: the one mapping for both backends and every path.
    pub(crate) fn into_domain(self) -> DomainError {
        match (self.violation, self.table.as_deref()) {
            (Some(Violation::Unique), Some("users")) => DomainError::IdentifierTaken,
            (Some(Violation::Unique), Some("passkeys")) => DomainError::CredentialExists,
            (Some(kind), table) => DomainError::Storage(format!(
                "{} violation on {}: {}",
                if kind == Violation::Unique { "unique" } else { "foreign key" },
                table.unwrap_or("a table"),
                self.message
            )),
            (None, _) => DomainError::Storage(self.message),
        }
    }
}

impl From<Failure> for DomainError {
    fn from(f: Failure) -> Self {
        f.into_domain()
    }
}

impl Database {
    /// A short read by key that returns at most one row.
    pub(crate) async fn optional<T>(
        &self,
        sql: &Sql,
        params: &[Param],
        decode: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.engine() {
            Engine::Sqlite(db) => db.read(|conn| sqlite::first(conn, &sql.sqlite, params, &decode)),
            Engine::Postgres(db) => db.held.optional(sql, params, decode).await,
        }
    }

    /// A short read by key that returns exactly one row (an aggregate, say).
    pub(crate) async fn one<T>(
        &self,
        sql: &Sql,
        params: &[Param],
        decode: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<T> {
        self.optional(sql, params, decode)
            .await?
            .ok_or_else(|| DomainError::Storage(format!("no row from {}", sql.postgres)))
    }

    /// A short read by key that returns a few rows.
    pub(crate) async fn all<T>(
        &self,
        sql: &Sql,
        params: &[Param],
        decode: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self.engine() {
            Engine::Sqlite(db) => db.read(|conn| sqlite::rows(conn, &sql.sqlite, params, &decode)),
            Engine::Postgres(db) => db.held.all(sql, params, decode).await,
        }
    }

    /// A read over many rows (funnels, searches, listings): off the async threads on SQLite.
    pub(crate) async fn scan<T: Send + 'static>(
        &self,
        sql: &Sql,
        params: Vec<Param>,
        decode: impl Fn(&dyn Row) -> Result<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        match self.engine() {
            Engine::Sqlite(db) => db.scan(sql.sqlite.clone(), params, decode).await,
            Engine::Postgres(db) => db.scan(sql, &params, decode).await,
        }
    }

    /// A short write; returns how many rows it changed. On SQLite it commits together with
    /// the other short writes queued meanwhile (group commit).
    pub(crate) async fn execute(&self, sql: &Sql, params: Vec<Param>) -> Result<u64> {
        match self.engine() {
            Engine::Sqlite(db) => db.lane.execute(sql.sqlite.clone(), params).await,
            Engine::Postgres(db) => db.held.execute(sql, &params).await,
        }
    }

    /// A short write that returns rows (`… RETURNING`), decoded.
    pub(crate) async fn returning<T: Send + 'static>(
        &self,
        sql: &Sql,
        params: Vec<Param>,
        decode: impl Fn(&dyn Row) -> Result<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        match self.engine() {
            Engine::Sqlite(db) => db.lane.returning(sql.sqlite.clone(), params, decode).await,
            Engine::Postgres(db) => db.held.all(sql, &params, decode).await,
        }
    }

    /// A short write that reports a change: with a message, the webhook deliveries are
    /// written with it (when it changed a row) or not at all; without one, [`Self::execute`].
    pub(crate) async fn execute_reported(
        &self,
        sql: &Reported,
        params: Vec<Param>,
        report: Option<&Message>,
    ) -> Result<u64> {
        let Some(message) = report else { return self.execute(&sql.write, params).await };
        match self.engine() {
            Engine::Sqlite(db) => {
                let write = sql.write.sqlite.clone();
                let outbox = (FANOUT.sqlite.clone(), fanout_params(message));
                db.lane
                    .reported(
                        move |conn| {
                            let n = sqlite::execute(conn, &write, &params)?;
                            Ok((n, n > 0))
                        },
                        outbox,
                    )
                    .await
            }
            Engine::Postgres(db) => {
                let mut all = params;
                all.extend(fanout_params(message));
                Ok(db.held.all(&sql.with_outbox, &all, |_| Ok(())).await?.len() as u64)
            }
        }
    }

    /// [`Self::returning`] that reports a change, as [`Self::execute_reported`].
    pub(crate) async fn returning_reported<T: Send + 'static>(
        &self,
        sql: &Reported,
        params: Vec<Param>,
        decode: impl Fn(&dyn Row) -> Result<T> + Send + 'static,
        report: Option<&Message>,
    ) -> Result<Vec<T>> {
        let Some(message) = report else { return self.returning(&sql.write, params, decode).await };
        match self.engine() {
            Engine::Sqlite(db) => {
                let write = sql.write.sqlite.clone();
                let outbox = (FANOUT.sqlite.clone(), fanout_params(message));
                db.lane
                    .reported(
                        move |conn| {
                            let rows = sqlite::rows(conn, &write, &params, &decode)?;
                            let changed = !rows.is_empty();
                            Ok((rows, changed))
                        },
                        outbox,
                    )
                    .await
            }
            Engine::Postgres(db) => {
                let mut all = params;
                all.extend(fanout_params(message));
                db.held.all(&sql.with_outbox, &all, decode).await
            }
        }
    }

    /// A transaction: statements that commit together, or not at all (dropped before
    /// [`Tx::commit`], it rolls back). On SQLite it holds the write lane until it ends.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        match self.engine() {
            Engine::Sqlite(db) => Ok(Tx::Sqlite(db.lane.begin().await?)),
            Engine::Postgres(db) => Ok(Tx::Postgres(db.begin().await?)),
        }
    }
}

/// An open write transaction, from [`Database::begin`].
pub(crate) enum Tx {
    /// The SQLite write lane's connection, inline.
    Sqlite(sqlite::LaneTx),
    /// A pooled PostgreSQL transaction.
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    /// Which backend the transaction runs on, for the few statements written per dialect.
    pub(crate) fn backend(&self) -> crate::Backend {
        match self {
            Self::Sqlite(_) => crate::Backend::Sqlite,
            Self::Postgres(_) => crate::Backend::Postgres,
        }
    }

    /// Runs a statement; returns how many rows it changed.
    pub(crate) async fn execute(&mut self, sql: &Sql, params: &[Param]) -> Result<u64> {
        match self {
            Self::Sqlite(tx) => sqlite::execute(tx.conn(), &sql.sqlite, params),
            Self::Postgres(tx) => postgres::execute(tx, sql, params).await,
        }
    }

    /// Runs a statement and decodes every row it returns.
    pub(crate) async fn all<T>(
        &mut self,
        sql: &Sql,
        params: &[Param],
        decode: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self {
            Self::Sqlite(tx) => sqlite::rows(tx.conn(), &sql.sqlite, params, &decode),
            Self::Postgres(tx) => postgres::all(tx, sql, params, decode).await,
        }
    }

    /// Writes the webhook deliveries of `message` in this transaction.
    pub(crate) async fn report(&mut self, message: &Message) -> Result<u64> {
        self.execute(&FANOUT, &fanout_params(message)).await
    }

    /// Runs a script of several statements without parameters (the migrations).
    pub(crate) async fn script(&mut self, script: &str) -> Result<()> {
        match self {
            Self::Sqlite(tx) => tx.conn().execute_batch(script).map_err(|e| sqlite::failure(e).into_domain()),
            Self::Postgres(tx) => postgres::script(tx, script).await,
        }
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Self::Sqlite(tx) => tx.commit(),
            Self::Postgres(tx) => tx.commit().await.map_err(|e| postgres::failure(e).into_domain()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_for_sqlite() {
        let sql = Sql::new("a = $1 AND b = $12 AND c = '$x'");
        assert_eq!(&*sql.sqlite, "a = ?1 AND b = ?12 AND c = '$x'");
        assert_eq!(&*sql.postgres, "a = $1 AND b = $12 AND c = '$x'");
    }

    #[test]
    fn reported_writes_number_the_fanout_after_their_own_parameters() {
        let r = Reported::new("DELETE FROM sessions WHERE user_id = $1 AND x = $2");
        assert_eq!(&*r.write.sqlite, "DELETE FROM sessions WHERE user_id = ?1 AND x = ?2");
        let pg = &*r.with_outbox.postgres;
        assert!(pg.starts_with("WITH w AS (DELETE FROM sessions WHERE user_id = $1 AND x = $2 RETURNING 1), o AS"));
        assert!(pg.contains("SELECT endpoint_id, $3, $4, $5, $6, 'pending', $6, $6"), "{pg}");
        assert!(pg.contains("WHERE EXISTS (SELECT 1 FROM w) AND event_type = $4) SELECT * FROM w"), "{pg}");
        let returning = Reported::new("UPDATE t SET a = $1 RETURNING a, b");
        assert!(returning.with_outbox.postgres.starts_with("WITH w AS (UPDATE t SET a = $1 RETURNING a, b), o AS"));
        assert!(FANOUT.sqlite.contains("SELECT endpoint_id, ?1, ?2, ?3, ?4, 'pending', ?4, ?4"));
    }

    #[test]
    fn violations_map_to_the_same_domain_errors() {
        let unique = |table: &str| Failure {
            violation: Some(Violation::Unique),
            table: Some(table.to_owned()),
            message: "x".into(),
        };
        assert!(matches!(unique("users").into_domain(), DomainError::IdentifierTaken));
        assert!(matches!(unique("passkeys").into_domain(), DomainError::CredentialExists));
        assert!(
            matches!(unique("sessions").into_domain(), DomainError::Storage(m) if m.contains("unique violation on sessions"))
        );
        assert!(matches!(Failure::other("disk full").into_domain(), DomainError::Storage(m) if m == "disk full"));
    }
}
