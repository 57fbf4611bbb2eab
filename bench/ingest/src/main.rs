//! Event ingestion benchmark (issue #5), against release `handoff` processes it starts
//! itself, on SQLite and on PostgreSQL:
//!
//! * Sustained ingestion: `--concurrency` closed-loop clients post batches of `--batch`
//!   events, each batch spread over `--journeys` fresh journeys with a realistic mix of
//!   names, for `--warmup` + `--duration`. Only batches acknowledged (202) inside the
//!   measured window count. Every 202 means the events are committed *and* their journeys
//!   updated (the same transaction), so stitching keeps up by construction; the run checks
//!   it by reading the journeys back.
//! * Lag: a prober sends one event to a new journey every 50 ms during the window and
//!   reads the journey back as soon as the 202 arrives: lag = send → journey shows the
//!   event. Each probe that does not show its event on the first read is counted.
//! * Server CPU: utime + stime of the server process from `/proc/<pid>/stat` over the
//!   window, per 1,000 events.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;

#[derive(Parser)]
#[command(about = "Sustained event ingestion with journeys kept up to date, on SQLite and PostgreSQL")]
struct Cli {
    /// The release binary.
    #[arg(long, default_value = "target/release/handoff")]
    bin: PathBuf,
    /// Concurrent posting clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Events per batch (the API allows up to 100).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Journeys per batch (events per journey = batch / journeys).
    #[arg(long, default_value_t = 10)]
    journeys: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Unmeasured warm-up seconds.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// PostgreSQL server URL (a fresh database is created on it); `none` skips PostgreSQL.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg: String,
}

const TOKEN: &str = "bench-operator-token-0123456789";

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(bin: &Path, dir: &Path, db: Option<&str>) -> Server {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18_090);
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env("HANDOFF_LISTEN", format!("127.0.0.1:{port}"))
        .env("HANDOFF_DATA_DIR", dir)
        .env("HANDOFF_ORIGIN", format!("http://localhost:{port}"))
        .env("HANDOFF_OPERATOR_TOKEN", TOKEN)
        .env("HANDOFF_EVENTS_PER_MINUTE", "100000000")
        .env("HANDOFF_LOGIN_START_PER_MINUTE", "100000000")
        .env("HANDOFF_LOGIN_START_PER_IDENTIFIER", "100000000")
        .env("HANDOFF_REGISTRATION_START_PER_MINUTE", "100000000")
        .env("HANDOFF_REGISTRATION_START_PER_IDENTIFIER", "100000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(db) = db {
        cmd.env("HANDOFF_DATABASE_URL", db);
    }
    let child = cmd.spawn().expect("start handoff");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..400 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, base }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `)` of the command name: state is field 3; utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // `rest` starts at field 3, so field n is at index n - 3. Clock ticks are 100 per second here.
    (ticks(14 - 3) + ticks(15 - 3)) / 100.0
}

const NAMES: &[&str] = &[
    "identifier.submitted",
    "ceremony.started",
    "page.hidden",
    "page.visible",
    "webauthn.completed",
    "qr.shown",
    "desktop.callback_received",
    "webauthn.failed",
    "fallback.chosen",
    "mobile.opened",
];

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// One batch body: `journeys` fresh journeys, events spread evenly, every event with an id.
fn batch_body(batch: usize, journeys: usize, seq: u64) -> (String, Vec<String>) {
    let ids: Vec<String> = (0..journeys.max(1)).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let now = now_ms();
    let mut body = String::with_capacity(batch * 220);
    body.push_str("{\"events\":[");
    for i in 0..batch {
        let journey = &ids[i % ids.len()];
        let name = NAMES[(i / ids.len()) % NAMES.len()];
        let attrs = if name == "webauthn.failed" {
            r#"{"errorName":"NotAllowedError","elapsedMs":4200}"#
        } else {
            r#"{"elapsedMs":850,"mediation":"optional"}"#
        };
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"eventId":"b{seq}-{i}","journeyId":"{journey}","name":"{name}","device":"desktop","flow":"passkey-local","ts":{},"attrs":{attrs}}}"#,
            now + i as i64
        ));
    }
    body.push_str("]}");
    (body, ids)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct RunResult {
    events_per_s: f64,
    batches: u64,
    latency: Vec<f64>,
    lag: Vec<f64>,
    lag_misses: u64,
    cpu_ms_per_1000: f64,
    checked: usize,
    check_failures: usize,
}

