//! Handoff QR approval over HTTP: every transition and every attack of issue #4.

use std::time::{Duration, Instant};

use handoff_server::config::RawConfig;
use reqwest::Client;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::app::{expect_error, json_ok, settled_events};
use crate::support::{Backend, SoftKey, TestApp, TestOptions};

/// A desktop browser (its own cookie jar).
pub(crate) struct Desktop {
    pub(crate) http: Client,
}

/// A signed-in phone.
pub(crate) struct Phone {
    pub(crate) http: Client,
}

impl Desktop {
    pub(crate) fn new(app: &TestApp) -> Self {
        Self { http: app.new_browser() }
    }

    pub(crate) async fn create(&self, app: &TestApp) -> Value {
        let resp = self.http.post(app.url("/api/v1/qr")).json(&json!({})).send().await.unwrap();
        json_ok(resp).await
    }

    async fn status(&self, app: &TestApp, qr: &Value) -> reqwest::Response {
        self.http.get(app.url(&format!("/api/v1/qr/{}", qr["qrId"].as_str().unwrap()))).send().await.unwrap()
    }

    async fn state(&self, app: &TestApp, qr: &Value) -> String {
        json_ok(self.status(app, qr).await).await["state"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn redeem(&self, app: &TestApp, qr: &Value) -> reqwest::Response {
        self.http.post(app.url(&format!("/api/v1/qr/{}/redeem", qr["qrId"].as_str().unwrap()))).send().await.unwrap()
    }
}

pub(crate) fn token(qr: &Value) -> String {
    qr["url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned()
}

impl Phone {
    pub(crate) async fn signed_up(app: &TestApp, identifier: &str) -> Self {
        let http = app.new_browser();
        let mut key = SoftKey::new(&app.origin);
        let start = json_ok(
            http.post(app.url("/api/v1/passkeys/registration/start"))
                .json(&json!({"identifier": identifier}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let credential = key.create(&start["publicKey"]).await;
        let finish = http
            .post(app.url("/api/v1/passkeys/registration/finish"))
            .header("user-agent", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36")
            .json(&json!({"ceremonyId": start["ceremonyId"], "credential": credential}))
            .send()
            .await
            .unwrap();
        json_ok(finish).await;
        Self { http }
    }

    pub(crate) async fn post(&self, app: &TestApp, path: &str, body: Value) -> reqwest::Response {
        self.http.post(app.url(path)).json(&body).send().await.unwrap()
    }

    pub(crate) async fn claim(&self, app: &TestApp, qr: &Value) -> reqwest::Response {
        self.post(app, "/api/v1/qr/claim", json!({"token": token(qr)})).await
    }

    pub(crate) async fn approve(&self, app: &TestApp, qr: &Value, code: &str) -> reqwest::Response {
        self.post(app, "/api/v1/qr/approve", json!({"token": token(qr), "matchCode": code})).await
    }

    async fn deny(&self, app: &TestApp, qr: &Value) -> reqwest::Response {
        self.post(app, "/api/v1/qr/deny", json!({"token": token(qr)})).await
    }
}

fn wrong_code(claim: &Value, right: &str) -> String {
    claim["matchChoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .find(|c| c != right)
        .unwrap()
}

on_both_backends!(desktop_signs_in_after_phone_approves, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let phone = Phone::signed_up(&app, "ola@example.com").await;
    let desktop = Desktop::new(&app);
    let qr = desktop.create(&app).await;
    assert!(qr["url"].as_str().unwrap().starts_with(&format!("{}q/", app.origin)), "QR URL on our origin: {qr}");
    assert!(token(&qr).len() >= 43, "≥ 256-bit token");
    assert!(qr["svg"].as_str().unwrap().contains("<svg"));
    let code = qr["matchCode"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 2);
    assert_eq!(desktop.state(&app, &qr).await, "created");

    let claim = json_ok(phone.claim(&app, &qr).await).await;
    assert_eq!(claim["state"], "scanned");
    assert_eq!(claim["account"]["identifier"], "ola@example.com");
    assert_eq!(claim["requester"]["ip"], "127.0.0.1");
    assert!(claim["requester"]["requestedAt"].is_string());
    let choices: Vec<&str> = claim["matchChoices"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(choices.len(), 3);
    assert!(choices.contains(&code.as_str()));
    assert_eq!(claim["farApart"], false);
    assert_eq!(desktop.state(&app, &qr).await, "scanned");
    // The same phone reopening the page carries on.
    assert_eq!(json_ok(phone.claim(&app, &qr).await).await["matchChoices"], claim["matchChoices"]);

    let approved = json_ok(phone.approve(&app, &qr, &code).await).await;
    assert_eq!(approved["state"], "approved");
    let signed_in = json_ok(desktop.redeem(&app, &qr).await).await;
    assert_eq!(signed_in["identifier"], "ola@example.com");
    assert_eq!(signed_in["flow"], "qr-approval");
    let session = json_ok(desktop.http.get(app.url("/api/v1/session")).send().await.unwrap()).await;
    assert_eq!(session["identifier"], "ola@example.com");
    assert_eq!(desktop.state(&app, &qr).await, "redeemed");
    // Redeem twice: refused.
    expect_error(desktop.redeem(&app, &qr).await, 409, "qr-wrong-state").await;

    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let journey = handoff_core::domain::JourneyId::parse(qr["journeyId"].as_str().unwrap()).unwrap();
    let names: Vec<String> =
        settled_events(&db, journey, "session.established").await.into_iter().map(|e| e.name).collect();
    assert_eq!(names, vec!["qr.created", "qr.scanned", "qr.approved", "qr.redeemed", "session.established"]);
});

on_both_backends!(redemption_needs_this_desktops_cookie, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let phone = Phone::signed_up(&app, "pia@example.com").await;
    let desktop = Desktop::new(&app);
    let other = Desktop::new(&app);
    let qr = desktop.create(&app).await;
    let other_qr = other.create(&app).await;
    let code = qr["matchCode"].as_str().unwrap().to_owned();
    json_ok(phone.claim(&app, &qr).await).await;
    json_ok(phone.approve(&app, &qr, &code).await).await;
    // Without the cookie (another browser), and with another desktop's secret under this name.
    expect_error(other.redeem(&app, &qr).await, 403, "redeem-refused").await;
    expect_error(other.status(&app, &qr).await, 403, "redeem-refused").await;
    let id = qr["qrId"].as_str().unwrap();
    let cookie_name = format!("handoff_qr_{}", id.replace('-', ""));
    let stolen = app
        .new_browser()
        .post(app.url(&format!("/api/v1/qr/{id}/redeem")))
        .header("cookie", format!("{cookie_name}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
        .send()
        .await
        .unwrap();
    expect_error(stolen, 403, "redeem-refused").await;
    assert_eq!(desktop.state(&app, &qr).await, "approved", "failed redemptions change nothing");
    json_ok(desktop.redeem(&app, &qr).await).await;
    assert_eq!(other.state(&app, &other_qr).await, "created");
});

on_both_backends!(one_claim_one_approval, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let phone = Phone::signed_up(&app, "quin@example.com").await;
    let thief = Phone::signed_up(&app, "mallory@example.com").await;
    let desktop = Desktop::new(&app);
    let qr = desktop.create(&app).await;
    let code = qr["matchCode"].as_str().unwrap().to_owned();
    json_ok(phone.claim(&app, &qr).await).await;
    expect_error(thief.claim(&app, &qr).await, 409, "qr-already-scanned").await;
    expect_error(thief.approve(&app, &qr, &code).await, 409, "qr-already-scanned").await;
    json_ok(phone.approve(&app, &qr, &code).await).await;
    expect_error(phone.approve(&app, &qr, &code).await, 409, "qr-wrong-state").await;

    // Not signed in at all.
    let stranger = app.new_browser();
    let qr2 = desktop.create(&app).await;
    let resp = stranger.post(app.url("/api/v1/qr/claim")).json(&json!({"token": token(&qr2)})).send().await.unwrap();
    expect_error(resp, 401, "not-signed-in").await;
    let resp = stranger
        .post(app.url("/api/v1/qr/approve"))
        .json(&json!({"token": token(&qr2), "matchCode": "10"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "not-signed-in").await;
    // Unknown tokens and bad numbers are named.
    expect_error(phone.post(&app, "/api/v1/qr/claim", json!({"token": "nope"})).await, 404, "qr-not-found").await;
    json_ok(phone.claim(&app, &qr2).await).await;
    expect_error(phone.approve(&app, &qr2, "7").await, 400, "invalid-match-code").await;
});

on_both_backends!(wrong_number_and_deny_stop_the_attempt, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let phone = Phone::signed_up(&app, "rui@example.com").await;
    let desktop = Desktop::new(&app);
    let qr = desktop.create(&app).await;
    let code = qr["matchCode"].as_str().unwrap().to_owned();
    let claim = json_ok(phone.claim(&app, &qr).await).await;
    expect_error(phone.approve(&app, &qr, &wrong_code(&claim, &code)).await, 400, "wrong-number").await;
    assert_eq!(desktop.state(&app, &qr).await, "rejected");
    expect_error(phone.approve(&app, &qr, &code).await, 409, "qr-wrong-state").await;
    expect_error(desktop.redeem(&app, &qr).await, 409, "qr-wrong-state").await;

    let qr = desktop.create(&app).await;
    let code = qr["matchCode"].as_str().unwrap().to_owned();
    json_ok(phone.claim(&app, &qr).await).await;
    assert_eq!(json_ok(phone.deny(&app, &qr).await).await["state"], "denied");
    expect_error(phone.approve(&app, &qr, &code).await, 409, "qr-wrong-state").await;
    let status = json_ok(desktop.status(&app, &qr).await).await;
    assert_eq!(status["state"], "denied");
    assert_eq!(status["reason"], "denied-on-phone");
});

on_both_backends!(rotation_and_expiry, |backend| async move {
    let extra = RawConfig { qr_ttl_seconds: Some(2), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    let phone = Phone::signed_up(&app, "sam@example.com").await;
    let desktop = Desktop::new(&app);
    let qr = desktop.create(&app).await;
    let id = qr["qrId"].as_str().unwrap();
    let rotated = json_ok(desktop.http.post(app.url(&format!("/api/v1/qr/{id}/rotate"))).send().await.unwrap()).await;
    assert_eq!(rotated["qrId"], qr["qrId"]);
    assert_eq!(rotated["journeyId"], qr["journeyId"], "the attempt and its journey continue");
    assert_ne!(token(&rotated), token(&qr));
    expect_error(phone.claim(&app, &qr).await, 404, "qr-not-found").await;
    json_ok(phone.claim(&app, &rotated).await).await;
    // Rotation after a scan is refused.
    expect_error(
        desktop.http.post(app.url(&format!("/api/v1/qr/{id}/rotate"))).send().await.unwrap(),
        409,
        "qr-wrong-state",
    )
    .await;
    app.clock.advance(Duration::from_millis(2300));
    let code = rotated["matchCode"].as_str().unwrap().to_owned();
    expect_error(phone.approve(&app, &rotated, &code).await, 410, "qr-expired").await;
    assert_eq!(desktop.state(&app, &qr).await, "expired");
    expect_error(desktop.redeem(&app, &qr).await, 410, "qr-expired").await;
    // The janitor (each second) records the expiry, from the state it was in.
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let journey = handoff_core::domain::JourneyId::parse(qr["journeyId"].as_str().unwrap()).unwrap();
    let events = settled_events(&db, journey, "qr.expired").await;
    let expired = events.iter().find(|e| e.name == "qr.expired").expect("qr.expired recorded");
    assert_eq!(expired.attrs_value()["from"], "scanned");
});

on_both_backends!(approval_needs_a_fresh_verification, |backend| async move {
    let extra = RawConfig { qr_reauth_after_seconds: Some(1), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    let phone = Phone::signed_up(&app, "tom@example.com").await;
    let desktop = Desktop::new(&app);
    let qr = desktop.create(&app).await;
    json_ok(phone.claim(&app, &qr).await).await;
    app.clock.advance(Duration::from_millis(1200));
    let code = qr["matchCode"].as_str().unwrap();
    expect_error(phone.approve(&app, &qr, code).await, 401, "reauth-required").await;
    assert_eq!(desktop.state(&app, &qr).await, "scanned", "still waiting for a verified approval");
});

on_both_backends!(rate_limits_and_csrf, |backend| async move {
    let extra = RawConfig { qr_create_per_minute: Some(3), qr_approve_per_minute: Some(2), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    app.at_the_start_of_a_minute();
    let phone = Phone::signed_up(&app, "uma@example.com").await;
    let desktop = Desktop::new(&app);
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(desktop.create(&app).await);
    }
    let resp = desktop.http.post(app.url("/api/v1/qr")).json(&json!({})).send().await.unwrap();
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    expect_error(resp, 429, "rate-limited").await;

    // CSRF: a page on another origin cannot drive the phone's session.
    let evil = phone
        .http
        .post(app.url("/api/v1/qr/claim"))
        .header("origin", "https://evil.example")
        .json(&json!({"token": token(&codes[0])}))
        .send()
        .await
        .unwrap();
    expect_error(evil, 403, "cross-origin-request").await;
    let same = phone
        .http
        .post(app.url("/api/v1/qr/claim"))
        .header("origin", app.origin.as_str().trim_end_matches('/'))
        .json(&json!({"token": token(&codes[0])}))
        .send()
        .await
        .unwrap();
    json_ok(same).await;

    // Approvals per account: the third within a minute is refused.
    for qr in &codes[1..] {
        json_ok(phone.claim(&app, qr).await).await;
    }
    for qr in &codes[..2] {
        json_ok(phone.approve(&app, qr, qr["matchCode"].as_str().unwrap()).await).await;
    }
    let third = phone.approve(&app, &codes[2], codes[2]["matchCode"].as_str().unwrap()).await;
    assert!(third.headers().contains_key("retry-after"));
    expect_error(third, 429, "rate-limited").await;
});

on_both_backends!(desktop_learns_by_long_poll_and_events, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let phone = Phone::signed_up(&app, "vic@example.com").await;
    let desktop = Desktop::new(&app);
    let qr = desktop.create(&app).await;
    let id = qr["qrId"].as_str().unwrap().to_owned();

    // Server-sent events: the current state first.
    let mut sse = desktop.http.get(app.url(&format!("/api/v1/qr/{id}/events"))).send().await.unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let first = String::from_utf8(sse.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.contains("event: state") && first.contains("\"state\":\"created\""), "{first}");

    // Long-poll in parallel.
    let poll = {
        let http = desktop.http.clone();
        let url = app.url(&format!("/api/v1/qr/{id}?wait=10"));
        tokio::spawn(async move {
            let t = Instant::now();
            let body: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            (body, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let claimed_at = Instant::now();
    json_ok(phone.claim(&app, &qr).await).await;
    let (body, _) = poll.await.unwrap();
    assert_eq!(body["state"], "scanned");
    let mut seen = String::new();
    while !seen.contains("\"state\":\"scanned\"") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), sse.chunk())
            .await
            .expect("event within 5 s")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(claimed_at.elapsed() < Duration::from_secs(2), "change delivered promptly");
});

/// Two instances on one fresh PostgreSQL database, a phone signed up on B and a QR code
/// created on A and scanned by that phone; `None` without PostgreSQL.
struct TwoInstances {
    a: TestApp,
    b: TestApp,
    phone: Phone,
    desktop: Desktop,
    qr: Value,
    id: String,
    database_url: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl TwoInstances {
    async fn scanned(identifier: &str) -> Option<Self> {
        let admin = crate::support::app::postgres_url()?;
        let dir = tempfile::tempdir().unwrap();
        let database_url = crate::support::app::fresh_database(Backend::Postgres, &dir).await;
        let options = TestOptions {
            database_url: Some(database_url.clone()),
            public_origin: Some("http://localhost:8443".into()),
            ..Default::default()
        };
        let a = TestApp::spawn_with(Backend::Postgres, options.clone()).await;
        let b = TestApp::spawn_with(Backend::Postgres, options).await;
        let phone = Phone::signed_up(&b, identifier).await;
        let desktop = Desktop::new(&a);
        let qr = desktop.create(&a).await;
        let id = qr["qrId"].as_str().unwrap().to_owned();
        json_ok(phone.claim(&b, &qr).await).await;
        Some(Self { a, b, phone, desktop, qr, id, database_url, admin, _dir: dir })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_reaches_a_desktop_on_another_instance() {
    let Some(TwoInstances { a, b, phone, desktop, qr, id, .. }) = TwoInstances::scanned("wes@example.com").await else {
        return;
    };
    let waiting = {
        let http = desktop.http.clone();
        let url = a.url(&format!("/api/v1/qr/{id}?wait=10"));
        tokio::spawn(async move {
            let body: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            (body, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let approved_at = Instant::now();
    json_ok(phone.approve(&b, &qr, qr["matchCode"].as_str().unwrap()).await).await;
    let (body, seen_at) = waiting.await.unwrap();
    assert_eq!(body["state"], "approved");
    let lag = seen_at.duration_since(approved_at);
    eprintln!("approval on instance B reached the desktop on instance A after {lag:?}");
    assert!(lag < Duration::from_secs(1), "within a second: {lag:?}");
    json_ok(desktop.redeem(&a, &qr).await).await;
}

/// Reads server-sent events until one contains `needle`, for at most `within`.
async fn sse_until(sse: &mut reqwest::Response, needle: &str, within: Duration) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + within;
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, sse.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle} within {within:?}; saw {seen}"))
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended before {needle}; saw {seen}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

on_both_backends!(a_waiting_event_stream_ends_with_the_attempts_expiry, |backend| async move {
    // Streams do not poll the database: the expiry must still reach them.
    let extra = RawConfig { qr_ttl_seconds: Some(2), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    let desktop = Desktop::new(&app);
    let qr = desktop.create(&app).await;
    let id = qr["qrId"].as_str().unwrap();
    let mut sse = desktop.http.get(app.url(&format!("/api/v1/qr/{id}/events"))).send().await.unwrap();
    let t = Instant::now();
    sse_until(&mut sse, "\"state\":\"expired\"", Duration::from_secs(8)).await;
    assert!(t.elapsed() < Duration::from_secs(5), "expiry seen {:?} after the stream opened", t.elapsed());
    assert!(sse.chunk().await.unwrap().is_none(), "the stream closes after a final state");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_gets_its_approval_after_the_notification_listener_reconnects() {
    let Some(TwoInstances { a, b, phone, desktop, qr, id, database_url, admin, .. }) =
        TwoInstances::scanned("yan@example.com").await
    else {
        return;
    };
    let mut sse = desktop.http.get(a.url(&format!("/api/v1/qr/{id}/events"))).send().await.unwrap();
    sse_until(&mut sse, "\"state\":\"scanned\"", Duration::from_secs(5)).await;

    // Cut every LISTEN connection of this database, then approve at once: the NOTIFY may
    // go out while instance A has no listener. Its reconnection wakes every local waiter.
    let db_name = database_url.rsplit('/').next().unwrap().to_owned();
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query LIKE 'LISTEN%') AS t",
    )
    .bind(&db_name)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(cut >= 2, "both instances listen ({cut} listeners cut)");
    json_ok(phone.approve(&b, &qr, qr["matchCode"].as_str().unwrap()).await).await;
    sse_until(&mut sse, "\"state\":\"approved\"", Duration::from_secs(5)).await;
    json_ok(desktop.redeem(&a, &qr).await).await;
}

on_both_backends!(a_phone_that_verifies_again_keeps_its_claim, |backend| async move {
    let extra = RawConfig { qr_reauth_after_seconds: Some(1), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    // The phone signs up with a key it keeps, so it can sign in again.
    let http = app.new_browser();
    let mut key = SoftKey::new(&app.origin);
    let start = json_ok(
        http.post(app.url("/api/v1/passkeys/registration/start"))
            .json(&json!({"identifier": "xia"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let credential = key.create(&start["publicKey"]).await;
    json_ok(
        http.post(app.url("/api/v1/passkeys/registration/finish"))
            .json(&json!({"ceremonyId": start["ceremonyId"], "credential": credential}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let phone = Phone { http };
    let desktop = Desktop::new(&app);
    let qr = desktop.create(&app).await;
    json_ok(phone.claim(&app, &qr).await).await;
    app.clock.advance(Duration::from_millis(1200));
    let code = qr["matchCode"].as_str().unwrap();
    expect_error(phone.approve(&app, &qr, code).await, 401, "reauth-required").await;
    // Confirm with the passkey again (as the phone page does), then approve.
    let login = json_ok(phone.post(&app, "/api/v1/login/start", json!({"identifier": "xia"})).await).await;
    let assertion = key.get(&login["publicKey"]).await;
    let resp = phone
        .post(&app, "/api/v1/login/finish", json!({"ceremonyId": login["ceremonyId"], "credential": assertion}))
        .await;
    assert!(
        crate::support::app::set_cookie(resp.headers(), "handoff_session").is_none(),
        "the same session carries on"
    );
    json_ok(resp).await;
    assert_eq!(json_ok(phone.approve(&app, &qr, code).await).await["state"], "approved");
    json_ok(desktop.redeem(&app, &qr).await).await;
});

on_both_backends!(a_desktop_can_wait_over_cleartext_http2, |backend| async move {
    // A reverse proxy that speaks HTTP/2 to Handoff multiplexes desktops' event streams.
    let app = TestApp::spawn(backend).await;
    let phone = Phone::signed_up(&app, "h2c@example.com").await;
    let created = reqwest::Client::new().post(app.url("/api/v1/qr")).json(&json!({})).send().await.unwrap();
    let cookies: Vec<String> = created
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let qr = json_ok(created).await;
    let id = qr["qrId"].as_str().unwrap();

    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("the server speaks HTTP/2 with prior knowledge");
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::get(format!("http://127.0.0.1:{}/api/v1/qr/{id}/events", app.port))
        .header("cookie", cookies.join("; "))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut seen = String::new();
    for needle in ["\"state\":\"created\"", "\"state\":\"scanned\""] {
        if needle.contains("scanned") {
            json_ok(phone.claim(&app, &qr).await).await;
        }
        while !seen.contains(needle) {
            let chunk = tokio::time::timeout(Duration::from_secs(5), body.data())
                .await
                .unwrap_or_else(|_| panic!("no {needle} within 5 s; saw {seen}"))
                .expect("stream open")
                .unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
});

on_both_backends!(the_phone_sees_where_the_computer_is_and_how_far, |backend| async move {
    let dir = tempfile::tempdir().unwrap();
    let extra = RawConfig {
        geoip_database: Some(handoff_tests::geoip::city_database(&dir.path().join("city.mmdb"))),
        // The test client stands in for a reverse proxy on loopback.
        trusted_proxies: Some(vec!["127.0.0.1".into(), "::1".into()]),
        ..RawConfig::default()
    };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..TestOptions::default() }).await;
    let phone = Phone::signed_up(&app, "geo@example.com").await;
    let from = |http: &Client, path: &str, ip: &str, body: Value| {
        http.post(app.url(path)).header("x-forwarded-for", format!("6.6.6.6, {ip}")).json(&body).send()
    };

    // A computer in London, the phone on another network in Reading: placed, not flagged.
    let desktop = Desktop::new(&app);
    let qr = json_ok(from(&desktop.http, "/api/v1/qr", "81.2.69.160", json!({})).await.unwrap()).await;
    let claim =
        json_ok(from(&phone.http, "/api/v1/qr/claim", "5.64.1.2", json!({"token": token(&qr)})).await.unwrap()).await;
    assert_eq!(claim["requester"]["ip"], "81.2.69.160", "the proxy's client, not the spoofed left entry");
    assert_eq!(claim["requester"]["place"], "London, England, United Kingdom");
    assert_eq!(claim["farApart"], false, "60 km on two networks is not far apart: {claim}");
    let km = claim["distanceKm"].as_u64().unwrap();
    assert!((55..=65).contains(&km), "London–Reading is about 60 km, got {km}");

    // The same phone in Sydney: flagged, and the verdict recorded with both places.
    let desktop = Desktop::new(&app);
    let qr = json_ok(from(&desktop.http, "/api/v1/qr", "81.2.69.161", json!({})).await.unwrap()).await;
    let claim =
        json_ok(from(&phone.http, "/api/v1/qr/claim", "1.128.3.4", json!({"token": token(&qr)})).await.unwrap()).await;
    assert_eq!(claim["farApart"], true);
    assert!(claim["distanceKm"].as_u64().unwrap() > 16_000, "{claim}");
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let journey = handoff_core::domain::JourneyId::parse(qr["journeyId"].as_str().unwrap()).unwrap();
    let events = settled_events(&db, journey, "qr.risk").await;
    let attrs =
        |name: &str| -> Value { serde_json::from_str(&events.iter().find(|e| e.name == name).unwrap().attrs).unwrap() };
    assert_eq!(attrs("qr.created")["place"], "London, England, United Kingdom");
    let scanned = attrs("qr.scanned");
    assert_eq!(scanned["farApart"], true);
    assert_eq!(scanned["basis"], "location");
    assert_eq!(scanned["desktopPlace"], "London, England, United Kingdom");
    assert_eq!(scanned["phonePlace"], "Sydney, New South Wales, Australia");
    assert_eq!(scanned["ip"], "1.128.3.4");
    assert_eq!(attrs("qr.risk")["phoneIp"], "1.128.3.4");

    // An address the database does not know: no place, the network rule decides.
    let desktop = Desktop::new(&app);
    let qr = json_ok(from(&desktop.http, "/api/v1/qr", "203.0.113.9", json!({})).await.unwrap()).await;
    let claim =
        json_ok(from(&phone.http, "/api/v1/qr/claim", "5.64.1.2", json!({"token": token(&qr)})).await.unwrap()).await;
    assert!(claim["requester"]["place"].is_null(), "{claim}");
    assert!(claim["distanceKm"].is_null());
    // Different networks alone are not called far apart to the person (a phone on mobile
    // data beside a computer on Wi-Fi differs too); they are recorded as a weaker signal.
    assert_eq!(claim["farApart"], false, "different networks alone: {claim}");
    let journey = handoff_core::domain::JourneyId::parse(qr["journeyId"].as_str().unwrap()).unwrap();
    let events = settled_events(&db, journey, "qr.scanned").await;
    let scanned: Value = serde_json::from_str(&events.iter().find(|e| e.name == "qr.scanned").unwrap().attrs).unwrap();
    assert_eq!((scanned["differentNetworks"].as_bool(), scanned["basis"].as_str()), (Some(true), Some("network")));
    assert!(!events.iter().any(|e| e.name == "qr.risk"));
});

// Consent phishing, harder (issue #18 item 2): the operator can refuse far-apart approvals,
// and an approval from a phone signed in to another account than the identifier typed on
// the computer is refused by default. On `main` at 37d6c7f both were approved.
on_both_backends!(operators_refuse_far_apart_and_wrong_account_approvals, |backend| async move {
    let dir = tempfile::tempdir().unwrap();
    let extra = RawConfig {
        geoip_database: Some(handoff_tests::geoip::city_database(&dir.path().join("city.mmdb"))),
        trusted_proxies: Some(vec!["127.0.0.1".into(), "::1".into()]),
        qr_far_apart: Some("refuse".into()),
        ..RawConfig::default()
    };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..TestOptions::default() }).await;
    let phone = Phone::signed_up(&app, "bob@example.com").await;
    let from = |http: &Client, path: &str, ip: &str, body: Value| {
        http.post(app.url(path)).header("x-forwarded-for", ip.to_owned()).json(&body).send()
    };
    // London and Sydney: refused before any number is compared.
    let desktop = Desktop::new(&app);
    let qr = json_ok(from(&desktop.http, "/api/v1/qr", "81.2.69.160", json!({})).await.unwrap()).await;
    let claim =
        json_ok(from(&phone.http, "/api/v1/qr/claim", "1.128.3.4", json!({"token": token(&qr)})).await.unwrap()).await;
    assert_eq!((claim["farApart"].as_bool(), claim["refusal"].as_str()), (Some(true), Some("far-apart")));
    let approve = json!({"token": token(&qr), "matchCode": qr["matchCode"]});
    let refused = from(&phone.http, "/api/v1/qr/approve", "1.128.3.4", approve).await.unwrap();
    expect_error(refused, 403, "far-apart").await;
    assert_eq!(desktop.state(&app, &qr).await, "rejected");
    expect_error(desktop.redeem(&app, &qr).await, 409, "qr-wrong-state").await;

    // The computer asked for alice, the phone is bob's: refused (the default).
    let desktop = Desktop::new(&app);
    let body = json!({"identifier": "alice@example.com"});
    let qr = json_ok(from(&desktop.http, "/api/v1/qr", "81.2.69.160", body).await.unwrap()).await;
    let claim = json_ok(phone.claim(&app, &qr).await).await;
    assert_eq!(claim["refusal"], "wrong-account");
    let code = qr["matchCode"].as_str().unwrap();
    expect_error(phone.approve(&app, &qr, code).await, 403, "wrong-account").await;
    assert_eq!(desktop.state(&app, &qr).await, "rejected");

    // The same identifier (any case): approved.
    let desktop = Desktop::new(&app);
    let body = json!({"identifier": "Bob@Example.com"});
    let qr = json_ok(from(&desktop.http, "/api/v1/qr", "81.2.69.160", body).await.unwrap()).await;
    let claim = json_ok(phone.claim(&app, &qr).await).await;
    assert!(claim.get("refusal").is_none(), "{claim}");
    json_ok(phone.approve(&app, &qr, qr["matchCode"].as_str().unwrap()).await).await;

    // An operator who only warns on a mismatch.
    let lenient = RawConfig { qr_refuse_wrong_account: Some(false), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra: lenient, ..TestOptions::default() }).await;
    let phone = Phone::signed_up(&app, "bob@example.com").await;
    let desktop = Desktop::new(&app);
    let qr = json_ok(
        desktop
            .http
            .post(app.url("/api/v1/qr"))
            .json(&json!({"identifier": "alice@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let claim = json_ok(phone.claim(&app, &qr).await).await;
    assert!(claim.get("refusal").is_none());
    json_ok(phone.approve(&app, &qr, qr["matchCode"].as_str().unwrap()).await).await;
});

on_both_backends!(forwarded_addresses_are_ignored_unless_the_proxy_is_trusted, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let phone = Phone::signed_up(&app, "direct@example.com").await;
    let desktop = Desktop::new(&app);
    let qr = json_ok(
        desktop
            .http
            .post(app.url("/api/v1/qr"))
            .header("x-forwarded-for", "81.2.69.160")
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let claim = json_ok(phone.claim(&app, &qr).await).await;
    assert_eq!(claim["requester"]["ip"], "127.0.0.1", "a client cannot choose its own address");
    assert!(claim["requester"]["place"].is_null(), "no GeoIP database configured");
});

#[tokio::test]
async fn an_unreadable_geoip_database_stops_the_start_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("not-a-database.mmdb");
    std::fs::write(&bogus, b"this is not a MaxMind DB file").unwrap();
    for path in [bogus.clone(), dir.path().join("missing.mmdb")] {
        let raw = RawConfig {
            data_dir: Some(dir.path().to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            geoip_database: Some(path.clone()),
            ..RawConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = match handoff_server::startup::Application::build_on(raw.into_settings().unwrap(), listener).await {
            Ok(_) => panic!("a server started with {}", path.display()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("GeoIP database") && err.contains(&path.display().to_string()), "{err}");
    }
}

#[test]
fn a_bad_trusted_proxy_entry_is_named() {
    let raw = RawConfig { trusted_proxies: Some(vec!["10.0.0.0/8".into(), "my-proxy".into()]), ..RawConfig::default() };
    let err = raw.into_settings().unwrap_err().to_string();
    assert!(err.contains("\"my-proxy\""), "{err}");
}
