//! QR approval benchmarks (issue #4), against release `handoff` processes this program
//! starts itself:
//!
//! * `capacity`: how many desktops can wait at once on one instance (open event streams,
//!   one per attempt) and what each costs in server RSS.
//! * `latency`: approval-to-desktop latency — the phone approves, the desktop's event
//!   stream delivers `approved` — on one instance (SQLite) and across two instances
//!   sharing PostgreSQL (phone on one, desktop on the other).
//!
//! Run through `bench/qr.sh`, which raises the file-descriptor limit first.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
struct Cli {
    /// The release binary.
    #[arg(long, default_value = "target/release/handoff")]
    bin: PathBuf,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Open N event streams on one instance and measure its RSS.
    Capacity {
        #[arg(long, default_value_t = 100_000)]
        waiters: usize,
        /// `http1`: one connection per desktop, as browsers connect directly. `http2`:
        /// streams multiplexed over few connections (cleartext HTTP/2 with prior
        /// knowledge), as a reverse proxy speaking HTTP/2 to Handoff delivers them.
        #[arg(long, value_enum, default_value_t = Protocol::Http1)]
        protocol: Protocol,
        /// With `http2`: event streams per connection (the server allows 200).
        #[arg(long, default_value_t = 100)]
        streams_per_connection: usize,
    },
    /// Approval-to-desktop latency on one instance (SQLite) and two (PostgreSQL).
    Latency {
        #[arg(long, default_value_t = 300)]
        samples: usize,
        /// PostgreSQL server URL (a fresh database is created on it).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        pg: String,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Protocol {
    Http1,
    Http2,
}

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18_080)
}

