//! Every endpoint answers bad input with a 4xx and an error code that names the problem,
//! and nothing already accepted is lost.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::app::{expect_error, json_ok};
use crate::support::{Backend, SoftKey, TestApp, TestOptions};

async fn raw_post(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.unwrap()
}

const ENDPOINTS: [&str; 4] = [
    "/api/v1/passkeys/registration/start",
    "/api/v1/passkeys/registration/finish",
    "/api/v1/login/start",
    "/api/v1/login/finish",
];

on_both_backends!(malformed_bodies_are_named, |backend| async move {
    let app = TestApp::spawn(backend).await;
    for path in ENDPOINTS {
        expect_error(raw_post(&app, path, Some("application/json"), "{not json").await, 400, "malformed-json").await;
        expect_error(raw_post(&app, path, None, "{}").await, 415, "unsupported-media-type").await;
        let big = format!("{{\"identifier\": \"{}\"}}", "x".repeat(100 * 1024));
        expect_error(raw_post(&app, path, Some("application/json"), big).await, 413, "body-too-large").await;
    }
    let msg = expect_error(
        app.post("/api/v1/passkeys/registration/start", &json!({"identifier": 42})).await,
        400,
        "invalid-field",
    )
    .await;
    assert!(msg.contains("identifier"), "the message names the field: {msg}");
    let msg =
        expect_error(app.post("/api/v1/login/finish", &json!({"credential": {}})).await, 400, "invalid-field").await;
    assert!(msg.contains("ceremonyId"), "the message names the missing field: {msg}");
    expect_error(
        app.post("/api/v1/passkeys/registration/start", &json!({"identifier": "   "})).await,
        400,
        "invalid-identifier",
    )
    .await;
    expect_error(
        app.post("/api/v1/passkeys/registration/start", &json!({"identifier": "a b"})).await,
        400,
        "invalid-identifier",
    )
    .await;
    expect_error(
        app.post("/api/v1/login/start", &json!({"identifier": "x".repeat(300)})).await,
        400,
        "invalid-identifier",
    )
    .await;
    expect_error(app.post("/api/v1/login/start", &json!({"journeyId": "nope"})).await, 400, "invalid-journey-id").await;
    expect_error(app.get("/api/v1/nothing-here").await, 404, "not-found").await;
    expect_error(app.delete("/api/v1/passkeys/AQID").await, 401, "not-signed-in").await;
});

on_both_backends!(unknown_replayed_and_expired_ceremonies, |backend| async move {
    let app = TestApp::spawn_with(backend, TestOptions { ceremony_ttl_seconds: Some(1), ..Default::default() }).await;
    let mut key = SoftKey::new(&app.origin);
    expect_error(app.login_finish("not-a-uuid", &json!({})).await, 400, "invalid-ceremony-id").await;
    expect_error(app.login_finish(&uuid::Uuid::new_v4().to_string(), &json!({})).await, 404, "ceremony-not-found")
        .await;

    // A registration ceremony id is not a login ceremony id.
    let reg = json_ok(app.registration_start("gina").await).await;
    let reg_id = reg["ceremonyId"].as_str().unwrap();
    expect_error(app.login_finish(reg_id, &json!({})).await, 404, "ceremony-not-found").await;

    // Expired: past the 1 s lifetime.
    let start = json_ok(app.registration_start("gina").await).await;
    let credential = key.create(&start["publicKey"]).await;
    app.clock.advance(std::time::Duration::from_millis(1300));
    expect_error(
        app.registration_finish(start["ceremonyId"].as_str().unwrap(), &credential).await,
        410,
        "ceremony-expired",
    )
    .await;

    // Replayed: the second finish of the same ceremony is refused.
    let start = json_ok(app.registration_start("gina").await).await;
    let credential = key.create(&start["publicKey"]).await;
    let id = start["ceremonyId"].as_str().unwrap();
    json_ok(app.registration_finish(id, &credential).await).await;
    expect_error(app.registration_finish(id, &credential).await, 404, "ceremony-not-found").await;
    let start = json_ok(app.login_start(Some("gina")).await).await;
    let assertion = key.get(&start["publicKey"]).await;
    let id = start["ceremonyId"].as_str().unwrap();
    json_ok(app.login_finish(id, &assertion).await).await;
    expect_error(app.login_finish(id, &assertion).await, 404, "ceremony-not-found").await;
});

