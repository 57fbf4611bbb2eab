//! Step-up (PRODUCT §8, issue #18 item 1): a session made by approving a QR code on a phone
//! ran no passkey ceremony in its browser, so it cannot add or delete passkeys, end other
//! sessions or approve QR requests until it completes one there; the approver's
//! "also let this computer save a passkey" grant lets it add exactly one passkey, and only
//! when the operator allows such grants. Every check here failed on `main` at 37d6c7f
//! (all answered 200/204).

use handoff_server::config::RawConfig;
use reqwest::Client;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::qr::{Desktop, Phone};
use crate::support::app::{expect_error, json_ok};
use crate::support::{SoftKey, TestApp, TestOptions};

async fn send(
    http: &Client,
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = http.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// The phone signs up `identifier` (with `key`, so the test can use that passkey from
/// another browser later) and approves a QR attempt the desktop started for it; returns
/// the desktop, now signed in by the redemption.
async fn desktop_signed_in_by_qr(app: &TestApp, phone: &Phone, identifier: &str, allow_passkey: bool) -> Desktop {
    let desktop = Desktop::new(app);
    let qr = json_ok(
        desktop.http.post(app.url("/api/v1/qr")).json(&json!({"identifier": identifier})).send().await.unwrap(),
    )
    .await;
    json_ok(phone.claim(app, &qr).await).await;
    let body = json!({"token": crate::qr::token(&qr), "matchCode": qr["matchCode"], "allowPasskey": allow_passkey});
    assert_eq!(json_ok(phone.post(app, "/api/v1/qr/approve", body).await).await["state"], "approved");
    json_ok(desktop.redeem(app, &qr).await).await;
    desktop
}

async fn phone_with_key(app: &TestApp, identifier: &str) -> (Phone, SoftKey) {
    let http = app.new_browser();
    let mut key = SoftKey::new(&app.origin);
    app.sign_up_in(&http, &mut key, identifier).await;
    (Phone { http }, key)
}

/// Registration start and finish in `http`'s browser with a new authenticator.
async fn add_passkey(app: &TestApp, http: &Client, identifier: &str) -> reqwest::Response {
    let start = send(
        http,
        app,
        reqwest::Method::POST,
        "/api/v1/passkeys/registration/start",
        Some(json!({"identifier": identifier})),
    )
    .await;
    if start.status() != 200 {
        return start;
    }
    let start = json_ok(start).await;
    let credential = SoftKey::new(&app.origin).create(&start["publicKey"]).await;
    send(
        http,
        app,
        reqwest::Method::POST,
        "/api/v1/passkeys/registration/finish",
        Some(json!({"ceremonyId": start["ceremonyId"], "credential": credential})),
    )
    .await
}

on_both_backends!(a_qr_session_steps_up_before_sensitive_actions, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let (phone, mut phone_key) = phone_with_key(&app, "alice@example.com").await;
    let desktop = desktop_signed_in_by_qr(&app, &phone, "alice@example.com", false).await;

    let session = json_ok(send(&desktop.http, &app, reqwest::Method::GET, "/api/v1/session", None).await).await;
    assert_eq!(session["method"], "qr-approval");
    assert_eq!(session["recovery"], false);
    assert!(session.get("stepUpUntil").is_none(), "no passkey ceremony ran in this browser: {session}");
    assert_eq!(session["mayAddPasskey"], false);

    // Add a passkey: refused before any ceremony is created.
    expect_error(add_passkey(&app, &desktop.http, "alice@example.com").await, 401, "reauth-required").await;
    // Delete the phone's passkey.
    let passkeys = json_ok(send(&phone.http, &app, reqwest::Method::GET, "/api/v1/passkeys", None).await).await;
    let credential = passkeys["passkeys"][0]["credentialId"].as_str().unwrap().to_owned();
    let delete_path = format!("/api/v1/passkeys/{credential}");
    expect_error(send(&desktop.http, &app, reqwest::Method::DELETE, &delete_path, None).await, 401, "reauth-required")
        .await;
    // End the phone's session.
    let sessions = json_ok(send(&desktop.http, &app, reqwest::Method::GET, "/api/v1/sessions", None).await).await;
    let list = sessions["sessions"].as_array().unwrap();
    let mine = list.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(mine["method"], "qr-approval");
    assert!(mine.get("verifiedAt").is_none(), "{mine}");
    let other = list.iter().find(|s| s["current"] == false).expect("the phone's session");
    let end_path = format!("/api/v1/sessions/{}", other["id"].as_str().unwrap());
    expect_error(send(&desktop.http, &app, reqwest::Method::DELETE, &end_path, None).await, 401, "reauth-required")
        .await;
    // Approve another QR request as if it were the phone.
    let victim = Desktop::new(&app);
    let qr2 = victim.create(&app).await;
    let as_phone = Phone { http: desktop.http.clone() };
    json_ok(as_phone.claim(&app, &qr2).await).await;
    expect_error(as_phone.approve(&app, &qr2, qr2["matchCode"].as_str().unwrap()).await, 401, "reauth-required").await;
    // Nothing was changed by the refused requests.
    let after = json_ok(send(&phone.http, &app, reqwest::Method::GET, "/api/v1/passkeys", None).await).await;
    assert_eq!(after["passkeys"].as_array().unwrap().len(), 1);
    json_ok(send(&phone.http, &app, reqwest::Method::GET, "/api/v1/session", None).await).await;

    // A passkey ceremony in the desktop's browser (the phone's passkey over hybrid) is the
    // step-up: the same session may now do all of it.
    let start =
        json_ok(send(&desktop.http, &app, reqwest::Method::POST, "/api/v1/login/start", Some(json!({}))).await).await;
    let assertion = phone_key.get(&start["publicKey"]).await;
    let finish = send(
        &desktop.http,
        &app,
        reqwest::Method::POST,
        "/api/v1/login/finish",
        Some(json!({"ceremonyId": start["ceremonyId"], "credential": assertion})),
    )
    .await;
    json_ok(finish).await;
    let session = json_ok(send(&desktop.http, &app, reqwest::Method::GET, "/api/v1/session", None).await).await;
    assert_eq!(session["method"], "qr-approval", "the session is the same one, stepped up");
    assert!(session["stepUpUntil"].is_string(), "{session}");
    json_ok(add_passkey(&app, &desktop.http, "alice@example.com").await).await;
    let resp = send(&desktop.http, &app, reqwest::Method::DELETE, &end_path, None).await;
    assert_eq!(resp.status(), 204);
    expect_error(send(&phone.http, &app, reqwest::Method::GET, "/api/v1/session", None).await, 401, "not-signed-in")
        .await;
});