async fn start(bin: &PathBuf, dir: &std::path::Path, db: Option<&str>, origin: &str) -> Server {
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env("HANDOFF_LISTEN", format!("127.0.0.1:{port}"))
        .env("HANDOFF_DATA_DIR", dir)
        .env("HANDOFF_ORIGIN", origin)
        .env("HANDOFF_QR_CREATE_PER_MINUTE", "100000000")
        .env("HANDOFF_LOGIN_START_PER_MINUTE", "100000000")
        .env("HANDOFF_LOGIN_START_PER_IDENTIFIER", "100000000")
        .env("HANDOFF_REGISTRATION_START_PER_MINUTE", "100000000")
        .env("HANDOFF_REGISTRATION_START_PER_IDENTIFIER", "100000000")
        .env("HANDOFF_QR_APPROVE_PER_MINUTE", "100000000")
        .env("HANDOFF_QR_REAUTH_AFTER_SECONDS", "86400")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(db) = db {
        cmd.env("HANDOFF_DATABASE_URL", db);
    }
    let child = cmd.spawn().expect("start handoff");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, base }
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A signed-in phone: registers an account and keeps the session cookie.
async fn phone(base: &str, origin: &str) -> reqwest::Client {
    let http = reqwest::Client::builder().cookie_store(true).build().expect("client");
    let start: Value = http
        .post(format!("{base}/api/v1/passkeys/registration/start"))
        .json(&json!({"identifier": "bench-phone@example.com"}))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("json");
    let origin = url::Url::parse(origin).expect("origin");
    let created = handoff_tests::SoftKey::with_aaguid(&origin, [0; 16]).create(&start["publicKey"]).await;
    http.post(format!("{base}/api/v1/passkeys/registration/finish"))
        .json(&json!({"ceremonyId": start["ceremonyId"], "credential": created}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("finish");
    http
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// One approval: desktop on `desk`, phone on `ph`; returns ms from approve sent to `approved` seen.
async fn one_approval(desk: &str, ph: &str, phone: &reqwest::Client) -> f64 {
    let desktop = reqwest::Client::builder().cookie_store(true).build().expect("client");
    let qr: Value = desktop
        .post(format!("{desk}/api/v1/qr"))
        .json(&json!({}))
        .send()
        .await
        .expect("qr")
        .json()
        .await
        .expect("json");
    let id = qr["qrId"].as_str().expect("qrId").to_owned();
    let token = qr["url"].as_str().expect("url").rsplit('/').next().expect("token").to_owned();
    phone.post(format!("{ph}/api/v1/qr/claim")).json(&json!({"token": token})).send().await.expect("claim");
    let resp = desktop.get(format!("{desk}/api/v1/qr/{id}/events")).send().await.expect("events");
    let mut stream = resp.bytes_stream();
    // Wait for the current state (scanned) before approving.
    let mut seen = String::new();
    while !seen.contains("scanned") {
        let chunk = stream.next().await.expect("stream open").expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let t = Instant::now();
    let approve = phone
        .post(format!("{ph}/api/v1/qr/approve"))
        .json(&json!({"token": token, "matchCode": qr["matchCode"]}))
        .send();
    let wait = async {
        let mut seen = String::new();
        while !seen.contains("\"approved\"") {
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        t.elapsed().as_secs_f64() * 1000.0
    };
    let (_, ms) = tokio::join!(approve, wait);
    ms
}

async fn latency(bin: &PathBuf, samples: usize, pg: &str) {
    let dir = std::env::temp_dir().join(format!("handoff-bench-qr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let origin = "http://localhost:8443";
    let single = start(bin, &dir.join("a"), None, origin).await;
    let phone_a = phone(&single.base, origin).await;
    let mut one = Vec::new();
    for _ in 0..samples {
        one.push(one_approval(&single.base, &single.base, &phone_a).await);
    }
    drop(single);

    let db_name = format!("handoff_bench_qr_{}", std::process::id());
    let admin = reqwest::Url::parse(pg).expect("pg url");
    let create = Command::new("psql").arg(pg).arg("-qc").arg(format!("CREATE DATABASE {db_name}")).status();
    assert!(create.map(|s| s.success()).unwrap_or(false), "psql CREATE DATABASE failed");
    let mut db_url = admin.clone();
    db_url.set_path(&db_name);
    let a = start(bin, &dir.join("pa"), Some(db_url.as_str()), origin).await;
    let b = start(bin, &dir.join("pb"), Some(db_url.as_str()), origin).await;
    let phone_b = phone(&b.base, origin).await;
    let mut two = Vec::new();
    for _ in 0..samples {
        two.push(one_approval(&a.base, &b.base, &phone_b).await);
    }
    drop(a);
    drop(b);
    let _ = Command::new("psql").arg(pg).arg("-qc").arg(format!("DROP DATABASE IF EXISTS {db_name}")).status();
    one.sort_by(f64::total_cmp);
    two.sort_by(f64::total_cmp);
    println!("| setup | samples | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    for (name, v) in [
        ("one instance, SQLite (in-process watch channel)", &one),
        ("two instances, PostgreSQL LISTEN/NOTIFY (phone on B, desktop on A)", &two),
    ] {
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            v.len(),
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            v[v.len() - 1]
        );
    }
}

/// Open event streams, kept so that they stay open.
enum Held {
    Http1(Vec<tokio::net::TcpStream>),
    Http2(Vec<h2::RecvStream>),
}

impl Held {
    fn len(&self) -> usize {
        match self {
            Self::Http1(v) => v.len(),
            Self::Http2(v) => v.len(),
        }
    }
}

fn progress(open: usize, t: Instant, pid: u32) {
    if open.is_multiple_of(10_000) {
        eprintln!(
            "{open} streams open ({:.0}/s), server RSS {} MiB",
            open as f64 / t.elapsed().as_secs_f64(),
            rss_kib(pid) / 1024
        );
    }
}

/// One HTTP/1.1 connection per desktop, from several loopback source addresses (each has
/// ~28k ephemeral ports).
async fn open_http1(port: u16, attempts: &[(String, String)], pid: u32, t: Instant) -> Vec<tokio::net::TcpStream> {
    let mut streams = Vec::with_capacity(attempts.len());
    let mut opened = futures_util::stream::iter(attempts.iter().enumerate())
        .map(|(i, (id, cookie))| async move {
            let src: std::net::IpAddr = format!("127.0.0.{}", 2 + i % 8).parse().expect("ip");
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.bind(std::net::SocketAddr::new(src, 0)).expect("bind");
            let mut s = socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await.expect("connect");
            let req = format!("GET /api/v1/qr/{id}/events HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n");
            s.write_all(req.as_bytes()).await.expect("write");
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.expect("read");
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(head.starts_with("HTTP/1.1 200"), "stream refused: {head}");
            s
        })
        .buffer_unordered(256);
    while let Some(s) = opened.next().await {
        streams.push(s);
        progress(streams.len(), t, pid);
    }
    streams
}

/// Event streams multiplexed over cleartext HTTP/2 connections, `per_connection` each.
async fn open_http2(
    port: u16,
    attempts: &[(String, String)],
    per_connection: usize,
    pid: u32,
    t: Instant,
) -> Vec<h2::RecvStream> {
    let mut bodies = Vec::with_capacity(attempts.len());
    let mut connections = futures_util::stream::iter(attempts.chunks(per_connection.max(1)))
        .map(|chunk| async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake (h2c)");
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    eprintln!("HTTP/2 connection ended: {e}");
                }
            });
            let mut pending = Vec::with_capacity(chunk.len());
            for (id, cookie) in chunk {
                let mut ready = client.clone().ready().await.expect("stream capacity");
                let req = http::Request::get(format!("http://127.0.0.1:{port}/api/v1/qr/{id}/events"))
                    .header("cookie", cookie.as_str())
                    .header("accept", "text/event-stream")
                    .body(())
                    .expect("request");
                let (response, _) = ready.send_request(req, true).expect("send");
                pending.push(response);
            }
            let mut held = Vec::with_capacity(pending.len());
            for response in pending {
                let response = response.await.expect("response");
                assert_eq!(response.status(), 200, "stream refused");
                held.push(response.into_body());
            }
            held
        })
        .buffer_unordered(8);
    while let Some(held) = connections.next().await {
        for body in held {
            bodies.push(body);
            progress(bodies.len(), t, pid);
        }
    }
    bodies
}

async fn capacity(bin: &PathBuf, waiters: usize, protocol: Protocol, streams_per_connection: usize) {
    let dir = std::env::temp_dir().join(format!("handoff-bench-qrcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let server = start(bin, &dir, None, "http://localhost:8443").await;
    let pid = server.child.id();
    let port: u16 = server.base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let baseline = rss_kib(pid);
    // Create the attempts (each desktop needs its own attempt and cookie).
    let http = reqwest::Client::new();
    let t = Instant::now();
    let mut attempts: Vec<(String, String)> = Vec::with_capacity(waiters);
    let mut batch = futures_util::stream::iter(0..waiters)
        .map(|_| {
            let http = http.clone();
            let base = server.base.clone();
            async move {
                let resp = http.post(format!("{base}/api/v1/qr")).json(&json!({})).send().await.expect("create");
                let cookie = resp
                    .headers()
                    .get("set-cookie")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .expect("cookie")
                    .to_owned();
                let body: Value = resp.json().await.expect("json");
                (body["qrId"].as_str().expect("id").to_owned(), cookie)
            }
        })
        .buffer_unordered(32);
    while let Some(a) = batch.next().await {
        attempts.push(a);
        if attempts.len().is_multiple_of(10_000) {
            eprintln!(
                "created {} attempts ({:.0}/s)",
                attempts.len(),
                attempts.len() as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    let after_create = rss_kib(pid);
    let t = Instant::now();
    let held = match protocol {
        Protocol::Http1 => Held::Http1(open_http1(port, &attempts, pid, t).await),
        Protocol::Http2 => Held::Http2(open_http2(port, &attempts, streams_per_connection, pid, t).await),
    };
    let open = held.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let with_streams = rss_kib(pid);
    // What the waiting costs the server when nothing happens (heartbeats only).
    let cpu_before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cores = (cpu_ticks(pid) - cpu_before) as f64 / 100.0 / 10.0;
    // And whether an approval still reaches its desktop at once while they all wait.
    let origin = "http://localhost:8443";
    let handset = phone(&server.base, origin).await;
    let mut approvals = Vec::with_capacity(100);
    for _ in 0..100 {
        approvals.push(one_approval(&server.base, &server.base, &handset).await);
    }
    approvals.sort_by(f64::total_cmp);
    let per = (with_streams.saturating_sub(after_create)) as f64 * 1024.0 / open as f64;
    println!(
        "| protocol | waiting desktops (open event streams) | server RSS before | after creating attempts | with all streams open | per open stream | server CPU while they wait | approval-to-desktop p50 / p99 meanwhile (100) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let how = match protocol {
        Protocol::Http1 => "HTTP/1.1, one connection each".to_owned(),
        Protocol::Http2 => format!("HTTP/2 (h2c), {streams_per_connection} per connection"),
    };
    println!(
        "| {how} | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.2} KiB | {:.3} cores | {:.2} / {:.2} ms |",
        open,
        baseline as f64 / 1024.0,
        after_create as f64 / 1024.0,
        with_streams as f64 / 1024.0,
        per / 1024.0,
        idle_cores,
        pct(&approvals, 0.5),
        pct(&approvals, 0.99),
    );
    drop(held);
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match cli.what {
        What::Capacity { waiters, protocol, streams_per_connection } => {
            capacity(&cli.bin, waiters, protocol, streams_per_connection).await
        }
        What::Latency { samples, pg } => latency(&cli.bin, samples, &pg).await,
    }
}
