//! `handoff-loadgen`: drives complete passkey sign-ins against a server that speaks Handoff's
//! HTTP API (Handoff itself, or the Node peer in `bench/peer-node`).
//!
//! Every simulated user is a real software authenticator (`handoff_simulate::SoftKey`: the
//! `passkey` crate's WebAuthn client and CTAP2 authenticator with an in-memory credential
//! store, the same one the tests and the simulator sign with), so each sign-in is a genuine
//! ES256 assertion over a fresh server challenge — nothing is pre-computed or replayed. The setup phase registers the users (not measured); then `--concurrency` workers
//! run identifier-first sign-ins (login/start → sign → login/finish) in a closed loop for
//! `--warmup` + `--duration`. Only sign-ins that complete inside the measured window count.
//!
//! With `--server-pgid`, the loadgen also reads the CPU time (utime + stime) of every process
//! in that process group from `/proc/<pid>/stat` at the exact start and end of the measured
//! window, so the server's CPU per sign-in comes from the same window as the throughput.
//!
//! Prints one JSON object on stdout.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use handoff_simulate::SoftKey;
use serde_json::{Value, json};
use url::Url;

#[derive(Parser, Debug)]
#[command(version, about = "Closed-loop passkey sign-in load generator")]
struct Args {
    /// Base URL the requests go to, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: Url,
    /// WebAuthn origin the authenticators sign for (defaults to --url). Must be the server's
    /// configured origin, e.g. http://localhost:8080.
    #[arg(long)]
    origin: Option<Url>,
    /// Number of users (each with one passkey) registered in the setup phase.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Concurrent sign-in loops.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured window, e.g. 20s, 1500ms, 1m.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up before the window.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    warmup: Duration,
    /// Identifier prefix; users are PREFIX-<n>@bench.example (default: a random prefix, so
    /// repeated runs against one database do not collide).
    #[arg(long)]
    prefix: Option<String>,
    /// Process group whose CPU time is measured over the window (the server's).
    #[arg(long)]
    server_pgid: Option<u32>,
    /// Also measure the CPU time of every process with this command name over the window
    /// (e.g. `postgres`: the database server's own CPU, reported apart from the server's).
    #[arg(long)]
    db_comm: Option<String>,
    /// Clock ticks per second for /proc/<pid>/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (use ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

struct User {
    identifier: String,
    key: SoftKey,
}

struct Ctx {
    http: reqwest::Client,
    base: Url,
    origin: Url,
}

impl Ctx {
    async fn post(&self, path: &str, body: &Value) -> Result<(reqwest::StatusCode, bool, Value), String> {
        let url = self.base.join(path).map_err(|e| e.to_string())?;
        let resp = self.http.post(url).json(body).send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let cookie = resp.headers().get_all(reqwest::header::SET_COOKIE).iter().any(|v| {
            v.to_str()
                .map(|s| s.starts_with("handoff_session=") && !s.starts_with("handoff_session=;"))
                .unwrap_or(false)
        });
        let bytes = resp.bytes().await.map_err(|e| format!("{path}: {e}"))?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok((status, cookie, value))
    }

    async fn register(&self, user: &mut User) -> Result<(), String> {
        let (status, _, start) = self
            .post(
                "/api/v1/passkeys/registration/start",
                &json!({ "identifier": user.identifier, "displayName": user.identifier }),
            )
            .await?;
        if status != 200 {
            return Err(format!("registration/start: {status} {start}"));
        }
        let credential =
            user.key.create(&start["publicKey"]).await.map_err(|e| format!("registration: {e}: {start}"))?;
        let body = json!({ "ceremonyId": start["ceremonyId"], "credential": credential });
        let (status, cookie, finish) = self.post("/api/v1/passkeys/registration/finish", &body).await?;
        if status != 200 || !cookie {
            return Err(format!("registration/finish: {status} cookie={cookie} {finish}"));
        }
        Ok(())
    }

