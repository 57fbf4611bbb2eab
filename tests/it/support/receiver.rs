//! A Standard Webhooks receiver for the webhook tests: `tests/webhooks-receiver/receiver.mjs`
//! run by Node, which verifies every delivery with the npm `standardwebhooks` package (an
//! implementation independent of ours) and keeps what it verified; and the `handoff`
//! binary run as a real process, for tests that kill it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The Node receiver, stopped when dropped.
pub struct Receiver {
    _child: Child,
    port: u16,
    http: Client,
}

impl Receiver {
    /// Starts a receiver on a free port.
    pub async fn start() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("webhooks-receiver");
        assert!(
            dir.join("node_modules/standardwebhooks").exists(),
            "the webhook receiver's packages are missing: run `npm ci --prefix tests/webhooks-receiver` \
             (scripts/test does)"
        );
        let mut child = Command::new("node")
            .arg("receiver.mjs")
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the receiver");
        let stdout = child.stdout.take().expect("receiver stdout");
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first).await.expect("receiver prints its port");
        let port = serde_json::from_str::<Value>(&first).expect("port line")["port"].as_u64().expect("port") as u16;
        Self { _child: child, port, http: Client::new() }
    }

    /// Where deliveries go.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Sets the secret (`whsec_…`), how many deliveries to fail before recovering, a delay.
    pub async fn control(&self, body: Value) {
        let url = format!("http://127.0.0.1:{}/control", self.port);
        assert!(self.http.post(url).json(&body).send().await.expect("control").status().is_success());
    }

    /// `{"verified": [{"id", "type", "body", …}], "rejected", "attempts", "failed"}`.
    pub async fn log(&self) -> Value {
        let url = format!("http://127.0.0.1:{}/log", self.port);
        self.http.get(url).send().await.expect("log").json().await.expect("log json")
    }

    /// The log once `done` holds (within `within`), or a panic naming `what`.
    pub async fn wait_for(&self, what: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log().await;
            if done(&log) {
                return log;
            }
            assert!(Instant::now() < deadline, "waited {within:?} for {what}; the receiver has {log:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The verified deliveries' `(webhook-id, type)`.
pub fn verified(log: &Value) -> Vec<(String, String)> {
    log["verified"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (v["id"].as_str().unwrap_or_default().to_owned(), v["type"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// The `handoff` binary the tests were built with (`HANDOFF_BIN` overrides).
pub fn handoff_bin() -> PathBuf {
    let bin = std::env::var_os("HANDOFF_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("test binary path");
        exe.parent().and_then(Path::parent).expect("target dir").join("handoff")
    });
    assert!(bin.exists(), "no handoff binary at {}: build it with `cargo build -p handoff-server`", bin.display());
    bin
}

/// `handoff serve` as a process of its own (killed when dropped).
pub struct Process {
    child: Child,
}

impl Process {
    /// Serves `database_url` on `port` with webhooks over loopback http allowed, quick
    /// retries and short leases; returns once it answers.
    pub async fn start(database_url: &str, port: u16, data_dir: &Path, operator_token: &str) -> Self {
        let child = Command::new(handoff_bin())
            .arg("serve")
            .env("HANDOFF_LISTEN", format!("127.0.0.1:{port}"))
            .env("HANDOFF_ORIGIN", format!("http://localhost:{port}"))
            .env("HANDOFF_RP_ID", "localhost")
            .env("HANDOFF_DATA_DIR", data_dir)
            .env("HANDOFF_DATABASE_URL", database_url)
            .env("HANDOFF_OPERATOR_TOKEN", operator_token)
            .env("HANDOFF_WEBHOOKS_ALLOW_INSECURE", "true")
            .env("HANDOFF_WEBHOOK_RETRY_BASE_MS", "100")
            // Leases of a killed worker end after 2 × 2 s + 5 s.
            .env("HANDOFF_WEBHOOK_TIMEOUT_SECONDS", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("handoff starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = format!("http://127.0.0.1:{port}/api/v1/openapi.json");
        while Client::new().get(&probe).send().await.is_err() {
            assert!(Instant::now() < deadline, "handoff did not answer on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child }
    }

    /// SIGKILL: no shutdown, no flush, nothing after the last commit.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL handoff");
    }
}

/// A free port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The body that subscribes `url` to `events`.
pub fn subscription(url: &str, events: &[&str]) -> Value {
    json!({"url": url, "events": events})
}
