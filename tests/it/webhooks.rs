//! Standard Webhooks (PRODUCT §6.4) as an operator's receiver meets them: every delivery
//! is verified by the npm `standardwebhooks` package in a Node receiver
//! (`support/receiver.rs`), never by our own code. Retries, a receiver that fails and
//! recovers, a server killed between the commit and the delivery, two PostgreSQL instances
//! sharing the outbox, refused targets and event names, the failing mark and redelivery.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use handoff_server::config::RawConfig;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::app::{expect_error, json_ok};
use crate::support::receiver::{Process, Receiver, free_port, subscription, verified};
use crate::support::{Backend, SoftKey, TestApp, TestOptions};

const OPERATOR: &str = "test-operator-token-0123456789";
const EVENTS: [&str; 3] = ["user.created", "passkey.created", "session.created"];

fn quick_retries() -> RawConfig {
    RawConfig { webhooks_allow_insecure: Some(true), webhook_retry_base_ms: Some(50), ..RawConfig::default() }
}

async fn spawn(backend: Backend, extra: RawConfig) -> TestApp {
    TestApp::spawn_with(backend, TestOptions { extra, ..TestOptions::default() }).await
}

/// Subscribes `url` through the operator API; returns `(id, secret)`.
async fn subscribe(http: &Client, base: &url::Url, url: &str, events: &[&str]) -> (String, String) {
    let response = http
        .post(base.join("/api/v1/webhooks").unwrap())
        .bearer_auth(OPERATOR)
        .json(&subscription(url, events))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{body}");
    (body["id"].as_str().unwrap().to_owned(), secret)
}

async fn operator_get(app: &TestApp, path: &str) -> Value {
    json_ok(app.client.get(app.url(path)).bearer_auth(OPERATOR).send().await.unwrap()).await
}

/// Signs up `identifier` in a browser of its own on the server at `base`.
async fn sign_up_at(base: &url::Url, origin: &url::Url, identifier: &str) -> (Client, SoftKey) {
    let browser = Client::builder().cookie_store(true).build().unwrap();
    let mut key = SoftKey::new(origin);
    let start = json_ok(
        browser
            .post(base.join("/api/v1/passkeys/registration/start").unwrap())
            .json(&json!({"identifier": identifier}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let credential = key.create(&start["publicKey"]).await;
    let finish = browser
        .post(base.join("/api/v1/passkeys/registration/finish").unwrap())
        .json(&json!({"ceremonyId": start["ceremonyId"], "credential": credential}))
        .send()
        .await
        .unwrap();
    json_ok(finish).await;
    (browser, key)
}

/// Every verified delivery's id appears once; returns the count per type.
fn once_each(log: &Value) -> HashMap<String, usize> {
    let all = verified(log);
    let ids: HashSet<&String> = all.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), all.len(), "a message was delivered twice: {log:#}");
    let mut per_type = HashMap::new();
    for (_, t) in all {
        *per_type.entry(t).or_insert(0) += 1;
    }
    per_type
}

on_both_backends!(sign_up_and_sign_in_are_delivered_and_verified, |backend| async move {
    let receiver = Receiver::start().await;
    let app = spawn(backend, quick_retries()).await;
    let (_, secret) = subscribe(&app.client, &app.base, &receiver.url(), &EVENTS).await;
    receiver.control(json!({"secret": secret})).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "ada@example.com").await;
    // Signing out reports nothing: nobody subscribed to session.revoked.
    assert!(app.delete("/api/v1/session").await.status().is_success());
    json_ok(app.sign_in(&mut key, "ada@example.com").await).await;
    let log = receiver
        .wait_for("user.created, passkey.created and two session.created", Duration::from_secs(20), |log| {
            verified(log).iter().filter(|(_, t)| t == "session.created").count() >= 2 && verified(log).len() >= 4
        })
        .await;
    assert_eq!(log["rejected"], 0);
    let per_type = once_each(&log);
    assert_eq!((per_type["user.created"], per_type["passkey.created"], per_type["session.created"]), (1, 1, 2));
    let body = |t: &str| {
        log["verified"].as_array().unwrap().iter().find(|v| v["type"] == t).map(|v| v["body"].clone()).unwrap()
    };
    let user = body("user.created");
    assert_eq!(user["data"]["identifier"], "ada@example.com");
    assert!(user["timestamp"].as_str().unwrap().ends_with('Z'));
    let session = body("session.created");
    assert_eq!(session["data"]["userId"], user["data"]["userId"]);
    assert_eq!(session["data"]["method"], "passkey");
    assert_eq!(session["data"]["amr"], json!(["pop", "mfa"]));
    assert_eq!(body("passkey.created")["data"]["userId"], user["data"]["userId"]);
    // The worker stores an attempt after the receiver answered it: wait for that.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let deliveries = operator_get(&app, "/api/v1/webhooks/deliveries").await;
        let states: Vec<&str> =
            deliveries["deliveries"].as_array().unwrap().iter().map(|d| d["state"].as_str().unwrap()).collect();
        if states == ["delivered"; 4] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{deliveries:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
});

on_both_backends!(a_wrong_secret_is_refused_by_the_receiver, |backend| async move {
    // The check can fail: the receiver holds another endpoint's secret.
    let receiver = Receiver::start().await;
    let app = spawn(backend, quick_retries()).await;
    subscribe(&app.client, &app.base, &receiver.url(), &["user.created"]).await;
    receiver.control(json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})).await;
    app.sign_up(&mut SoftKey::new(&app.origin), "bo@example.com").await;
    let log = receiver.wait_for("a refused delivery", Duration::from_secs(20), |log| log["rejected"] != 0).await;
    assert_eq!(verified(&log).len(), 0);
});