    /// One complete identifier-first sign-in.
    async fn sign_in(&self, user: &mut User) -> Result<(), String> {
        let (status, _, start) = self.post("/api/v1/login/start", &json!({ "identifier": user.identifier })).await?;
        if status != 200 {
            return Err(format!("login/start: {status} {start}"));
        }
        if start["publicKey"]["allowCredentials"].as_array().is_none_or(|c| c.is_empty()) {
            return Err(format!("login/start: empty allowCredentials for {}", user.identifier));
        }
        let credential = user.key.get(&start["publicKey"]).await.map_err(|e| format!("sign-in: {e}: {start}"))?;
        let body = json!({ "ceremonyId": start["ceremonyId"], "credential": credential });
        let (status, cookie, finish) = self.post("/api/v1/login/finish", &body).await?;
        if status != 200 || !cookie {
            return Err(format!("login/finish: {status} cookie={cookie} {finish}"));
        }
        Ok(())
    }
}

/// utime + stime, in clock ticks, summed over every process of a process group.
fn group_cpu_ticks(pgid: u32) -> u64 {
    let mut total = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Some((pgrp, ticks)) = proc_stat(pid)
            && pgrp == pgid
        {
            total += ticks;
        }
    }
    total
}

/// utime + stime, in clock ticks, summed over every process whose command name is `comm`.
fn comm_cpu_ticks(comm: &str) -> u64 {
    let mut total = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else { continue };
        if &text[open + 1..close] == comm {
            total += proc_stat(pid).map_or(0, |(_, t)| t);
        }
    }
    total
}

/// (pgrp, utime + stime) of one process, from /proc/<pid>/stat.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after the last ')' are fixed.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): pgrp is field 5, utime 14, stime 15.
    let pgrp = f.get(2)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((pgrp, utime + stime))
}

/// Busy clock ticks of the whole machine (all CPUs), from /proc/stat: everything but idle
/// and iowait. Tells how much else ran during the window (a build, another benchmark).
fn machine_busy_ticks() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else { return 0 };
    let Some(line) = text.lines().next() else { return 0 };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest counted in user already)
    v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, x)| x).sum()
}

