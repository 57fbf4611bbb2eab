//! PostgreSQL through sqlx's `PgPool`, and nothing else. Transactions and long reads use the
//! pool. The short statements of a sign-in instead borrow one of a few connections *held*
//! out of the pool for the life of the process ([`Held`]): sqlx tests a pooled connection
//! with a round trip when it is handed out and again when it comes back, so one statement
//! through the pool cost three round trips, and the two extra ones wake both processes on a
//! two-core machine for nothing. LISTEN/NOTIFY ([`Listener`]) lives here too, so the server
//! holds no SQL of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use handoff_core::DomainError;
use handoff_core::error::Result;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row as _};
use tokio::sync::{Mutex, MutexGuard};

use super::{Failure, Param, Row, Sql, Violation};

/// Connections to PostgreSQL, in all.
const CONNECTIONS: u32 = 16;
/// Of those, how many are held out of the pool for the short statements; the rest serve
/// transactions, scans and the operator's queries.
const HELD: usize = 8;
/// How long a held connection may sit unused before it is tested again.
const RETEST_AFTER: Duration = Duration::from_secs(5);

/// A sqlx error in the shared terms.
pub(crate) fn failure(e: sqlx::Error) -> Failure {
    match &e {
        sqlx::Error::Database(db) => {
            let violation = match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => Some(Violation::Unique),
                sqlx::error::ErrorKind::ForeignKeyViolation => Some(Violation::ForeignKey),
                _ => None,
            };
            let table =
                db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().and_then(|pg| pg.table()).map(str::to_owned);
            Failure { violation, table, message: db.message().to_owned() }
        }
        _ => Failure::other(e),
    }
}

fn domain(e: sqlx::Error) -> DomainError {
    failure(e).into_domain()
}

impl Row for PgRow {
    fn text(&self, i: usize) -> Result<String> {
        self.try_get(i).map_err(domain)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.try_get(i).map_err(domain)
    }
    fn int(&self, i: usize) -> Result<i64> {
        self.try_get(i).map_err(domain)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.try_get(i).map_err(domain)
    }
}

/// The statement with `params` bound, in order.
fn query<'q>(sql: &'q Sql, params: &[Param]) -> sqlx::query::Query<'q, sqlx::Postgres, PgArguments> {
    let mut query = sqlx::query(&sql.postgres);
    for p in params {
        query = match p {
            Param::Int(v) => query.bind(*v),
            Param::Text(v) => query.bind(v.clone()),
        };
    }
    query
}

/// Runs a statement; returns how many rows it changed.
pub(crate) async fn execute(conn: &mut PgConnection, sql: &Sql, params: &[Param]) -> Result<u64> {
    Ok(query(sql, params).execute(conn).await.map_err(domain)?.rows_affected())
}

/// Runs a statement and decodes every row.
pub(crate) async fn all<T>(
    conn: &mut PgConnection,
    sql: &Sql,
    params: &[Param],
    decode: impl Fn(&dyn Row) -> Result<T>,
) -> Result<Vec<T>> {
    let rows = query(sql, params).fetch_all(conn).await.map_err(domain)?;
    rows.iter().map(|row| decode(row)).collect()
}

/// Runs a script of several statements (simple protocol, no parameters).
pub(crate) async fn script(conn: &mut PgConnection, script: &str) -> Result<()> {
    sqlx::raw_sql(script).execute(conn).await.map_err(domain)?;
    Ok(())
}

/// A PostgreSQL database: the pool, and the connections held out of it.
pub(crate) struct Postgres {
    pool: PgPool,
    pub(crate) held: Held,
    url: String,
}

