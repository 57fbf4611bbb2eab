//! The server under test.

use std::time::Duration;

use handoff_server::Application;
use handoff_server::config::RawConfig;
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use url::Url;

/// Which database the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// PostgreSQL base URL for tests, or `None` (after saying so) when unset. Panics when
/// `HANDOFF_REQUIRE_POSTGRES=1` demands PostgreSQL and it is missing.
pub fn postgres_url() -> Option<String> {
    match std::env::var("HANDOFF_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("HANDOFF_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "HANDOFF_REQUIRE_POSTGRES=1 but HANDOFF_TEST_POSTGRES_URL is not set"
            );
            eprintln!("SKIPPED: PostgreSQL test (HANDOFF_TEST_POSTGRES_URL is not set)");
            None
        }
    }
}

/// A fresh database URL for one test.
pub async fn fresh_database(backend: Backend, dir: &tempfile::TempDir) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("handoff.db").display()),
        Backend::Postgres => {
            let base = postgres_url().expect("postgres url");
            let name = format!("handoff_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = Url::parse(&base).expect("postgres url parses");
            let pool = sqlx::postgres::PgPool::connect(admin.as_str()).await.expect("connect to test postgres");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.expect("create database");
            pool.close().await;
            admin.set_path(&name);
            admin.to_string()
        }
    }
}

/// Options for a test server.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Ceremony lifetime in seconds (default 300).
    pub ceremony_ttl_seconds: Option<u64>,
    /// Use this database instead of a fresh one (to share PostgreSQL between instances).
    pub database_url: Option<String>,
    /// Use an https origin (for cookie flags).
    pub https_origin: bool,
    /// Extra https origins on these hosts, at the test port (e.g. `https://sub.localhost:{port}`).
    pub extra_origin_hosts: Vec<String>,
    /// The public origin, when instances sit behind one address (a load balancer).
    pub public_origin: Option<String>,
    /// Failed attempts in one browser before passkeys are paused there (default 2).
    pub failures_before_fallback: Option<u32>,
    /// The server's clock (default: a new adjustable one); instances that share a database
    /// share one to count in the same rate-limit windows.
    pub clock: Option<handoff_core::clock::Clock>,
    /// Any other settings (QR lifetimes and limits, …); the fields above win.
    pub extra: RawConfig,
}

