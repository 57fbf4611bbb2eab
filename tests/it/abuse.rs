//! Bounded memory, storage and connections under abuse (issue #18 items 4–6). Each test
//! here failed on `main` at 37d6c7f: arbitrary methods grew `/metrics` by a histogram each,
//! a /64 had a fresh limit per address, `/login/start` and `/passkeys/registration/start`
//! had no limit, an embedded router skipped every limit, PostgreSQL instances counted
//! apart, wrong operator tokens were never throttled, a slow client held its connection,
//! streams were uncapped, `sentAt` and `elapsedMs` took any number, an empty token file was
//! accepted, and nothing was ever purged.

use std::time::Duration;

use handoff_server::config::RawConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::on_both_backends;
use crate::support::app::{expect_error, fresh_database, json_ok, postgres_url};
use crate::support::{Backend, SoftKey, TestApp, TestOptions};

const TOKEN: &str = "test-operator-token-0123456789";

async fn metrics_text(app: &TestApp) -> String {
    let resp = app.client.get(app.url("/metrics")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

on_both_backends!(fake_methods_do_not_grow_the_metrics, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = app.new_browser();
    // Warm the "other" series and the scrape's own, then measure.
    let method = reqwest::Method::from_bytes(b"X0").unwrap();
    client.request(method, app.url("/healthz")).send().await.unwrap();
    metrics_text(&app).await;
    let before = metrics_text(&app).await;
    let mut sends = Vec::new();
    for i in 0..10_000 {
        let method = reqwest::Method::from_bytes(format!("X{i:05}").as_bytes()).unwrap();
        sends.push(client.request(method, app.url("/healthz")).send());
        if sends.len() == 200 {
            for r in futures_util::future::join_all(sends.drain(..)).await {
                assert_eq!(r.unwrap().status(), 405);
            }
        }
    }
    for r in futures_util::future::join_all(sends).await {
        assert_eq!(r.unwrap().status(), 405);
    }
    let after = metrics_text(&app).await;
    let series = |text: &str| text.lines().filter(|l| l.starts_with("handoff_http_request_duration_seconds")).count();
    assert_eq!(series(&after), series(&before), "no new series for new methods");
    assert!(!after.contains("X09999"), "no method name becomes a label");
    assert!(after.contains(r#"method="other""#));
});

on_both_backends!(ipv6_clients_are_limited_by_their_64, |backend| async move {
    let extra = RawConfig {
        trusted_proxies: Some(vec!["127.0.0.1".into()]),
        qr_create_per_minute: Some(3),
        ..RawConfig::default()
    };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    app.at_the_start_of_a_minute();
    let create = |from: String| {
        let client = app.new_browser();
        let url = app.url("/api/v1/qr");
        async move { client.post(url).header("x-forwarded-for", from).json(&json!({})).send().await.unwrap() }
    };
    for i in 1..=3 {
        assert_eq!(create(format!("2001:db8:0:1::{i:x}")).await.status(), 200);
    }
    // Another address in the same /64: the same bucket.
    expect_error(create("2001:db8:0:1:ffff::1".into()).await, 429, "rate-limited").await;
    // Another /64 has its own.
    assert_eq!(create("2001:db8:0:2::1".into()).await.status(), 200);
});

on_both_backends!(sign_in_and_sign_up_starts_are_limited_per_client_and_identifier, |backend| async move {
    let extra = RawConfig {
        login_start_per_minute: Some(5),
        login_start_per_identifier: Some(3),
        registration_start_per_minute: Some(4),
        registration_start_per_identifier: Some(2),
        trusted_proxies: Some(vec!["127.0.0.1".into()]),
        ..RawConfig::default()
    };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    app.at_the_start_of_a_minute();
    let post = |path: &'static str, from: &'static str, body: serde_json::Value| {
        let client = app.new_browser();
        let url = app.url(path);
        async move { client.post(url).header("x-forwarded-for", from).json(&body).send().await.unwrap() }
    };
    // Per identifier, from several addresses.
    for from in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        json_ok(post("/api/v1/login/start", from, json!({"identifier": "target@example.com"})).await).await;
    }
    let refused = post("/api/v1/login/start", "198.51.100.4", json!({"identifier": "target@example.com"})).await;
    assert!(refused.headers().get("retry-after").is_some());
    expect_error(refused, 429, "rate-limited").await;
    // Per client, with many identifiers.
    for i in 0..5 {
        json_ok(post("/api/v1/login/start", "203.0.113.9", json!({"identifier": format!("u{i}@example.com")})).await)
            .await;
    }
    expect_error(post("/api/v1/login/start", "203.0.113.9", json!({})).await, 429, "rate-limited").await;
    // Sign-up starts.
    for from in ["192.0.2.1", "192.0.2.2"] {
        json_ok(post("/api/v1/passkeys/registration/start", from, json!({"identifier": "new@example.com"})).await)
            .await;
    }
    let refused = post("/api/v1/passkeys/registration/start", "192.0.2.3", json!({"identifier": "new@example.com"}));
    expect_error(refused.await, 429, "rate-limited").await;
    for i in 0..4 {
        let body = json!({"identifier": format!("n{i}@example.com")});
        json_ok(post("/api/v1/passkeys/registration/start", "192.0.2.50", body).await).await;
    }
    let refused = post("/api/v1/passkeys/registration/start", "192.0.2.50", json!({"identifier": "n9@example.com"}));
    expect_error(refused.await, 429, "rate-limited").await;
});

on_both_backends!(an_embedded_router_without_peer_addresses_fails_closed, |backend| async move {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let raw = RawConfig {
        data_dir: Some(dir.path().to_path_buf()),
        database_url: Some(fresh_database(backend, &dir).await),
        origin: Some(vec![format!("http://localhost:{port}")]),
        operator_token: Some(TOKEN.into()),
        qr_create_per_minute: Some(3),
        ..RawConfig::default()
    };
    let settings = raw.into_settings().unwrap();
    let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = handoff_server::Application::build_on(settings, inner).await.unwrap();
    // An integrator serves the router without `into_make_service_with_connect_info`.
    tokio::spawn(axum::serve(listener, app.router()).into_future());
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/qr");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(client.post(&url).json(&json!({})).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429], "unknown clients share one bucket");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_share_their_limits() {
    if postgres_url().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let options = TestOptions {
        clock: Some(handoff_core::clock::Clock::adjustable()),
        database_url: Some(fresh_database(Backend::Postgres, &dir).await),
        public_origin: Some("http://localhost:8443".into()),
        extra: RawConfig { login_start_per_identifier: Some(4), ..RawConfig::default() },
        ..Default::default()
    };
    let a = TestApp::spawn_with(Backend::Postgres, options.clone()).await;
    let b = TestApp::spawn_with(Backend::Postgres, options).await;
    a.at_the_start_of_a_minute();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 { &a } else { &b };
        let resp = app.post("/api/v1/login/start", &json!({"identifier": "shared@example.com"})).await;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 4, "two instances allow the limit once: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 4, "{statuses:?}");
}

on_both_backends!(wrong_operator_tokens_are_throttled, |backend| async move {
    let app = TestApp::spawn(backend).await;
    app.at_the_start_of_a_minute();
    let client = app.new_browser();
    for _ in 0..20 {
        let resp = client.get(app.url("/api/v1/insights")).bearer_auth("guess-guess-guess-guess").send().await.unwrap();
        expect_error(resp, 403, "operator-token-invalid").await;
    }
    // Past the limit no token is compared, not even the right one.
    let resp = client.get(app.url("/api/v1/insights")).bearer_auth("guess-guess-guess-guess").send().await.unwrap();
    expect_error(resp, 429, "rate-limited").await;
    let resp = client.get(app.url("/api/v1/insights")).bearer_auth(TOKEN).send().await.unwrap();
    expect_error(resp, 429, "rate-limited").await;
    let resp = client.get(app.url("/dashboard")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 429);
});

on_both_backends!(a_slow_header_client_is_cut_off, |backend| async move {
    let extra = RawConfig { header_read_timeout_seconds: Some(1), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    // Keep trickling a byte now and then; the server must close anyway.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut chunk = [0u8; 512];
            tokio::select! {
                n = tcp.read(&mut chunk) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                },
                () = tokio::time::sleep(Duration::from_millis(300)) => {
                    if tcp.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was still open after 5 s");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    let answer = String::from_utf8_lossy(&buf);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Everyone else is still served.
    assert_eq!(app.get("/healthz").await.status(), 200);
});

on_both_backends!(streams_are_capped_per_attempt_and_client, |backend| async move {
    let extra = RawConfig { streams_per_ip: Some(6), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    let desktop = app.new_browser();
    let qr = json_ok(desktop.post(app.url("/api/v1/qr")).json(&json!({})).send().await.unwrap()).await;
    let events = app.url(&format!("/api/v1/qr/{}/events", qr["qrId"].as_str().unwrap()));
    let mut open = Vec::new();
    for _ in 0..4 {
        let resp = desktop.get(events.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        open.push(resp);
    }
    expect_error(desktop.get(events.clone()).send().await.unwrap(), 429, "too-many-streams").await;
    let poll = app.url(&format!("/api/v1/qr/{}?wait=5", qr["qrId"].as_str().unwrap()));
    expect_error(desktop.get(poll.clone()).send().await.unwrap(), 429, "too-many-streams").await;
    // A second attempt from the same client: two more streams, then the client's cap.
    let other = app.new_browser();
    let qr2 = json_ok(other.post(app.url("/api/v1/qr")).json(&json!({})).send().await.unwrap()).await;
    let events2 = app.url(&format!("/api/v1/qr/{}/events", qr2["qrId"].as_str().unwrap()));
    for _ in 0..2 {
        let resp = other.get(events2.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        open.push(resp);
    }
    expect_error(other.get(events2.clone()).send().await.unwrap(), 429, "too-many-streams").await;
    // A closed stream gives its slot back.
    drop(open.pop());
    let mut freed = false;
    for _ in 0..50 {
        let resp = other.get(events2.clone()).send().await.unwrap();
        if resp.status() == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the slot came back");
});

on_both_backends!(client_numbers_are_range_checked, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let now = handoff_core::clock::now_ms();
    let journey = uuid::Uuid::new_v4().to_string();
    let event =
        |ts: serde_json::Value| json!({"journeyId": journey, "name": "page.visible", "device": "desktop", "ts": ts});
    for sent_at in [json!(i64::MIN), json!(i64::MAX), json!(now - 9_223_372_036_854_775_807 + 1_000_000), json!(1e300)]
    {
        let batch = json!({"sentAt": sent_at, "events": [event(json!(now))]});
        expect_error(app.post("/api/v1/events", &batch).await, 400, "invalid-sent-at").await;
    }
    let batch = json!({"events": [
        event(json!(i64::MAX)),
        event(json!(i64::MIN)),
        {"journeyId": journey, "name": "webauthn.failed", "device": "desktop", "ts": now, "attrs": {"elapsedMs": 1e300}},
        {"journeyId": journey, "name": "webauthn.failed", "device": "desktop", "ts": now, "attrs": {"elapsedMs": -5}},
        {"journeyId": journey, "name": "webauthn.failed", "device": "desktop", "ts": now, "attrs": {"elapsedMs": 1200}},
    ]});
    let answer = json_ok_status(app.post("/api/v1/events", &batch).await, 202).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    let codes: Vec<&str> =
        answer["rejected"].as_array().unwrap().iter().map(|r| r["error"]["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["invalid-ts", "invalid-ts", "invalid-attrs", "invalid-attrs"]);
    // A later batch still goes through: nothing broke in the journal.
    let batch = json!({"sentAt": now, "events": [event(json!(now))]});
    json_ok_status(app.post("/api/v1/events", &batch).await, 202).await;
    // The failure report's elapsedMs.
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "range@example.com").await;
    let start = json_ok(app.login_start(Some("range@example.com")).await).await;
    let body = json!({"ceremonyId": start["ceremonyId"], "errorName": "NotAllowedError", "elapsedMs": u64::MAX});
    expect_error(app.post("/api/v1/login/failure", &body).await, 400, "invalid-elapsed-ms").await;
});

async fn json_ok_status(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    response.json().await.unwrap()
}

#[tokio::test]
async fn an_empty_or_short_operator_token_file_stops_the_start() {
    for contents in ["", "\n", "short-token"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("operator-token"), contents).unwrap();
        let raw = RawConfig {
            data_dir: Some(dir.path().to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            ..RawConfig::default()
        };
        let settings = raw.into_settings().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = handoff_server::Application::build_on(settings, listener).await.err().expect("refused");
        let message = err.to_string();
        assert!(message.contains("operator token file") && message.contains("32 characters"), "{message}");
    }
}
