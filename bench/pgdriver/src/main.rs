//! The PostgreSQL driver choice, measured (decision 0004): the short statements of a
//! sign-in (insert a ceremony, read it by key, update it, take it with `DELETE …
//! RETURNING`) run by 16 concurrent workers over 8 connections, each connection used by one
//! statement at a time as `store/src/sql/postgres.rs` does, through sqlx's `PgConnection`
//! and through tokio-postgres; and tokio-postgres once more with the 8 clients shared and
//! their statements pipelined. Reports operations per second, this process's CPU per
//! operation and the PostgreSQL server's CPU per operation, over a measured window after a
//! warm-up; the modes alternate for `--rounds` rounds.
//!
//!   cargo run --release -p handoff-bench-pgdriver -- [--pg URL] [--seconds 10] [--rounds 2]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio::sync::Mutex;

const WORKERS: usize = 16;
const CONNECTIONS: usize = 8;
const INSERT: &str = "INSERT INTO bench_ceremonies (id, payload, created_at) VALUES ($1, $2, $3)";
const SELECT: &str = "SELECT payload, created_at FROM bench_ceremonies WHERE id = $1";
const UPDATE: &str = "UPDATE bench_ceremonies SET created_at = created_at + 1 WHERE id = $1";
const TAKE: &str = "DELETE FROM bench_ceremonies WHERE id = $1 RETURNING payload";

/// CPU seconds (user + system) of the processes whose `comm` passes `pick`, from /proc.
fn cpu_ticks(pick: impl Fn(u32, &str) -> bool) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    let mut total = 0;
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if !pick(pid, &stat[open + 1..close]) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line (11 and 12 after `comm`).
        total += fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        total += fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    total
}

fn ticks_now() -> (u64, u64) {
    let me = std::process::id();
    (cpu_ticks(|pid, _| pid == me), cpu_ticks(|_, comm| comm == "postgres"))
}

/// One driver's way to run an operation's four statements.
enum Driver {
    Sqlx(Vec<Mutex<sqlx::PgConnection>>),
    TokioPostgres(Vec<Mutex<(tokio_postgres::Client, [tokio_postgres::Statement; 4])>>),
    Pipelined(Vec<(tokio_postgres::Client, [tokio_postgres::Statement; 4])>),
}

async fn tokio_client(url: &str) -> (tokio_postgres::Client, [tokio_postgres::Statement; 4]) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    let mut prepared = Vec::new();
    for sql in [INSERT, SELECT, UPDATE, TAKE] {
        prepared.push(client.prepare(sql).await.expect("prepare"));
    }
    let statements: [tokio_postgres::Statement; 4] = prepared.try_into().expect("four statements");
    (client, statements)
}

impl Driver {
    async fn open(mode: &str, url: &str) -> Self {
        match mode {
            "sqlx" => {
                let mut slots = Vec::new();
                for _ in 0..CONNECTIONS {
                    slots.push(Mutex::new(sqlx::PgConnection::connect(url).await.expect("connect")));
                }
                Self::Sqlx(slots)
            }
            "tokio-postgres" => {
                let mut slots = Vec::new();
                for _ in 0..CONNECTIONS {
                    slots.push(Mutex::new(tokio_client(url).await));
                }
                Self::TokioPostgres(slots)
            }
            _ => {
                let mut clients = Vec::new();
                for _ in 0..CONNECTIONS {
                    clients.push(tokio_client(url).await);
                }
                Self::Pipelined(clients)
            }
        }
    }

    /// Runs statement `which` (0–3) for ceremony `id`, as the store would: on a free
    /// connection, or the next one in turn.
    async fn run(&self, turn: usize, which: usize, id: &str, at: i64) {
        match self {
            Self::Sqlx(slots) => {
                let mut conn = free(slots, turn).await;
                let sql = [INSERT, SELECT, UPDATE, TAKE][which];
                let query = sqlx::query(sql).bind(id);
                let query = if which == 0 { query.bind("{}").bind(at) } else { query };
                query.fetch_all(&mut *conn).await.expect("sqlx statement");
            }
            Self::TokioPostgres(slots) => {
                let guard = free(slots, turn).await;
                let (client, statements) = &*guard;
                tokio_statement(client, &statements[which], which, id, at).await;
            }
            Self::Pipelined(clients) => {
                let (client, statements) = &clients[turn % clients.len()];
                tokio_statement(client, &statements[which], which, id, at).await;
            }
        }
    }
}