/// A running server and an HTTP client with a cookie jar.
pub struct TestApp {
    pub base: Url,
    pub origin: Url,
    pub port: u16,
    pub client: Client,
    pub database_url: String,
    /// The server's clock: the system's, which a test moves forward with `advance` instead
    /// of sleeping through an expiry or a time window.
    pub clock: handoff_core::clock::Clock,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, TestOptions::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: TestOptions) -> Self {
        handoff_server::telemetry::init();
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match &options.database_url {
            Some(url) => url.clone(),
            None => fresh_database(backend, &dir).await,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let port = listener.local_addr().expect("addr").port();
        let scheme = if options.https_origin { "https" } else { "http" };
        let origin = match &options.public_origin {
            Some(o) => Url::parse(o).expect("public origin"),
            None => Url::parse(&format!("{scheme}://localhost:{port}")).expect("origin"),
        };
        let mut origins = vec![origin.to_string().trim_end_matches('/').to_owned()];
        for host in &options.extra_origin_hosts {
            origins.push(format!("https://{host}:{port}"));
        }
        let raw = RawConfig {
            listen: Some(format!("127.0.0.1:{port}")),
            data_dir: Some(dir.path().to_path_buf()),
            database_url: Some(database_url.clone()),
            rp_id: Some("localhost".into()),
            rp_name: Some("Handoff tests".into()),
            origin: Some(origins),
            operator_token: Some("test-operator-token-0123456789".into()),
            aaguid_list: Some(shared_aaguid_list()),
            ceremony_ttl_seconds: options.ceremony_ttl_seconds,
            failures_before_fallback: options.failures_before_fallback,
            ..options.extra.clone()
        };
        let mut settings = raw.into_settings().expect("test settings are valid");
        let clock = options.clock.clone().unwrap_or_else(handoff_core::clock::Clock::adjustable);
        settings.clock = clock.clone();
        let app = Application::build_on(settings, listener).await.expect("application builds");
        tokio::spawn(app.run_until(std::future::pending()));
        let client = Client::builder().cookie_store(true).timeout(Duration::from_secs(30)).build().expect("client");
        let base = Url::parse(&format!("http://127.0.0.1:{port}")).expect("base");
        Self { base, origin, port, client, database_url, clock, _dir: dir }
    }

    /// Moves the server's clock to just after the start of the next minute, so a test that
    /// counts up to a per-minute limit does not straddle two windows.
    pub fn at_the_start_of_a_minute(&self) {
        let into = self.clock.now_ms().rem_euclid(60_000);
        self.clock.advance(Duration::from_millis(u64::try_from(60_000 - into).unwrap_or(0) + 20));
    }

    /// A second client (another browser) against the same server.
    pub fn new_browser(&self) -> Client {
        Client::builder().cookie_store(true).build().expect("client")
    }

    pub fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("url")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client.delete(self.url(path)).send().await.expect("request")
    }

    pub async fn registration_start(&self, identifier: &str) -> Response {
        self.post("/api/v1/passkeys/registration/start", &json!({ "identifier": identifier })).await
    }

    pub async fn registration_finish(&self, ceremony_id: &str, credential: &Value) -> Response {
        self.post(
            "/api/v1/passkeys/registration/finish",
            &json!({ "ceremonyId": ceremony_id, "credential": credential }),
        )
        .await
    }

    pub async fn login_start(&self, identifier: Option<&str>) -> Response {
        let body = match identifier {
            Some(id) => json!({ "identifier": id, "client": { "userAgent": "handoff-tests" } }),
            None => json!({}),
        };
        self.post("/api/v1/login/start", &body).await
    }

    pub async fn login_finish(&self, ceremony_id: &str, credential: &Value) -> Response {
        self.post("/api/v1/login/finish", &json!({ "ceremonyId": ceremony_id, "credential": credential })).await
    }

    /// Signs up `identifier` with `key`; returns the finish response body.
    pub async fn sign_up(&self, key: &mut crate::support::SoftKey, identifier: &str) -> Value {
        let start = json_ok(self.registration_start(identifier).await).await;
        let credential = key.create(&start["publicKey"]).await;
        json_ok(self.registration_finish(start["ceremonyId"].as_str().expect("ceremonyId"), &credential).await).await
    }

    /// Signs up `identifier` in another browser; returns that browser, signed in.
    pub async fn sign_up_in(&self, browser: &Client, key: &mut crate::support::SoftKey, identifier: &str) -> Client {
        let start = json_ok(
            browser
                .post(self.url("/api/v1/passkeys/registration/start"))
                .json(&json!({ "identifier": identifier }))
                .send()
                .await
                .expect("request"),
        )
        .await;
        let credential = key.create(&start["publicKey"]).await;
        let finish = browser
            .post(self.url("/api/v1/passkeys/registration/finish"))
            .json(&json!({ "ceremonyId": start["ceremonyId"], "credential": credential }))
            .send()
            .await
            .expect("request");
        json_ok(finish).await;
        browser.clone()
    }

    /// Signs in identifier-first with `key`; returns the finish response.
    pub async fn sign_in(&self, key: &mut crate::support::SoftKey, identifier: &str) -> Response {
        let start = json_ok(self.login_start(Some(identifier)).await).await;
        let assertion = key.get(&start["publicKey"]).await;
        self.login_finish(start["ceremonyId"].as_str().expect("ceremonyId"), &assertion).await
    }
}

/// The community AAGUID list beside the project (`../shared/data/aaguid.json`).
pub fn shared_aaguid_list() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/aaguid.json")
}

/// Asserts a 200 and returns the JSON body.
pub async fn json_ok(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "expected 200, got {status}: {body}");
    body
}

/// Asserts an error status and code; returns the message.
pub async fn expect_error(response: Response, status: u16, code: &str) -> String {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!((got, body["error"]["code"].as_str().unwrap_or("<none>")), (status, code), "body: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "error without a message: {body}");
    message
}

/// The `Set-Cookie` value for `name`, if any.
pub fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The events of a journey once one named `last` is among them. Server events are handed
/// to the journal without waiting, so they are stored moments after the response; this
/// waits (up to 5 s) and then a beat more for any sent just before.
pub async fn settled_events(
    db: &handoff_store::Database,
    journey: handoff_core::domain::JourneyId,
    last: &str,
) -> Vec<handoff_core::storage::StoredEvent> {
    use handoff_core::storage::Journeys;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let events = db.events_of(journey).await.expect("events");
        if events.iter().any(|e| e.name == last) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return db.events_of(journey).await.expect("events");
        }
        assert!(std::time::Instant::now() < deadline, "no {last} event stored for journey {journey}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
