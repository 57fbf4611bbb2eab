//! Operator query latency (issue #6) with `--journeys` journeys stored (default a million),
//! on SQLite and PostgreSQL. The journeys are written straight into a fresh database with
//! one `INSERT … SELECT` over a number series (spread over the last 7 days, four flows,
//! five desktop systems, four browsers, realistic outcomes and root causes), then the
//! release `handoff` binary serves them and every operator query is timed over HTTP,
//! `--samples` times each after one warm-up call: p50 and p99.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
#[command(about = "Operator query latency with many journeys stored")]
struct Cli {
    /// The release binary.
    #[arg(long, default_value = "target/release/handoff")]
    bin: PathBuf,
    /// Journeys to store.
    #[arg(long, default_value_t = 1_000_000)]
    journeys: u64,
    /// Timed calls per query.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// PostgreSQL server URL (a fresh database is created on it); `none` skips it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg: String,
}

const TOKEN: &str = "bench-operator-token-0123456789";

/// The columns of a synthetic journey as SQL expressions of `i` and `now` (both dialects).
fn select_list(now: i64) -> String {
    format!(
        "CASE i % 4 WHEN 0 THEN 'passkey-local' WHEN 1 THEN 'cross-device' WHEN 2 THEN 'qr-approval' ELSE 'fallback' END, \
         'user' || (i % 50000) || '@example.com', 'finished', \
         CASE WHEN i % 10 < 7 THEN 'success' WHEN i % 10 < 9 THEN 'failed' ELSE 'abandoned' END, \
         CASE WHEN i % 10 < 7 THEN NULL WHEN i % 10 = 7 THEN 'proximity-or-connection' WHEN i % 10 = 8 THEN 'scan-failure' ELSE 'user-cancelled' END, \
         CASE WHEN i % 10 < 7 THEN NULL ELSE 'inferred' END, \
         {now} - i * 600, {now} - i * 600 + 30000, {now} - i * 600 + 630000, \
         CASE WHEN i % 10 < 7 THEN 127 ELSE 7 END, CASE WHEN i % 10 < 7 THEN 4000 + i % 20000 ELSE NULL END, \
         CASE i % 5 WHEN 0 THEN 'Windows' WHEN 1 THEN 'macOS' WHEN 2 THEN 'Linux' WHEN 3 THEN 'Android' ELSE 'iOS' END, \
         CASE i % 4 WHEN 0 THEN 'Chrome' WHEN 1 THEN 'Safari' WHEN 2 THEN 'Edge' ELSE 'Firefox' END, \
         'desktop', CASE WHEN i % 3 = 0 THEN 'Android' ELSE 'iOS' END, 'Chrome', NULL, '{{}}'"
    )
}

const COLUMNS: &str = "journey_id, flow, identifier, state, outcome, root_cause, basis, started_at, last_at, \
                       finished_at, steps, convert_ms, desktop_os, desktop_browser, desktop_form, mobile_os, \
                       mobile_browser, app_version, facts";

/// The server's write path marks the hours it touches for the rollups; so does the fill.
const MARK_DIRTY: &str = "INSERT INTO rollup_dirty (hour) SELECT DISTINCT started_at / 3600000 FROM journeys WHERE true ON CONFLICT DO NOTHING;";

