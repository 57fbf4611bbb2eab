//! Journeys over HTTP: the flows built so far, run end to end, produce journeys whose
//! phases, outcome and root cause are right; the operator API reads and searches them;
//! late, repeated and out-of-order events land in the right journey.

use std::time::{Duration, Instant};

use handoff_server::config::RawConfig;
use serde_json::{Value, json};

use crate::decisions::{WINDOWS_CHROME, sign_up_on_phone, start_as};
use crate::on_both_backends;
use crate::support::app::{expect_error, json_ok, settled_events};
use crate::support::{Backend, SoftKey, TestApp, TestOptions};

const TOKEN: &str = "test-operator-token-0123456789";
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";

/// A server that finishes journeys after one idle second.
async fn quick_app(backend: Backend) -> TestApp {
    let extra = RawConfig {
        journey_idle_seconds: Some(1),
        qr_ttl_seconds: Some(1),
        qr_code_ttl_seconds: Some(1),
        ..Default::default()
    };
    TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await
}

async fn operator_get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(TOKEN).send().await.unwrap()
}

async fn journey(app: &TestApp, id: &str) -> Value {
    json_ok(operator_get(app, &format!("/api/v1/journeys/{id}")).await).await
}

/// Moves the server's clock past the idle second, then waits (up to 15 s) for the janitor's
/// next round to finish the journey.
async fn finished_journey(app: &TestApp, id: &str) -> Value {
    app.clock.advance(Duration::from_secs(2));
    journey_when(app, id, |j| j["state"] == "finished").await
}

