//! The decision over HTTP: what `/login/start` answers for known and unknown identifiers,
//! after failures, for a desktop whose passkey is on a phone, and the passkey-append offer
//! that follows a cross-device sign-in.

use std::time::Instant;

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::app::{expect_error, json_ok, settled_events};
use crate::support::{SoftKey, TestApp, TestOptions};
use handoff_server::config::RawConfig;

pub(crate) const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
pub(crate) const WINDOWS_CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Same JSON "shape": the same keys with values of the same types, recursively; array
/// items are compared with each other's first item (an empty array matches any array).
fn same_shape(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_shape(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => match (x.first(), y.first()) {
            (Some(p), Some(q)) => same_shape(p, q),
            _ => true,
        },
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => true,
        _ => false,
    }
}

pub(crate) async fn start_as(app: &TestApp, browser: &reqwest::Client, ua: &str, body: Value) -> Value {
    let resp = browser.post(app.url("/api/v1/login/start")).header("user-agent", ua).json(&body).send().await.unwrap();
    json_ok(resp).await
}

/// Signs up `identifier` from an iPhone browser with a phone-held (hybrid) passkey.
pub(crate) async fn sign_up_on_phone(app: &TestApp, key: &mut SoftKey, identifier: &str) {
    let phone = app.new_browser();
    let start = json_ok(
        phone
            .post(app.url("/api/v1/passkeys/registration/start"))
            .json(&json!({"identifier": identifier}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut credential = key.create(&start["publicKey"]).await;
    credential["response"]["transports"] = json!(["hybrid", "internal"]);
    let resp = phone
        .post(app.url("/api/v1/passkeys/registration/finish"))
        .header("user-agent", IPHONE)
        .json(&json!({"ceremonyId": start["ceremonyId"], "credential": credential}))
        .send()
        .await
        .unwrap();
    json_ok(resp).await;
}

on_both_backends!(unknown_identifiers_look_like_known_ones, |backend| async move {
    // The timing samples ask for one identifier 40 times within a minute.
    let extra = RawConfig { login_start_per_identifier: Some(1_000), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    let mut key = SoftKey::with_aaguid(&app.origin, [0; 16]);
    sign_up_on_phone(&app, &mut key, "known@example.com").await;
    let desktop = app.new_browser();
    let client = json!({"capabilities": {"hybridTransport": true}});
    let known =
        start_as(&app, &desktop, WINDOWS_CHROME, json!({"identifier": "known@example.com", "client": client})).await;
    let unknown =
        start_as(&app, &desktop, WINDOWS_CHROME, json!({"identifier": "nobody@example.com", "client": client})).await;
    assert!(same_shape(&known, &unknown), "same shape:\n{known}\n{unknown}");
    assert!(!same_shape(&known, &json!({"journeyId": "x"})), "the comparison can fail");
    assert_eq!(known["decision"]["verdict"], "cross-device");
    assert!(unknown["decision"]["verdict"].is_string());
    assert_eq!(
        unknown["publicKey"]["allowCredentials"].as_array().unwrap().len(),
        known["publicKey"]["allowCredentials"].as_array().unwrap().len()
    );
    // The decoy is stable: asking again names the same credential.
    let again =
        start_as(&app, &desktop, WINDOWS_CHROME, json!({"identifier": "nobody@example.com", "client": client})).await;
    assert_eq!(again["publicKey"]["allowCredentials"], unknown["publicKey"]["allowCredentials"]);

    // Timing: interleaved samples of both; the distributions overlap.
    let mut known_ms = Vec::new();
    let mut unknown_ms = Vec::new();
    for i in 0..40 {
        for (id, out) in [("known@example.com", &mut known_ms), (&*format!("ghost{i}@example.com"), &mut unknown_ms)] {
            let t = Instant::now();
            start_as(&app, &desktop, WINDOWS_CHROME, json!({"identifier": id})).await;
            out.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (k, u) = (median(&mut known_ms), median(&mut unknown_ms));
    let (k_lo, k_hi) = (known_ms[4], known_ms[35]);
    let (u_lo, u_hi) = (unknown_ms[4], unknown_ms[35]);
    eprintln!(
        "login/start medians: known {k:.2} ms, unknown {u:.2} ms; 10-90%: known {k_lo:.2}-{k_hi:.2}, unknown {u_lo:.2}-{u_hi:.2}"
    );
    assert!(k_lo <= u_hi && u_lo <= k_hi, "the 10-90% ranges overlap");
    assert!(u / k < 3.0 && k / u < 3.0, "medians within a factor of three: known {k:.2} ms, unknown {u:.2} ms");
});

on_both_backends!(decisions_are_recorded_as_events, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "ella").await;
    let start = json_ok(app.login_start(Some("ella")).await).await;
    let assertion = key.get(&start["publicKey"]).await;
    json_ok(app.login_finish(start["ceremonyId"].as_str().unwrap(), &assertion).await).await;

    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let journey = handoff_core::domain::JourneyId::parse(start["journeyId"].as_str().unwrap()).unwrap();
    let events = settled_events(&db, journey, "session.established").await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["decision.made", "challenge.created", "server.verification", "session.established"]);
    assert_eq!(events[0].attrs_value()["verdict"], start["decision"]["verdict"]);
    // The caller sees the reasons' codes; the operator's record also keeps the detail the
    // caller is not shown (the provider).
    let codes = |reasons: &Value| -> Vec<String> {
        reasons.as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(codes(&events[0].attrs_value()["reasons"]), codes(&start["decision"]["reasons"]));
    assert!(events[0].attrs_value()["reasons"].to_string().contains("1Password"));
    assert!(!start["decision"]["reasons"].to_string().contains("1Password"));
    assert_eq!(events[1].attrs_value()["ceremonyId"], start["ceremonyId"]);
    assert_eq!(events[2].attrs_value()["result"], "ok");
    assert!(events.iter().all(|e| e.device == "server"));
});

on_both_backends!(repeated_failures_in_a_browser_fall_back, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "finn").await;
    for _ in 0..2 {
        let start = json_ok(app.login_start(Some("finn")).await).await;
        assert!(start["ceremonyId"].is_string(), "passkeys still offered: {start}");
        let report = json!({"ceremonyId": start["ceremonyId"], "errorName": "NotAllowedError", "elapsedMs": 1200});
        assert_eq!(app.post("/api/v1/login/failure", &report).await.status(), 204);
        // A report uses the ceremony up.
        expect_error(app.post("/api/v1/login/failure", &report).await, 404, "ceremony-not-found").await;
    }
    let start = json_ok(app.login_start(Some("finn")).await).await;
    // QR approval is on by default, so the way out is the phone's QR code.
    assert_eq!(start["decision"]["verdict"], "qr-approval", "{start}");
    assert!(start["decision"]["reasons"].as_array().unwrap().iter().any(|r| r["code"] == "recent-failures"));
    assert!(start.get("ceremonyId").is_none() && start.get("publicKey").is_none(), "nothing to run: {start}");
    // Another browser is not affected.
    let other = app.new_browser();
    let elsewhere =
        json_ok(other.post(app.url("/api/v1/login/start")).json(&json!({"identifier": "finn"})).send().await.unwrap())
            .await;
    assert!(elsewhere["ceremonyId"].is_string(), "passkeys still offered there: {elsewhere}");
    // Bad reports are named.
    let bad = json!({"ceremonyId": elsewhere["ceremonyId"], "errorName": "<script>"});
    expect_error(app.post("/api/v1/login/failure", &bad).await, 400, "invalid-error-name").await;
});

/// Signs gwen in from a Windows desktop with the passkey on her phone.
async fn cross_device_sign_in(app: &TestApp, desktop: &reqwest::Client, phone_key: &mut SoftKey, expect_offer: bool) {
    let client = json!({"capabilities": {"hybridTransport": true}, "platformAuthenticator": true});
    let start = start_as(app, desktop, WINDOWS_CHROME, json!({"identifier": "gwen", "client": client})).await;
    assert_eq!(start["decision"]["verdict"], "cross-device", "{start}");
    assert_eq!(start["publicKey"]["hints"], json!(["hybrid"]));
    let allow = &start["publicKey"]["allowCredentials"][0];
    assert!(allow["transports"].as_array().unwrap().contains(&json!("hybrid")), "{allow}");
    let assertion = phone_key.get(&start["publicKey"]).await;
    let resp = desktop
        .post(app.url("/api/v1/login/finish"))
        .header("user-agent", WINDOWS_CHROME)
        .json(&json!({"ceremonyId": start["ceremonyId"], "credential": assertion}))
        .send()
        .await
        .unwrap();
    let done = json_ok(resp).await;
    assert_eq!(done["flow"], "cross-device");
    assert_eq!(done["journeyId"], start["journeyId"]);
    assert_eq!(done.get("appendOffer").is_some(), expect_offer, "{done}");
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let journey = handoff_core::domain::JourneyId::parse(start["journeyId"].as_str().unwrap()).unwrap();
    let names: Vec<String> =
        settled_events(&db, journey, "session.established").await.into_iter().map(|e| e.name).collect();
    assert_eq!(names.iter().any(|n| n == "append.offered"), expect_offer, "{names:?}");
}

on_both_backends!(cross_device_sign_in_then_append_offer_with_caps, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut phone_key = SoftKey::with_aaguid(&app.origin, [0; 16]);
    sign_up_on_phone(&app, &mut phone_key, "gwen").await;

    let desktop = app.new_browser();
    cross_device_sign_in(&app, &desktop, &mut phone_key, true).await;
    // "Not now": no offer again while the skip cooldown runs.
    let skip = desktop.post(app.url("/api/v1/passkeys/append/skip")).send().await.unwrap();
    assert_eq!(skip.status(), 204);
    cross_device_sign_in(&app, &desktop, &mut phone_key, false).await;
    // Skipping needs a session.
    let stranger = app.new_browser();
    expect_error(stranger.post(app.url("/api/v1/passkeys/append/skip")).send().await.unwrap(), 401, "not-signed-in")
        .await;
});

on_both_backends!(the_page_can_ask_for_another_method, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "hugo").await;
    let start =
        json_ok(app.post("/api/v1/login/start", &json!({"identifier": "hugo", "prefer": "fallback"})).await).await;
    assert_eq!(start["decision"]["verdict"], "fallback");
    expect_error(
        app.post("/api/v1/login/start", &json!({"identifier": "hugo", "prefer": "carrier-pigeon"})).await,
        400,
        "invalid-field",
    )
    .await;
});

on_both_backends!(a_success_resets_the_failure_count, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "ines").await;
    let fail_once = || async {
        let start = json_ok(app.login_start(Some("ines")).await).await;
        assert!(start["ceremonyId"].is_string(), "passkeys offered: {start}");
        let report = json!({"ceremonyId": start["ceremonyId"], "errorName": "NotAllowedError"});
        assert_eq!(app.post("/api/v1/login/failure", &report).await.status(), 204);
    };
    fail_once().await;
    json_ok(app.sign_in(&mut key, "ines").await).await;
    fail_once().await;
    // One failure since the success: still offered here.
    let start = json_ok(app.login_start(Some("ines")).await).await;
    assert!(start["ceremonyId"].is_string(), "the success reset the count: {start}");
});