async fn tokio_statement(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    which: usize,
    id: &str,
    at: i64,
) {
    if which == 0 {
        client.execute(statement, &[&id, &"{}", &at]).await.expect("tokio-postgres insert");
    } else {
        client.query(statement, &[&id]).await.expect("tokio-postgres statement");
    }
}

/// A free slot if there is one, else the one in turn (as `Held::slot`).
async fn free<T>(slots: &[Mutex<T>], turn: usize) -> tokio::sync::MutexGuard<'_, T> {
    for i in 0..slots.len() {
        if let Ok(guard) = slots[(turn + i) % slots.len()].try_lock() {
            return guard;
        }
    }
    slots[turn % slots.len()].lock().await
}

struct Figures {
    ops_per_second: f64,
    client_cpu_ms_per_op: f64,
    server_cpu_ms_per_op: f64,
}

async fn measure(mode: &str, url: &str, warmup: Duration, window: Duration) -> Figures {
    let driver = Arc::new(Driver::open(mode, url).await);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (driver, done, stop, mode) = (driver.clone(), done.clone(), stop.clone(), mode.to_owned());
        workers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("{mode}-{w}-{n}");
                for which in 0..4 {
                    driver.run(w + n + which, which, &id, n as i64).await;
                }
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(warmup).await;
    let (ops0, (me0, pg0), t0) = (done.load(Ordering::Relaxed), ticks_now(), Instant::now());
    tokio::time::sleep(window).await;
    let (ops1, (me1, pg1), elapsed) = (done.load(Ordering::Relaxed), ticks_now(), t0.elapsed());
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let ops = (ops1 - ops0).max(1) as f64;
    // Clock ticks are hundredths of a second on Linux.
    Figures {
        ops_per_second: ops / elapsed.as_secs_f64(),
        client_cpu_ms_per_op: (me1 - me0) as f64 * 10.0 / ops,
        server_cpu_ms_per_op: (pg1 - pg0) as f64 * 10.0 / ops,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut url, mut seconds, mut rounds) = ("postgres://postgres@127.0.0.1:5432/postgres".to_owned(), 10u64, 2usize);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--pg" => url = value,
            "--seconds" => seconds = value.parse().expect("--seconds N"),
            "--rounds" => rounds = value.parse().expect("--rounds N"),
            _ => {
                eprintln!("usage: handoff-bench-pgdriver [--pg URL] [--seconds 10] [--rounds 2]");
                std::process::exit(2);
            }
        }
    }
    let mut setup = sqlx::PgConnection::connect(&url).await.expect("connect to PostgreSQL");
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS bench_ceremonies; \
         CREATE UNLOGGED TABLE bench_ceremonies (id TEXT PRIMARY KEY, payload TEXT NOT NULL, created_at BIGINT NOT NULL)",
    )
    .execute(&mut setup)
    .await
    .expect("create the table");
    println!("{WORKERS} workers, {CONNECTIONS} connections, 4 statements per operation, {seconds} s windows");
    println!("| round | driver | operations/s | client CPU ms/op | PostgreSQL CPU ms/op |");
    println!("|---:|---|---:|---:|---:|");
    for round in 1..=rounds {
        let mut modes = vec!["sqlx", "tokio-postgres", "tokio-postgres pipelined"];
        if round % 2 == 0 {
            modes.reverse();
        }
        for mode in modes {
            let f = measure(mode, &url, Duration::from_secs(2), Duration::from_secs(seconds)).await;
            println!(
                "| {round} | {mode} | {:.0} | {:.3} | {:.3} |",
                f.ops_per_second, f.client_cpu_ms_per_op, f.server_cpu_ms_per_op
            );
        }
    }
    let _ = sqlx::raw_sql("DROP TABLE IF EXISTS bench_ceremonies").execute(&mut setup).await;
}