/// Waits until the server has rolled up every hour but the last two (which stay dirty
/// until they have ended), reading the count with `count` (a SQL shell command).
fn wait_for_rollups(count: impl Fn() -> Command) {
    let t = Instant::now();
    loop {
        let out = count().output().expect("sql shell");
        let left: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(u64::MAX);
        if left <= 2 || t.elapsed().as_secs() > 600 {
            eprintln!("rollups caught up in {:.1} s ({left} hours left dirty)", t.elapsed().as_secs_f64());
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn fill_sqlite(path: &std::path::Path, n: u64, now: i64) {
    let sql = format!(
        "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {last}) \
         INSERT INTO journeys ({COLUMNS}) SELECT printf('%08x-0000-4000-8000-%012x', i, i), {} FROM s; \
         {MARK_DIRTY}",
        select_list(now),
        last = n - 1
    );
    run_sql(Command::new("sqlite3").arg(path).arg(sql));
}

fn fill_postgres(url: &str, n: u64, now: i64) {
    let sql = format!(
        "INSERT INTO journeys ({COLUMNS}) SELECT lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'), {} \
         FROM generate_series(0::bigint, {last}::bigint) AS s(i); {MARK_DIRTY}",
        select_list(now),
        last = n - 1
    );
    run_sql(Command::new("psql").arg(url).arg("-qc").arg(sql));
    // What autovacuum does after a bulk insert (statistics, visibility map for index-only
    // scans); VACUUM cannot run inside the fill's transaction.
    run_sql(Command::new("psql").arg(url).arg("-qc").arg("VACUUM ANALYZE journeys"));
}

fn run_sql(cmd: &mut Command) {
    let out = cmd.output().expect("run the database shell");
    assert!(out.status.success(), "filling the database failed: {}", String::from_utf8_lossy(&out.stderr));
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start(bin: &PathBuf, dir: &std::path::Path, db: &str) -> (Server, String) {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18_095);
    let child = Command::new(bin)
        .arg("serve")
        .env("HANDOFF_LISTEN", format!("127.0.0.1:{port}"))
        .env("HANDOFF_DATA_DIR", dir)
        .env("HANDOFF_DATABASE_URL", db)
        .env("HANDOFF_ORIGIN", format!("http://localhost:{port}"))
        .env("HANDOFF_OPERATOR_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start handoff");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..400 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Server(child), base)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn time_queries(base: &str, samples: usize) -> Vec<(String, f64, f64)> {
    let http = reqwest::Client::new();
    let queries = [
        "/api/v1/funnels?flow=cross-device",
        "/api/v1/funnels?flow=qr-approval&by=os",
        "/api/v1/funnels?flow=passkey-local&by=browser",
        "/api/v1/insights",
        "/api/v1/journeys?identifier=user123@example.com",
        "/api/v1/journeys?outcome=failed&rootCause=scan-failure&limit=50",
        "/dashboard",
    ];
    let mut out = Vec::new();
    for q in queries {
        let get = || http.get(format!("{base}{q}")).bearer_auth(TOKEN).send();
        let first = get().await.map(|r| r.status().as_u16()).unwrap_or(0);
        if first != 200 {
            eprintln!("{q}: HTTP {first}, skipped");
            continue;
        }
        let mut ms = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            let r = get().await.expect("request");
            let _ = r.bytes().await;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        out.push((q.to_owned(), pct(&ms, 0.5), pct(&ms, 0.99)));
    }
    out
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("handoff-bench-views-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!("| backend | query | p50 | p99 |");
    println!("|---|---|---:|---:|");
    // SQLite: migrate by starting the server once, then fill the file, then serve it.
    let file = dir.join("views.db");
    let url = format!("sqlite://{}", file.display());
    drop(start(&cli.bin, &dir, &url).await);
    let t = Instant::now();
    fill_sqlite(&file, cli.journeys, now);
    eprintln!("SQLite: {} journeys written in {:.1} s", cli.journeys, t.elapsed().as_secs_f64());
    {
        let (_server, base) = start(&cli.bin, &dir, &url).await;
        wait_for_rollups(|| {
            let mut c = Command::new("sqlite3");
            c.arg(&file).arg("SELECT COUNT(*) FROM rollup_dirty");
            c
        });
        for (q, p50, p99) in time_queries(&base, cli.samples).await {
            println!("| SQLite | `{q}` | {p50:.1} ms | {p99:.1} ms |");
        }
    }
    if cli.pg != "none" {
        let name = format!("handoff_bench_views_{}", std::process::id());
        run_sql(Command::new("psql").arg(&cli.pg).arg("-qc").arg(format!("CREATE DATABASE {name}")));
        let url = format!("{}/{name}", cli.pg.rsplit_once('/').map(|(a, _)| a).unwrap_or(&cli.pg));
        drop(start(&cli.bin, &dir, &url).await);
        let t = Instant::now();
        fill_postgres(&url, cli.journeys, now);
        eprintln!("PostgreSQL: {} journeys written in {:.1} s", cli.journeys, t.elapsed().as_secs_f64());
        {
            let (_server, base) = start(&cli.bin, &dir, &url).await;
            wait_for_rollups(|| {
                let mut c = Command::new("psql");
                c.arg(&url).arg("-qAtc").arg("SELECT COUNT(*) FROM rollup_dirty");
                c
            });
            for (q, p50, p99) in time_queries(&base, cli.samples).await {
                println!("| PostgreSQL | `{q}` | {p50:.1} ms | {p99:.1} ms |");
            }
        }
        let _ = Command::new("psql").arg(&cli.pg).arg("-qc").arg(format!("DROP DATABASE IF EXISTS {name}")).status();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
