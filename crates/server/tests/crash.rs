//! An accepted event is durable: the real `handoff` binary is killed with SIGKILL while
//! clients stream event batches at it; after a restart on the same SQLite file, every
//! batch that got its 202 is there, event by event, and folded into its journey.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "crash-test-operator-token-0123";
const BATCH: usize = 50;

fn start(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("serve")
        .env("HANDOFF_LISTEN", format!("127.0.0.1:{port}"))
        .env("HANDOFF_DATA_DIR", dir)
        .env("HANDOFF_ORIGIN", format!("http://localhost:{port}"))
        .env("HANDOFF_OPERATOR_TOKEN", TOKEN)
        .env("HANDOFF_EVENTS_PER_MINUTE", "1000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the handoff binary starts")
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut server = start(dir.path(), port);
    wait_healthy(&http, &base).await;

    // Four clients stream batches (one journey each) until the server dies.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..4 {
        let (http, base, acked) = (http.clone(), base.clone(), acked.clone());
        clients.push(tokio::spawn(async move {
            for n in 0.. {
                let journey = uuid::Uuid::new_v4().to_string();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
                let events: Vec<Value> = (0..BATCH)
                    .map(|i| json!({"journeyId": journey, "eventId": format!("c{c}-b{n}-e{i}"), "name": if i == 0 { "identifier.submitted" } else { "page.visible" }, "device": "desktop", "ts": now + i as i64}))
                    .collect();
                match http.post(format!("{base}/api/v1/events")).json(&json!({"events": events})).send().await {
                    Ok(r) if r.status() == 202 => acked.lock().unwrap().push(journey),
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    server.wait().unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 20, "only {} batches were acknowledged before the kill", acked.len());

    let mut server = start(dir.path(), port);
    wait_healthy(&http, &base).await;
    for journey in &acked {
        let r = http.get(format!("{base}/api/v1/journeys/{journey}")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), 200, "acknowledged journey {journey} is missing after the crash");
        let j: Value = r.json().await.unwrap();
        assert_eq!(j["events"].as_array().unwrap().len(), BATCH, "journey {journey} lost events");
        assert_eq!(j["phases"][0]["name"], "identifier", "the journey row was committed with its events: {j}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
    eprintln!("{} acknowledged batches ({} events) all survived SIGKILL", acked.len(), acked.len() * BATCH);
}
