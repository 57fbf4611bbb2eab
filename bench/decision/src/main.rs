//! Decision latency for issue #3: `decide()` in-process and `POST /login/start` over HTTP
//! (real server on loopback, SQLite), for a user with 1 passkey and one with 20, and for
//! an unknown identifier. Prints a Markdown table.
//!
//! Run: `cargo run --release -p handoff-bench-decision`

use std::time::{Duration, Instant};

use handoff_core::clock::now_ms;
use handoff_core::device::{DeviceInfo, FormFactor};
use handoff_core::domain::{CredentialId, Identifier};
use handoff_core::intelligence::{ClientSignals, CredentialFacts, DecisionRules, FailureHistory, decide};
use handoff_core::provider::ProviderCatalog;
use handoff_core::storage::Accounts;
use handoff_server::Application;
use handoff_server::config::RawConfig;
use serde_json::{Value, json};

const WINDOWS_CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summarise(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Registers `identifier` over HTTP with a software authenticator (made "on a phone").
async fn register(http: &reqwest::Client, base: &str, origin: &url::Url, identifier: &str) {
    let start: Value = http
        .post(format!("{base}/api/v1/passkeys/registration/start"))
        .json(&json!({"identifier": identifier}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("registration start")
        .json()
        .await
        .expect("json");
    let mut key = handoff_tests::SoftKey::with_aaguid(origin, [0; 16]);
    let mut credential = key.create(&start["publicKey"]).await;
    credential["response"]["transports"] = json!(["hybrid", "internal"]);
    http.post(format!("{base}/api/v1/passkeys/registration/finish"))
        .header("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1")
        .json(&json!({"ceremonyId": start["ceremonyId"], "credential": credential}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("registration finish");
}

async fn http_latency(http: &reqwest::Client, base: &str, identifier: &str, n: usize) -> (f64, f64, String) {
    let body = json!({"identifier": identifier, "client": {"capabilities": {"hybridTransport": true}}});
    let mut samples = Vec::with_capacity(n);
    let mut verdict = String::new();
    for i in 0..n + 50 {
        let t = Instant::now();
        let resp: Value = http
            .post(format!("{base}/api/v1/login/start"))
            .header("user-agent", WINDOWS_CHROME)
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("login start")
            .json()
            .await
            .expect("json");
        if i >= 50 {
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        verdict = resp["decision"]["verdict"].as_str().unwrap_or_default().to_owned();
    }
    let (p50, p99) = summarise(samples);
    (p50, p99, verdict)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let db_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let raw = RawConfig {
        data_dir: Some(dir.path().to_path_buf()),
        database_url: Some(db_url.clone()),
        origin: Some(vec![format!("http://localhost:{port}")]),
        operator_token: Some("bench-operator-token-0123456789".into()),
        ..RawConfig::default()
    };
    let app = Application::build_on(raw.into_settings().expect("settings"), listener).await.expect("app");
    tokio::spawn(app.run_until(std::future::pending()));
    let base = format!("http://127.0.0.1:{port}");
    let origin = url::Url::parse(&format!("http://localhost:{port}")).expect("origin");
    let http = reqwest::Client::new();
    register(&http, &base, &origin, "one@example.com").await;
    register(&http, &base, &origin, "twenty@example.com").await;

    // Give "twenty" 19 more passkeys with varied providers and devices (copies of the real one).
    let db = handoff_store::Database::connect(&db_url).await.expect("db");
    let (account, passkeys) = db
        .find_with_passkeys(&Identifier::parse("twenty@example.com").expect("id"))
        .await
        .expect("query")
        .expect("account");
    let template = passkeys[0].clone();
    let devices = [
        ("macOS", "Safari", FormFactor::Desktop),
        ("Windows", "Edge", FormFactor::Desktop),
        ("Android", "Chrome", FormFactor::Phone),
        ("iOS", "Safari", FormFactor::Phone),
    ];
    for i in 1..20u8 {
        let mut p = template.clone();
        p.credential_id = CredentialId::from_bytes(vec![i; 16]);
        p.credential.cred_id = p.credential_id.as_bytes().to_vec().into();
        let (os, browser, ff) = devices[usize::from(i) % devices.len()];
        p.created_on = DeviceInfo { os: os.into(), browser: browser.into(), form_factor: ff };
        p.aaguid = match i % 4 {
            0 => "fbfc3007-154e-4ecc-8c0b-6e020557d7bd",
            1 => "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4",
            2 => "08987058-cadc-4b81-b6e1-30de50dcbe96",
            _ => "bada5566-a7aa-401f-bd96-45619a55120d",
        }
        .parse()
        .expect("aaguid");
        p.provider = ProviderCatalog::built_in().lookup(&p.aaguid).name;
        db.add_passkey(&p, None).await.expect("add passkey");
    }
    let (_, twenty) = db.find_with_passkeys(&account.identifier).await.expect("query").expect("account");
    assert_eq!(twenty.len(), 20);

    // In-process: the engine alone, on the 20 passkeys.
    let catalog = ProviderCatalog::built_in();
    let facts: Vec<CredentialFacts> = twenty.iter().map(|p| CredentialFacts::of(p, &catalog)).collect();
    let client = ClientSignals {
        device: DeviceInfo { os: "Windows".into(), browser: "Chrome".into(), form_factor: FormFactor::Desktop },
        hybrid_transport: Some(true),
        ..ClientSignals::unknown()
    };
    let rules = DecisionRules::default();
    let now = now_ms();
    let batch = 100;
    let mut samples = Vec::new();
    let mut verdict = None;
    for _ in 0..2000 {
        let t = Instant::now();
        for _ in 0..batch {
            verdict = Some(
                std::hint::black_box(decide(
                    "twenty@example.com",
                    &facts,
                    &client,
                    FailureHistory::default(),
                    &rules,
                    now,
                ))
                .decision
                .verdict,
            );
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6 / f64::from(batch));
    }
    let (in_p50, in_p99) = summarise(samples);

    let n = 2000;
    let (one_p50, one_p99, one_v) = http_latency(&http, &base, "one@example.com", n).await;
    let (tw_p50, tw_p99, tw_v) = http_latency(&http, &base, "twenty@example.com", n).await;
    let (un_p50, un_p99, un_v) = http_latency(&http, &base, "nobody@example.com", n).await;
    tokio::time::sleep(Duration::from_millis(10)).await;

    println!("| measurement | p50 | p99 | verdict |");
    println!("|---|---|---|---|");
    println!(
        "| `decide()` in-process, 20 passkeys (per call, batches of {batch}, 2000 batches) | {in_p50:.2} µs | {in_p99:.2} µs | {verdict:?} |"
    );
    println!(
        "| `POST /login/start` over HTTP, 1 passkey ({n} sequential) | {one_p50:.3} ms | {one_p99:.3} ms | {one_v} |"
    );
    println!(
        "| `POST /login/start` over HTTP, 20 passkeys ({n} sequential) | {tw_p50:.3} ms | {tw_p99:.3} ms | {tw_v} |"
    );
    println!(
        "| `POST /login/start` over HTTP, unknown identifier ({n} sequential) | {un_p50:.3} ms | {un_p99:.3} ms | {un_v} |"
    );
}