on_both_backends!(forged_responses_are_refused, |backend| async move {
    // Every forged attempt below is a failure in this browser; keep passkeys on offer.
    let options = TestOptions {
        extra_origin_hosts: vec!["sub.localhost".into()],
        failures_before_fallback: Some(100),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "hank").await;

    // A garbage credential.
    let start = json_ok(app.login_start(Some("hank")).await).await;
    let bad = json!({"id": "AQID", "rawId": "AQID", "type": "public-key", "response": {"clientDataJSON": "!!", "authenticatorData": "", "signature": ""}});
    expect_error(app.login_finish(start["ceremonyId"].as_str().unwrap(), &bad).await, 400, "malformed-credential")
        .await;

    // A tampered signature.
    let start = json_ok(app.login_start(Some("hank")).await).await;
    let mut assertion = key.get(&start["publicKey"]).await;
    let mut sig = URL_SAFE_NO_PAD.decode(assertion["response"]["signature"].as_str().unwrap()).unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 0x01;
    assertion["response"]["signature"] = Value::from(URL_SAFE_NO_PAD.encode(sig));
    expect_error(app.login_finish(start["ceremonyId"].as_str().unwrap(), &assertion).await, 400, "invalid-signature")
        .await;

    // An assertion made for one ceremony, presented to another.
    let first = json_ok(app.login_start(Some("hank")).await).await;
    let second = json_ok(app.login_start(Some("hank")).await).await;
    let assertion = key.get(&first["publicKey"]).await;
    expect_error(app.login_finish(second["ceremonyId"].as_str().unwrap(), &assertion).await, 400, "challenge-mismatch")
        .await;

    // Wrong origin: the same key used from a page on another origin.
    let evil_origin = url::Url::parse(&format!("http://evil.localhost:{}", app.port)).unwrap();
    let mut evil = SoftKey::new(&app.origin).at_origin(&evil_origin);
    evil.store().restore(key.store().snapshot());
    let start = json_ok(app.login_start(Some("hank")).await).await;
    let assertion = evil.get(&start["publicKey"]).await;
    expect_error(app.login_finish(start["ceremonyId"].as_str().unwrap(), &assertion).await, 400, "origin-mismatch")
        .await;

    // Wrong RP ID: an allowed origin, but the authenticator signed for another RP ID.
    let sub = url::Url::parse(&format!("https://sub.localhost:{}", app.port)).unwrap();
    let mut other_rp = SoftKey::new(&sub);
    let start = json_ok(app.registration_start("ivy").await).await;
    let mut pk = start["publicKey"].clone();
    pk["rp"]["id"] = Value::from("sub.localhost");
    let credential = other_rp.create(&pk).await;
    expect_error(
        app.registration_finish(start["ceremonyId"].as_str().unwrap(), &credential).await,
        400,
        "rp-id-mismatch",
    )
    .await;

    // The server still works for honest requests.
    json_ok(app.sign_in(&mut key, "hank").await).await;
});

on_both_backends!(user_verification_is_required, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    let start = json_ok(app.registration_start("jane").await).await;
    let mut credential = key.create(&start["publicKey"]).await;
    // Clear the UV flag (bit 2) in the authenticator data. With "none" attestation nothing
    // signs the registration's authenticator data, so only the flag check can catch this.
    let att = URL_SAFE_NO_PAD.decode(credential["response"]["attestationObject"].as_str().unwrap()).unwrap();
    let mut value: ciborium::Value = ciborium::from_reader(att.as_slice()).unwrap();
    if let ciborium::Value::Map(entries) = &mut value {
        for (k, v) in entries.iter_mut() {
            if let (Some("authData"), ciborium::Value::Bytes(bytes)) = (k.as_text(), v) {
                bytes[32] &= !0x04;
            }
        }
    }
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).unwrap();
    credential["response"]["attestationObject"] = Value::from(URL_SAFE_NO_PAD.encode(out));
    if let Some(obj) = credential["response"].as_object_mut() {
        obj.remove("authenticatorData");
    }
    expect_error(
        app.registration_finish(start["ceremonyId"].as_str().unwrap(), &credential).await,
        400,
        "user-not-verified",
    )
    .await;
    expect_error(app.get("/api/v1/session").await, 401, "not-signed-in").await;
});

on_both_backends!(counter_regression_is_refused_and_recorded, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    let done = app.sign_up(&mut key, "kate").await;
    let before = key.store().snapshot();
    json_ok(app.sign_in(&mut key, "kate").await).await;
    // A clone of the authenticator from before that sign-in replays an older counter.
    key.store().restore(before);
    expect_error(app.sign_in(&mut key, "kate").await, 403, "counter-regression").await;

    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let user = handoff_core::domain::UserId::parse(done["userId"].as_str().unwrap()).unwrap();
    let events = handoff_core::storage::SecurityEvents::of_user(&db, user, 10).await.unwrap();
    assert_eq!(events.len(), 1, "one security event recorded");
    assert_eq!(events[0].kind, "counter-regression");
    assert_eq!(events[0].detail["credentialId"], done["credentialId"]);
});