impl Postgres {
    /// Connects to `url`.
    pub(crate) async fn connect(url: &str) -> std::result::Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let held = Held {
            pool: pool.clone(),
            slots: (0..HELD).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        };
        Ok(Self { pool, held, url: url.to_owned() })
    }

    /// A pooled transaction.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(domain)
    }

    /// A long read, through the pool.
    pub(crate) async fn scan<T>(
        &self,
        sql: &Sql,
        params: &[Param],
        decode: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut conn = self.pool.acquire().await.map_err(domain)?;
        all(&mut conn, sql, params, decode).await
    }

    /// Sends `payload` on `channel` to every listener of this database.
    pub(crate) async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        let sql = Sql::verbatim("SELECT pg_notify($1, $2)");
        self.held.execute(&sql, &[channel.into(), payload.into()]).await.map(drop)
    }

    /// Starts listening on `channel`, on a connection of its own.
    pub(crate) async fn listen(&self, channel: &str) -> Result<Listener> {
        let mut listener = PgListener::connect(&self.url).await.map_err(domain)?;
        listener.listen(channel).await.map_err(domain)?;
        Ok(Listener(listener))
    }

    /// Gives the held connections back and closes the pool.
    pub(crate) async fn close(&self) {
        for slot in &self.held.slots {
            slot.lock().await.take();
        }
        self.pool.close().await;
    }
}

/// What a [`Listener`] heard.
#[derive(Debug)]
pub enum Notice {
    /// A notification's payload.
    Payload(String),
    /// The connection dropped and was made again: notifications sent meanwhile are lost.
    Reconnected,
}

/// A `LISTEN` on its own connection (from [`crate::Database::listen`]).
pub struct Listener(PgListener);

impl Listener {
    /// Waits for the next notification. An error means the connection is gone and could not
    /// be made again; listen anew.
    pub async fn recv(&mut self) -> Result<Notice> {
        match self.0.try_recv().await.map_err(domain)? {
            Some(n) => Ok(Notice::Payload(n.payload().to_owned())),
            None => Ok(Notice::Reconnected),
        }
    }
}

/// A held connection and when it last finished a statement.
type Slot = Option<(PoolConnection<sqlx::Postgres>, Instant)>;

/// A few connections borrowed from the pool for good, one statement at a time each. A
/// connection goes back into its slot after a statement that completed, or that the server
/// refused (a constraint, say: the connection is fine). After any other error, or when the
/// caller gave up midway (a dropped request future), it goes back to the pool instead,
/// which tests it and closes it if broken; the slot fills again on its next use. One that
/// sat unused a while is tested before its next statement, as the pool would, so a
/// connection dropped in a quiet hour fails no request.
pub(crate) struct Held {
    pool: PgPool,
    slots: Vec<Mutex<Slot>>,
    next: AtomicUsize,
}

impl Held {
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
    async fn with<T>(&self, work: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>) -> Result<T> {
        let mut slot = self.slot().await;
        let held = match slot.take() {
            Some((mut conn, last)) if last.elapsed() > RETEST_AFTER => conn.ping().await.ok().map(|()| conn),
            Some((conn, _)) => Some(conn),
            None => None,
        };
        let mut conn = match held {
            Some(conn) => conn,
            None => self.pool.acquire().await.map_err(domain)?,
        };
        // If this future is dropped here, `conn` goes back to the pool (which tests it) and
        // the slot stays empty.
        let result = work(&mut *conn).await;
        if matches!(result, Ok(_) | Err(sqlx::Error::Database(_))) {
            *slot = Some((conn, Instant::now()));
        }
        result.map_err(domain)
    }

    pub(crate) async fn execute(&self, sql: &Sql, params: &[Param]) -> Result<u64> {
        self.with(async |conn| query(sql, params).execute(conn).await.map(|d| d.rows_affected())).await
    }

    pub(crate) async fn optional<T>(
        &self,
        sql: &Sql,
        params: &[Param],
        decode: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let row = self.with(async |conn| query(sql, params).fetch_optional(conn).await).await?;
        row.as_ref().map(|row| decode(row)).transpose()
    }

    pub(crate) async fn all<T>(
        &self,
        sql: &Sql,
        params: &[Param],
        decode: impl Fn(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows = self.with(async |conn| query(sql, params).fetch_all(conn).await).await?;
        rows.iter().map(|row| decode(row)).collect()
    }
}