on_both_backends!(a_receiver_failing_five_times_gets_every_event_once, |backend| async move {
    let receiver = Receiver::start().await;
    let app = spawn(backend, quick_retries()).await;
    let (_, secret) = subscribe(&app.client, &app.base, &receiver.url(), &EVENTS).await;
    receiver.control(json!({"secret": secret, "fail": 5})).await;
    for name in ["cleo", "dan", "eve"] {
        app.sign_up(&mut SoftKey::new(&app.origin), &format!("{name}@example.com")).await;
    }
    let log = receiver.wait_for("nine events", Duration::from_secs(30), |log| verified(log).len() >= 9).await;
    assert_eq!(log["failed"], 5);
    let per_type = once_each(&log);
    assert_eq!((per_type["user.created"], per_type["passkey.created"], per_type["session.created"]), (3, 3, 3));
    let deliveries = operator_get(&app, "/api/v1/webhooks/deliveries").await;
    let retried = deliveries["deliveries"].as_array().unwrap().iter().filter(|d| d["attempts"].as_i64() > Some(1));
    assert!(retried.count() >= 1, "{deliveries:#}");
});

on_both_backends!(a_failing_endpoint_is_marked_and_a_redelivery_clears_it, |backend| async move {
    let receiver = Receiver::start().await;
    let extra = RawConfig { webhook_failing_after: Some(3), ..quick_retries() };
    let app = spawn(backend, extra).await;
    let (id, secret) = subscribe(&app.client, &app.base, &receiver.url(), &["user.created"]).await;
    receiver.control(json!({"secret": secret, "fail": 1_000_000})).await;
    app.sign_up(&mut SoftKey::new(&app.origin), "fay@example.com").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let failing = loop {
        let list = operator_get(&app, "/api/v1/webhooks").await;
        let endpoint = list["webhooks"][0].clone();
        if endpoint["failingSince"].is_string() {
            break endpoint;
        }
        assert!(std::time::Instant::now() < deadline, "never marked failing: {list:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failing["id"], id.as_str());
    assert!(failing["consecutiveFailures"].as_i64().unwrap() >= 3);
    let deliveries = operator_get(&app, &format!("/api/v1/webhooks/deliveries?endpoint={id}")).await;
    let delivery = deliveries["deliveries"][0].clone();
    assert_eq!(delivery["state"], "pending");
    assert!(delivery["lastError"].as_str().unwrap().contains("503"), "{delivery:#}");
    assert!(delivery["nextAttemptAt"].is_number());
    // Recovered: redeliver now rather than wait for the backoff.
    receiver.control(json!({"fail": 0})).await;
    let redeliver = format!("/api/v1/webhooks/deliveries/{}/redeliver", delivery["id"]);
    let response = app.client.post(app.url(&redeliver)).bearer_auth(OPERATOR).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let log = receiver.wait_for("the redelivery", Duration::from_secs(20), |log| verified(log).len() == 1).await;
    assert_eq!(verified(&log)[0].0, delivery["messageId"].as_str().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while operator_get(&app, "/api/v1/webhooks").await["webhooks"][0]["failingSince"].is_string() {
        assert!(std::time::Instant::now() < deadline, "still failing after a delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing = app.client.post(app.url("/api/v1/webhooks/deliveries/999999/redeliver")).bearer_auth(OPERATOR);
    expect_error(missing.send().await.unwrap(), 404, "delivery-not-found").await;
});

on_both_backends!(insecure_targets_and_unknown_events_are_refused, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let add = |body: Value| app.client.post(app.url("/api/v1/webhooks")).bearer_auth(OPERATOR).json(&body).send();
    let message = expect_error(
        add(subscription("http://127.0.0.1:9/hook", &["user.created"])).await.unwrap(),
        400,
        "invalid-webhook",
    )
    .await;
    assert!(message.contains("HANDOFF_WEBHOOKS_ALLOW_INSECURE"), "{message}");
    expect_error(
        add(subscription("http://example.com/hook", &["user.created"])).await.unwrap(),
        400,
        "invalid-webhook",
    )
    .await;
    let message = expect_error(
        add(subscription("https://example.com/hook", &["user.created", "user.exploded"])).await.unwrap(),
        400,
        "invalid-webhook",
    )
    .await;
    assert!(message.contains("\"user.exploded\""), "{message}");
    let added = add(subscription("https://example.com/hook", &["signin.failed", "qr.denied"])).await.unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let list = operator_get(&app, "/api/v1/webhooks").await;
    assert_eq!(list["webhooks"][0]["events"], json!(["signin.failed", "qr.denied"]));
    assert!(list["webhooks"][0].get("secret").is_none(), "the secret is shown once: {list:#}");
    let unauthenticated = app.client.get(app.url("/api/v1/webhooks")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let id = list["webhooks"][0]["id"].as_str().unwrap();
    let removed = app.client.delete(app.url(&format!("/api/v1/webhooks/{id}"))).bearer_auth(OPERATOR).send().await;
    assert_eq!(removed.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(operator_get(&app, "/api/v1/webhooks").await["webhooks"], json!([]));
});

on_both_backends!(a_server_killed_before_delivering_delivers_after_restart, |backend| async move {
    let receiver = Receiver::start().await;
    receiver.control(json!({"fail": 1_000_000})).await;
    let dir = tempfile::tempdir().unwrap();
    let database_url = crate::support::app::fresh_database(backend, &dir).await;
    let port = free_port();
    let base = url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let origin = url::Url::parse(&format!("http://localhost:{port}")).unwrap();
    let server = Process::start(&database_url, port, dir.path(), OPERATOR).await;
    let (_, secret) = subscribe(&Client::new(), &base, &receiver.url(), &EVENTS).await;
    sign_up_at(&base, &origin, "gus@example.com").await;
    // Committed, not delivered: the receiver refused every attempt so far.
    server.kill().await;
    assert_eq!(verified(&receiver.log().await).len(), 0);
    receiver.control(json!({"secret": secret, "fail": 0})).await;
    let _server = Process::start(&database_url, port, dir.path(), OPERATOR).await;
    let log = receiver
        .wait_for("the three events after the restart", Duration::from_secs(30), |log| verified(log).len() >= 3)
        .await;
    let per_type = once_each(&log);
    assert_eq!((per_type["user.created"], per_type["passkey.created"], per_type["session.created"]), (1, 1, 1));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_instances_deliver_each_event_once() {
    if crate::support::app::postgres_url().is_none() {
        return;
    }
    let receiver = Receiver::start().await;
    let a = spawn(Backend::Postgres, quick_retries()).await;
    let (_, secret) = subscribe(&a.client, &a.base, &receiver.url(), &EVENTS).await;
    // Slow answers: both instances' workers have deliveries in flight at once.
    receiver.control(json!({"secret": secret, "delayMs": 30})).await;
    let options =
        TestOptions { database_url: Some(a.database_url.clone()), extra: quick_retries(), ..TestOptions::default() };
    let b = TestApp::spawn_with(Backend::Postgres, options).await;
    for i in 0..8 {
        let app = if i % 2 == 0 { &a } else { &b };
        app.sign_up(&mut SoftKey::new(&app.origin), &format!("user{i}@example.com")).await;
    }
    let log = receiver.wait_for("24 events", Duration::from_secs(30), |log| verified(log).len() >= 24).await;
    // A beat more: a second send of any of them would show now.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let log = if verified(&receiver.log().await).len() > 24 { receiver.log().await } else { log };
    let per_type = once_each(&log);
    assert_eq!((per_type["user.created"], per_type["passkey.created"], per_type["session.created"]), (8, 8, 8));
    assert_eq!(log["attempts"], 24, "every event sent once, by one instance");
}

on_both_backends!(the_dashboard_shows_deliveries_and_redelivers, |backend| async move {
    let app = spawn(backend, quick_retries()).await;
    // Nothing listens on port 1: every attempt fails to connect.
    subscribe(&app.client, &app.base, "http://127.0.0.1:1/hook", &["user.created"]).await;
    app.sign_up(&mut SoftKey::new(&app.origin), "hal@example.com").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let delivery = loop {
        let d = operator_get(&app, "/api/v1/webhooks/deliveries").await["deliveries"][0].clone();
        if d["lastError"].is_string() {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "no failed attempt yet: {d:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let page = app.client.get(app.url("/dashboard/webhooks")).bearer_auth(OPERATOR).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("127.0.0.1:1") && html.contains("could not connect"), "{html}");
    assert!(html.contains(delivery["messageId"].as_str().unwrap()));
    let action = format!("/dashboard/webhooks/deliveries/{}/redeliver", delivery["id"]);
    assert!(html.contains(&action), "{html}");
    let no_redirects = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let forged = no_redirects.post(app.url(&action)).bearer_auth(OPERATOR).header("origin", "https://evil.example");
    assert_eq!(forged.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let origin = app.origin.as_str().trim_end_matches('/').to_owned();
    let posted =
        no_redirects.post(app.url(&action)).bearer_auth(OPERATOR).header("origin", origin).send().await.unwrap();
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    let anonymous = no_redirects.get(app.url("/dashboard/webhooks")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
});

on_both_backends!(a_journey_that_ends_failed_is_reported_with_its_root_cause, |backend| async move {
    let receiver = Receiver::start().await;
    let extra = RawConfig {
        journey_idle_seconds: Some(1),
        qr_ttl_seconds: Some(1),
        qr_code_ttl_seconds: Some(1),
        ..quick_retries()
    };
    let app = spawn(backend, extra).await;
    let (_, secret) = subscribe(&app.client, &app.base, &receiver.url(), &["signin.failed"]).await;
    receiver.control(json!({"secret": secret})).await;
    // A QR code nobody scans: the journey ends failed when it has been idle a second.
    let qr = json_ok(app.client.post(app.url("/api/v1/qr")).json(&json!({})).send().await.unwrap()).await;
    let journey = qr["journeyId"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    app.clock.advance(Duration::from_secs(3));
    let log = receiver.wait_for("signin.failed", Duration::from_secs(20), |log| !verified(log).is_empty()).await;
    let event = &log["verified"][0]["body"];
    assert_eq!(event["type"], "signin.failed");
    assert_eq!(event["data"]["journeyId"], journey.as_str());
    assert!(event["data"]["rootCause"].is_string(), "{event:#}");
    assert_eq!(event["data"]["flow"], "qr-approval");
});