async fn run(cli: &Cli, server: &Server) -> RunResult {
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client");
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let seq = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..cli.concurrency {
        let (http, base) = (http.clone(), server.base.clone());
        let (measuring, stop, acked, seq) = (measuring.clone(), stop.clone(), acked.clone(), seq.clone());
        let (batch, journeys) = (cli.batch, cli.journeys);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut sample_journeys = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (body, ids) = batch_body(batch, journeys, seq.fetch_add(1, Ordering::Relaxed));
                let t = Instant::now();
                let sent = http
                    .post(format!("{base}/api/v1/events"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let ok = matches!(&sent, Ok(r) if r.status() == 202);
                if let Ok(r) = sent {
                    let _ = r.bytes().await;
                }
                if ok && measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                    acked.fetch_add(1, Ordering::Relaxed);
                    latencies.push(t.elapsed().as_secs_f64() * 1e3);
                    if sample_journeys.len() < 5 {
                        sample_journeys.push(ids[0].clone());
                    }
                }
            }
            (latencies, sample_journeys)
        }));
    }
    // The lag prober.
    let prober = {
        let (http, base, measuring, stop) = (http.clone(), server.base.clone(), measuring.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut lag, mut misses) = (Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                let journey = uuid::Uuid::new_v4().to_string();
                let body = format!(
                    r#"{{"events":[{{"journeyId":"{journey}","name":"identifier.submitted","device":"desktop","ts":{}}}]}}"#,
                    now_ms()
                );
                let t = Instant::now();
                let Ok(r) = http
                    .post(format!("{base}/api/v1/events"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                else {
                    continue;
                };
                if r.status() != 202 {
                    continue;
                }
                let read = http.get(format!("{base}/api/v1/journeys/{journey}")).bearer_auth(TOKEN).send().await;
                let shows = match read {
                    Ok(r) if r.status() == 200 => {
                        r.json::<Value>().await.is_ok_and(|j| j["events"].as_array().is_some_and(|e| e.len() == 1))
                    }
                    _ => false,
                };
                if shows {
                    lag.push(t.elapsed().as_secs_f64() * 1e3);
                } else {
                    misses += 1;
                }
            }
            (lag, misses)
        })
    };
    tokio::time::sleep(Duration::from_secs(cli.warmup)).await;
    let pid = server.child.id();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(cli.duration)).await;
    stop.store(true, Ordering::Relaxed);
    let window = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let mut latency = Vec::new();
    let mut samples = Vec::new();
    for w in workers {
        let (l, s) = w.await.expect("worker");
        latency.extend(l);
        samples.extend(s);
    }
    let (mut lag, lag_misses) = prober.await.expect("prober");
    latency.sort_by(f64::total_cmp);
    lag.sort_by(f64::total_cmp);
    let batches = acked.load(Ordering::Relaxed);
    let events = batches as f64 * cli.batch as f64;
    // Stitching kept up: sampled journeys hold every event sent to them.
    let per_journey = cli.batch / cli.journeys.max(1);
    let mut check_failures = 0;
    for j in &samples {
        let read = http.get(format!("{}/api/v1/journeys/{j}", server.base)).bearer_auth(TOKEN).send().await;
        let n = match read {
            Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["events"].as_array().map(Vec::len)).unwrap_or(0),
            Err(_) => 0,
        };
        if n != per_journey {
            check_failures += 1;
        }
    }
    RunResult {
        events_per_s: events / window,
        batches,
        latency,
        lag,
        lag_misses,
        cpu_ms_per_1000: cpu * 1e3 / (events / 1000.0).max(1.0),
        checked: samples.len(),
        check_failures,
    }
}

fn report(name: &str, r: &RunResult) {
    println!(
        "| {name} | {:.0} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms ({} probes, {} missed) | {:.1} ms | {}/{} |",
        r.events_per_s,
        r.batches,
        pct(&r.latency, 0.5),
        pct(&r.latency, 0.99),
        pct(&r.lag, 0.5),
        pct(&r.lag, 0.99),
        r.lag.len(),
        r.lag_misses,
        r.cpu_ms_per_1000,
        r.checked - r.check_failures,
        r.checked,
    );
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let dir = std::env::temp_dir().join(format!("handoff-bench-ingest-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    eprintln!(
        "ingesting: {} clients x batches of {} events over {} journeys, {} s warm-up + {} s measured",
        cli.concurrency, cli.batch, cli.journeys, cli.warmup, cli.duration
    );
    println!(
        "| backend | events/s | batches | batch p50 | batch p99 | lag p50 | lag p99 | server CPU / 1,000 events | journeys complete |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    {
        let server = start(&cli.bin, &dir.join("sqlite"), None).await;
        let r = run(&cli, &server).await;
        report("SQLite (WAL)", &r);
    }
    if cli.pg != "none" {
        let db_name = format!("handoff_bench_ingest_{}", std::process::id());
        let ok = Command::new("psql").arg(&cli.pg).arg("-qc").arg(format!("CREATE DATABASE {db_name}")).status();
        if ok.map(|s| s.success()).unwrap_or(false) {
            let url = format!("{}/{db_name}", cli.pg.rsplit_once('/').map(|(a, _)| a).unwrap_or(&cli.pg));
            {
                let server = start(&cli.bin, &dir.join("pg"), Some(&url)).await;
                let r = run(&cli, &server).await;
                report("PostgreSQL", &r);
            }
            let _ =
                Command::new("psql").arg(&cli.pg).arg("-qc").arg(format!("DROP DATABASE IF EXISTS {db_name}")).status();
        } else {
            eprintln!("PostgreSQL skipped: cannot create a database at {}", cli.pg);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