on_both_backends!(a_passkey_sign_in_is_a_step_up_until_the_window_ends, |backend| async move {
    let extra = RawConfig { qr_reauth_after_seconds: Some(1), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    let mut key = SoftKey::new(&app.origin);
    let http = app.new_browser();
    app.sign_up_in(&http, &mut key, "bo@example.com").await;
    let session = json_ok(send(&http, &app, reqwest::Method::GET, "/api/v1/session", None).await).await;
    assert_eq!(session["method"], "passkey");
    assert!(session["stepUpUntil"].is_string());
    app.clock.advance(std::time::Duration::from_millis(1100));
    expect_error(add_passkey(&app, &http, "bo@example.com").await, 401, "reauth-required").await;
    let passkeys = json_ok(send(&http, &app, reqwest::Method::GET, "/api/v1/passkeys", None).await).await;
    let delete_path = format!("/api/v1/passkeys/{}", passkeys["passkeys"][0]["credentialId"].as_str().unwrap());
    expect_error(send(&http, &app, reqwest::Method::DELETE, &delete_path, None).await, 401, "reauth-required").await;
    // Signing out this browser's own session needs nothing.
    let sessions = json_ok(send(&http, &app, reqwest::Method::GET, "/api/v1/sessions", None).await).await;
    let own = sessions["sessions"][0]["id"].as_str().unwrap().to_owned();
    let resp = send(&http, &app, reqwest::Method::DELETE, &format!("/api/v1/sessions/{own}"), None).await;
    assert_eq!(resp.status(), 204);
});

on_both_backends!(the_approvers_grant_adds_one_passkey_only_when_the_operator_allows_it, |backend| async move {
    // Operator off (the default): the phone's tick changes nothing.
    let app = TestApp::spawn(backend).await;
    let (phone, _) = phone_with_key(&app, "cleo@example.com").await;
    let desktop = desktop_signed_in_by_qr(&app, &phone, "cleo@example.com", true).await;
    let session = json_ok(send(&desktop.http, &app, reqwest::Method::GET, "/api/v1/session", None).await).await;
    assert_eq!(session["mayAddPasskey"], false);
    expect_error(add_passkey(&app, &desktop.http, "cleo@example.com").await, 401, "reauth-required").await;

    // Operator on: unticked gives nothing; ticked gives one passkey and nothing else.
    let extra = RawConfig { qr_session_may_add_passkey: Some(true), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    let (phone, _) = phone_with_key(&app, "dan@example.com").await;
    let claim_desktop = Desktop::new(&app);
    let qr = claim_desktop.create(&app).await;
    assert_eq!(json_ok(phone.claim(&app, &qr).await).await["passkeyGrantOffered"], true);
    let unticked = desktop_signed_in_by_qr(&app, &phone, "dan@example.com", false).await;
    expect_error(add_passkey(&app, &unticked.http, "dan@example.com").await, 401, "reauth-required").await;

    let ticked = desktop_signed_in_by_qr(&app, &phone, "dan@example.com", true).await;
    let session = json_ok(send(&ticked.http, &app, reqwest::Method::GET, "/api/v1/session", None).await).await;
    assert_eq!(session["mayAddPasskey"], true);
    assert!(session.get("stepUpUntil").is_none());
    let added = json_ok(add_passkey(&app, &ticked.http, "dan@example.com").await).await;
    assert!(added["credentialId"].is_string());
    // Adding kept the session as it was made: still no step-up, and the grant is used up.
    let session = json_ok(send(&ticked.http, &app, reqwest::Method::GET, "/api/v1/session", None).await).await;
    assert_eq!(session["method"], "qr-approval");
    assert_eq!(session["mayAddPasskey"], false);
    expect_error(add_passkey(&app, &ticked.http, "dan@example.com").await, 401, "reauth-required").await;
    let passkeys = json_ok(send(&phone.http, &app, reqwest::Method::GET, "/api/v1/passkeys", None).await).await;
    assert_eq!(passkeys["passkeys"].as_array().unwrap().len(), 2);
    let delete_path = format!("/api/v1/passkeys/{}", passkeys["passkeys"][0]["credentialId"].as_str().unwrap());
    expect_error(send(&ticked.http, &app, reqwest::Method::DELETE, &delete_path, None).await, 401, "reauth-required")
        .await;
});

on_both_backends!(signing_in_as_another_user_ends_the_previous_session, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let http = app.new_browser();
    let mut first = SoftKey::new(&app.origin);
    app.sign_up_in(&http, &mut first, "erin@example.com").await;
    let jar_before = json_ok(send(&http, &app, reqwest::Method::GET, "/api/v1/sessions", None).await).await;
    let erin_session = jar_before["sessions"][0]["id"].as_str().unwrap().to_owned();
    // A second account signs up in the same browser.
    let mut second = SoftKey::new(&app.origin);
    app.sign_up_in(&http, &mut second, "finn@example.com").await;
    // Erin signs in elsewhere: her list no longer has the session the browser dropped.
    let other = app.new_browser();
    let start = json_ok(
        other
            .post(app.url("/api/v1/login/start"))
            .json(&json!({"identifier": "erin@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let assertion = first.get(&start["publicKey"]).await;
    json_ok(
        other
            .post(app.url("/api/v1/login/finish"))
            .json(&json!({"ceremonyId": start["ceremonyId"], "credential": assertion}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let sessions = json_ok(send(&other, &app, reqwest::Method::GET, "/api/v1/sessions", None).await).await;
    let ids: Vec<&str> = sessions["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "only the new session is live: {sessions}");
    assert!(!ids.contains(&erin_session.as_str()));
});