fn self_cpu_ticks() -> u64 {
    proc_stat(std::process::id()).map_or(0, |(_, t)| t)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("handoff-loadgen: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(1) * 2)
        .tcp_nodelay(true)
        .user_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 handoff-loadgen")
        .build()
        .map_err(|e| e.to_string())?;
    let origin = args.origin.clone().unwrap_or_else(|| args.url.clone());
    let ctx = Arc::new(Ctx { http, base: args.url.clone(), origin });
    let prefix = args.prefix.clone().unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        format!("u{:x}{nanos:x}", std::process::id())
    });

    // Setup: register every user (not measured), a few at a time.
    let setup_started = Instant::now();
    let setup_workers = args.concurrency.clamp(1, 8);
    let mut slots: Vec<Vec<User>> = (0..setup_workers).map(|_| Vec::new()).collect();
    for i in 0..args.users {
        slots[i % setup_workers]
            .push(User { identifier: format!("{prefix}-{i}@bench.example"), key: SoftKey::new(&ctx.origin) });
    }
    let mut handles = Vec::new();
    for mut slot in slots {
        let ctx = ctx.clone();
        handles.push(tokio::spawn(async move {
            for user in &mut slot {
                ctx.register(user).await?;
            }
            Ok::<_, String>(slot)
        }));
    }
    let mut users = Vec::new();
    for h in handles {
        users.extend(h.await.map_err(|e| e.to_string())??);
    }
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    eprintln!("handoff-loadgen: registered {} users in {setup_seconds:.1}s", users.len());

    // Measured phase: closed loops, each over its own share of the users.
    let concurrency = args.concurrency.max(1);
    let mut shares: Vec<Vec<User>> = (0..concurrency).map(|_| Vec::new()).collect();
    for (i, u) in users.into_iter().enumerate() {
        shares[i % concurrency].push(u);
    }
    let started = Instant::now();
    let window_start = started + args.warmup;
    let window_end = window_start + args.duration;
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for share in shares.into_iter().filter(|s| !s.is_empty()) {
        let (ctx, stop, errors) = (ctx.clone(), stop.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut share = share;
            let mut latencies_us: Vec<u64> = Vec::with_capacity(1 << 14);
            let mut error_samples: Vec<String> = Vec::new();
            let mut next = 0;
            while !stop.load(Ordering::Relaxed) {
                let n = share.len();
                let user = &mut share[next % n];
                next += 1;
                let t0 = Instant::now();
                let result = ctx.sign_in(user).await;
                let t1 = Instant::now();
                if t1 < window_start || t1 > window_end {
                    continue;
                }
                match result {
                    Ok(()) => latencies_us.push((t1 - t0).as_micros() as u64),
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        if error_samples.len() < 3 {
                            error_samples.push(e);
                        }
                    }
                }
            }
            (latencies_us, error_samples)
        }));
    }

    tokio::time::sleep_until(window_start.into()).await;
    let cpu0 = args.server_pgid.map(group_cpu_ticks);
    let self0 = self_cpu_ticks();
    let db0 = args.db_comm.as_deref().map(comm_cpu_ticks);
    let machine0 = machine_busy_ticks();
    let t_start = Instant::now();
    tokio::time::sleep_until(window_end.into()).await;
    let cpu1 = args.server_pgid.map(group_cpu_ticks);
    let self1 = self_cpu_ticks();
    let db1 = args.db_comm.as_deref().map(comm_cpu_ticks);
    let machine1 = machine_busy_ticks();
    let seconds = t_start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);

    let mut all = Vec::new();
    let mut samples: HashMap<String, usize> = HashMap::new();
    for w in workers {
        let (lat, errs) = w.await.map_err(|e| e.to_string())?;
        all.extend(lat);
        for e in errs {
            *samples.entry(e).or_default() += 1;
        }
    }
    all.sort_unstable();
    let signins = all.len() as u64;
    let errors = errors.load(Ordering::Relaxed);
    for e in samples.keys().take(5) {
        eprintln!("handoff-loadgen: error sample: {e}");
    }
    let tick_ms = 1000.0 / args.clk_tck as f64;
    let mut out = json!({
        "signins": signins,
        "errors": errors,
        "seconds": round2(seconds),
        "perSecond": round2(signins as f64 / seconds),
        "p50Ms": round2(percentile(&all, 50.0)),
        "p90Ms": round2(percentile(&all, 90.0)),
        "p99Ms": round2(percentile(&all, 99.0)),
        "maxMs": round2(all.last().copied().unwrap_or(0) as f64 / 1000.0),
        "users": args.users,
        "concurrency": concurrency,
        "setupSeconds": round2(setup_seconds),
        "loadgenCpuMs": round2((self1 - self0) as f64 * tick_ms),
    });
    let db_ms = match (db0, db1) {
        (Some(a), Some(b)) => {
            let ms = b.saturating_sub(a) as f64 * tick_ms;
            out["dbCpuMs"] = json!(round2(ms));
            out["dbCpuMsPerSignin"] =
                json!(if signins > 0 { ((ms / signins as f64) * 1000.0).round() / 1000.0 } else { 0.0 });
            ms
        }
        _ => 0.0,
    };
    let machine_ms = machine1.saturating_sub(machine0) as f64 * tick_ms;
    out["machineBusyCores"] = json!(round2(machine_ms / 1000.0 / seconds));
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let ms = (b.saturating_sub(a)) as f64 * tick_ms;
        let others = machine_ms - ms - db_ms - (self1 - self0) as f64 * tick_ms;
        out["otherCpuCores"] = json!(round2((others / 1000.0 / seconds).max(0.0)));
        out["serverCpuMs"] = json!(round2(ms));
        out["serverCpuMsPerSignin"] =
            json!(if signins > 0 { ((ms / signins as f64) * 1000.0).round() / 1000.0 } else { 0.0 });
        out["serverCpuCores"] = json!(round2(ms / 1000.0 / seconds));
    }
    println!("{out}");
    if signins == 0 {
        return Err("no successful sign-in in the measured window".into());
    }
    Ok(())
}