/// Waits (up to 15 s) until the journey satisfies `ready` (server events are stored
/// moments after the response that caused them).
async fn journey_when(app: &TestApp, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = operator_get(app, &format!("/api/v1/journeys/{id}")).await;
        if r.status() == 200 {
            let j: Value = r.json().await.unwrap();
            if ready(&j) {
                return j;
            }
            assert!(Instant::now() < deadline, "journey never got there: {j}");
        } else {
            assert!(Instant::now() < deadline, "journey {id} never appeared: {}", r.status());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn send_events(app: &TestApp, ua: &str, events: Value) -> Value {
    let resp = app
        .new_browser()
        .post(app.url("/api/v1/events"))
        .header("user-agent", ua)
        .json(&json!({"events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    resp.json().await.unwrap()
}

fn phases(j: &Value) -> Vec<(String, bool)> {
    j["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["observed"].as_bool().unwrap()))
        .collect()
}

fn observed(names: &[&str]) -> Vec<(String, bool)> {
    names.iter().map(|n| ((*n).to_owned(), true)).collect()
}

on_both_backends!(a_passkey_sign_in_is_one_successful_journey, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "hana@example.com").await;
    let desktop = app.new_browser();
    let start = start_as(&app, &desktop, WINDOWS_CHROME, json!({"identifier": "hana@example.com"})).await;
    let id = start["journeyId"].as_str().unwrap().to_owned();
    let now = handoff_core::clock::now_ms();
    let client_events = json!([
        {"journeyId": id, "name": "identifier.submitted", "device": "desktop", "ts": now - 300, "eventId": "1"},
        {"journeyId": id, "name": "ceremony.started", "device": "desktop", "ts": now - 100, "attrs": {"mediation": "optional"}, "eventId": "2"},
        {"journeyId": id, "name": "webauthn.completed", "device": "desktop", "ts": now, "attrs": {"elapsedMs": 80}, "eventId": "3"},
    ]);
    send_events(&app, WINDOWS_CHROME, client_events.clone()).await;
    let assertion = key.get(&start["publicKey"]).await;
    json_ok(
        desktop
            .post(app.url("/api/v1/login/finish"))
            .json(&json!({"ceremonyId": start["ceremonyId"], "credential": assertion}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // The same batch again (a retry) changes nothing.
    send_events(&app, WINDOWS_CHROME, client_events).await;

    // Operator only.
    expect_error(app.get(&format!("/api/v1/journeys/{id}")).await, 401, "operator-token-required").await;
    let wrong = app
        .client
        .get(app.url(&format!("/api/v1/journeys/{id}")))
        .bearer_auth("not-the-token-at-all")
        .send()
        .await
        .unwrap();
    expect_error(wrong, 403, "operator-token-invalid").await;

    let j = journey_when(&app, &id, |j| j["outcome"] == "success").await;
    assert_eq!(j["state"], "finished");
    assert_eq!(j["flow"], "passkey-local");
    assert!(j["rootCause"].is_null());
    assert_eq!(j["identifier"], "hana@example.com");
    assert_eq!(
        phases(&j),
        observed(&["identifier", "decision", "ceremony-started", "webauthn-completed", "verified", "session"])
    );
    assert_eq!(j["segments"]["desktop"]["os"], "Windows");
    assert_eq!(j["segments"]["desktop"]["browser"], "Chrome");
    assert!(j["segments"]["mobile"].is_null());
    let names: Vec<&str> = j["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "webauthn.completed").count(),
        1,
        "the retried batch is not counted twice: {names:?}"
    );
    assert_eq!(names.first(), Some(&"identifier.submitted"), "in the order they happened: {names:?}");
    assert_eq!(names.last(), Some(&"session.established"), "{names:?}");
    assert!(j["timeToSessionMs"].as_i64().unwrap() >= 300);

    // Support lookup.
    let found = json_ok(operator_get(&app, "/api/v1/journeys?identifier=hana@example.com&outcome=success").await).await;
    assert_eq!(found["journeys"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["journeys"][0]["journeyId"], id.as_str());
    assert!(found["journeys"][0].get("events").is_none(), "summaries leave events out");
    let none = json_ok(operator_get(&app, "/api/v1/journeys?identifier=hana@example.com&outcome=failed").await).await;
    assert_eq!(none["journeys"], json!([]));
    expect_error(operator_get(&app, "/api/v1/journeys?outcome=meh").await, 400, "invalid-query").await;
    expect_error(operator_get(&app, "/api/v1/journeys?rootCause=gremlins").await, 400, "invalid-query").await;
    expect_error(operator_get(&app, "/api/v1/journeys?from=yesterday").await, 400, "invalid-query").await;
    expect_error(operator_get(&app, "/api/v1/journeys?cursor=xyz").await, 400, "invalid-query").await;
    expect_error(operator_get(&app, "/api/v1/journeys/not-a-uuid").await, 400, "invalid-journey-id").await;
    let unknown = uuid::Uuid::new_v4();
    expect_error(operator_get(&app, &format!("/api/v1/journeys/{unknown}")).await, 404, "journey-not-found").await;
});

on_both_backends!(an_unscanned_code_ends_as_an_observed_scan_failure, |backend| async move {
    let app = quick_app(backend).await;
    let desktop = app.new_browser();
    let qr = json_ok(
        desktop.post(app.url("/api/v1/qr")).header("user-agent", WINDOWS_CHROME).json(&json!({})).send().await.unwrap(),
    )
    .await;
    let id = qr["journeyId"].as_str().unwrap();
    let now = handoff_core::clock::now_ms();
    send_events(&app, WINDOWS_CHROME, json!([{"journeyId": id, "name": "qr.shown", "device": "desktop", "flow": "qr-approval", "ts": now, "attrs": {"sizePx": 264, "rotation": 0}}])).await;
    // The idle janitor may finish the journey a moment before the QR janitor records
    // `qr.expired` (both run every second with these lifetimes); the late event updates
    // the diagnosis, so wait for it.
    let expired = |j: &Value| {
        j["state"] == "finished"
            && j["rootCause"]["evidence"]
                .as_array()
                .is_some_and(|e| e.iter().any(|x| x.as_str().is_some_and(|x| x.contains("qr.expired"))))
    };
    let j = journey_when(&app, id, expired).await;
    assert_eq!(j["outcome"], "failed", "{j}");
    assert_eq!(j["rootCause"]["code"], "scan-failure");
    assert_eq!(j["rootCause"]["basis"], "observed");
    assert_eq!(j["rootCause"]["class"], "technical-failure");
    assert!(j["rootCause"]["action"].as_str().unwrap().contains("QR"));
    assert!(j["rootCause"]["evidence"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains("qr.expired")));
    assert_eq!(phases(&j), observed(&["shown"]));
    let found = json_ok(operator_get(&app, "/api/v1/journeys?rootCause=scan-failure&flow=qr-approval").await).await;
    assert_eq!(found["journeys"][0]["journeyId"], id);
});

on_both_backends!(phone_and_desktop_events_stitch_into_one_qr_journey, |backend| async move {
    let app = TestApp::spawn(backend).await;
    // The phone: signed up on an Android phone.
    let phone = app.new_browser();
    let mut key = SoftKey::new(&app.origin);
    let start = json_ok(
        phone
            .post(app.url("/api/v1/passkeys/registration/start"))
            .json(&json!({"identifier": "ivo"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let credential = key.create(&start["publicKey"]).await;
    json_ok(
        phone
            .post(app.url("/api/v1/passkeys/registration/finish"))
            .header("user-agent", ANDROID)
            .json(&json!({"ceremonyId": start["ceremonyId"], "credential": credential}))
            .send()
            .await
            .unwrap(),
    )
    .await;

    let desktop = app.new_browser();
    let qr = json_ok(
        desktop
            .post(app.url("/api/v1/qr"))
            .header("user-agent", WINDOWS_CHROME)
            .json(&json!({"identifier": "ivo"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = qr["journeyId"].as_str().unwrap().to_owned();
    let token = qr["url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let now = handoff_core::clock::now_ms();
    let claim = json_ok(
        phone
            .post(app.url("/api/v1/qr/claim"))
            .header("user-agent", ANDROID)
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(claim["journeyId"], id.as_str(), "the claim hands the phone the journey");
    json_ok(
        phone
            .post(app.url("/api/v1/qr/approve"))
            .json(&json!({"token": token, "matchCode": qr["matchCode"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    json_ok(
        desktop.post(app.url(&format!("/api/v1/qr/{}/redeem", qr["qrId"].as_str().unwrap()))).send().await.unwrap(),
    )
    .await;
    // Client events arrive late and out of order; the phone's clock is 4 minutes ahead.
    let skew = 4 * 60_000;
    send_events(&app, ANDROID, json!([
        {"journeyId": id, "name": "confirmation.completed", "device": "mobile", "flow": "qr-approval", "ts": now + skew + 300, "attrs": {"action": "approve", "matchOk": true}},
        {"journeyId": id, "name": "confirmation.shown", "device": "mobile", "flow": "qr-approval", "ts": now + skew + 200, "attrs": {"mismatch": false}},
        {"journeyId": id, "name": "mobile.opened", "device": "mobile", "flow": "qr-approval", "ts": now + skew + 100},
    ])).await;
    send_events(&app, WINDOWS_CHROME, json!([
        {"journeyId": id, "name": "desktop.callback_received", "device": "desktop", "flow": "qr-approval", "ts": now + 400, "attrs": {"via": "sse"}},
        {"journeyId": id, "name": "qr.shown", "device": "desktop", "flow": "qr-approval", "ts": now - 50, "attrs": {"sizePx": 264}},
    ])).await;
    let j = journey_when(&app, &id, |j| j["outcome"] == "success").await;
    assert_eq!(j["flow"], "qr-approval");
    assert_eq!(
        phases(&j),
        observed(&[
            "shown",
            "scanned",
            "mobile-opened",
            "confirmation-shown",
            "confirmed",
            "callback-received",
            "session"
        ])
    );
    assert_eq!(j["segments"]["mobile"]["os"], "Android");
    assert_eq!(j["segments"]["desktop"]["os"], "Windows");
    // On the server's clock the phone's steps fall between the scan and the redemption.
    let at = |name: &str| {
        let e = j["events"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap();
        handoff_core::clock::parse_time(e["at"].as_str().unwrap()).unwrap()
    };
    assert!(at("mobile.opened") < at("confirmation.shown") && at("confirmation.shown") < at("confirmation.completed"));
    assert!(at("confirmation.completed") < now + 60_000, "the 4-minute skew is corrected");
});

on_both_backends!(a_refused_cross_device_ceremony_is_diagnosed_by_its_timing, |backend| async move {
    let app = quick_app(backend).await;
    // An unknown authenticator (zero AAGUID) registered from an iPhone: a phone passkey.
    let mut phone_key = SoftKey::with_aaguid(&app.origin, [0; 16]);
    sign_up_on_phone(&app, &mut phone_key, "gus").await;
    let mut journeys = Vec::new();
    for elapsed in [700, 4_000, 45_000] {
        let desktop = app.new_browser();
        let client = json!({"capabilities": {"hybridTransport": true}, "platformAuthenticator": true});
        let start = start_as(&app, &desktop, WINDOWS_CHROME, json!({"identifier": "gus", "client": client})).await;
        assert_eq!(start["decision"]["verdict"], "cross-device", "{start}");
        let report = json!({"ceremonyId": start["ceremonyId"], "errorName": "NotAllowedError", "elapsedMs": elapsed});
        let resp = desktop
            .post(app.url("/api/v1/login/failure"))
            .header("user-agent", WINDOWS_CHROME)
            .json(&report)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        journeys.push(start["journeyId"].as_str().unwrap().to_owned());
    }
    let mut causes = Vec::new();
    for id in &journeys {
        let j = finished_journey(&app, id).await;
        assert_eq!(j["flow"], "cross-device", "{j}");
        assert!(
            j["events"].as_array().unwrap().iter().any(|e| e["name"] == "webauthn.failed" && e["device"] == "desktop")
        );
        causes.push((
            j["outcome"].as_str().unwrap().to_owned(),
            j["rootCause"]["code"].as_str().unwrap().to_owned(),
            j["rootCause"]["basis"].as_str().unwrap().to_owned(),
        ));
    }
    let expected =
        [("failed", "no-credential"), ("abandoned", "user-cancelled"), ("failed", "proximity-or-connection")];
    for ((outcome, cause, basis), (want_outcome, want_cause)) in causes.iter().zip(expected) {
        assert_eq!((outcome.as_str(), cause.as_str(), basis.as_str()), (want_outcome, want_cause, "inferred"));
    }
});

on_both_backends!(late_events_reopen_the_diagnosis_and_unknown_journeys_start_one, |backend| async move {
    let app = quick_app(backend).await;
    // A journey id the server never issued: its first event creates it.
    let id = uuid::Uuid::new_v4().to_string();
    let now = handoff_core::clock::now_ms();
    send_events(&app, WINDOWS_CHROME, json!([{"journeyId": id, "name": "identifier.submitted", "device": "desktop", "flow": "passkey-local", "ts": now}])).await;
    let j = finished_journey(&app, &id).await;
    assert_eq!((j["outcome"].as_str(), j["rootCause"]["code"].as_str()), (Some("abandoned"), Some("abandoned-early")));
    // A batch that was stuck in the browser arrives after the journey was finished.
    send_events(&app, WINDOWS_CHROME, json!([
        {"journeyId": id, "name": "webauthn.failed", "device": "desktop", "flow": "passkey-local", "ts": now + 2_000, "attrs": {"errorName": "SecurityError", "elapsedMs": 3}},
        {"journeyId": id, "name": "ceremony.started", "device": "desktop", "flow": "passkey-local", "ts": now + 1_000},
        {"journeyId": id, "name": "session.established", "device": "desktop", "ts": now + 3_000},
    ])).await;
    let j = journey(&app, &id).await;
    assert_eq!(j["rootCause"]["code"], "configuration", "{j}");
    assert_eq!(j["rootCause"]["basis"], "observed");
    assert_eq!(j["outcome"], "failed", "a browser cannot claim a session");
    let spoofed = j["events"].as_array().unwrap().iter().find(|e| e["name"] == "session.established").unwrap();
    assert_eq!(spoofed["trusted"], false);
});

// A client-chosen journeyId that another browser started starts a new journey: nobody can
// write the server's events (a decision naming another identifier, a session) into a
// stranger's journey (security review L5). On `main` at 37d6c7f the named journey was used.
on_both_backends!(server_events_go_only_into_journeys_this_browser_started, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let victim = app.new_browser();
    let start = |browser: &reqwest::Client, body: serde_json::Value| {
        let request = browser.post(app.url("/api/v1/login/start")).json(&body);
        async move { json_ok(request.send().await.unwrap()).await }
    };
    let first = start(&victim, json!({"identifier": "victim@example.com"})).await;
    let journey = first["journeyId"].as_str().unwrap().to_owned();
    // The same browser continues its journey.
    let again = start(&victim, json!({"identifier": "victim@example.com", "journeyId": journey})).await;
    assert_eq!(again["journeyId"], journey.as_str());
    // Another browser naming it gets a journey of its own, for login and for QR.
    let mallory = app.new_browser();
    let hijack = start(&mallory, json!({"identifier": "mallory@example.com", "journeyId": journey})).await;
    assert_ne!(hijack["journeyId"], journey.as_str());
    let qr =
        json_ok(mallory.post(app.url("/api/v1/qr")).json(&json!({"journeyId": journey})).send().await.unwrap()).await;
    assert_ne!(qr["journeyId"], journey.as_str());
    // A made-up id starts a new journey too.
    let made_up = uuid::Uuid::now_v7().to_string();
    let fresh = start(&victim, json!({"journeyId": made_up})).await;
    assert_ne!(fresh["journeyId"], made_up.as_str());
    // The victim's journey still names the victim's identifier only.
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let id = handoff_core::domain::JourneyId::parse(&journey).unwrap();
    let events = settled_events(&db, id, "decision.made").await;
    let identifiers: Vec<String> = events
        .iter()
        .filter(|e| e.name == "decision.made")
        .filter_map(|e| e.attrs_value()["identifier"].as_str().map(str::to_owned))
        .collect();
    assert!(identifiers.iter().all(|i| i == "victim@example.com"), "{identifiers:?}");
});
