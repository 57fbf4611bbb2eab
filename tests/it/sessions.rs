//! Session cookies and sign-out.

use handoff_server::config::RawConfig;

use crate::on_both_backends;
use crate::support::app::{expect_error, json_ok, set_cookie};
use crate::support::{SoftKey, TestApp, TestOptions};

on_both_backends!(session_cookie_flags_and_revocation, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "leo").await;
    app.delete("/api/v1/session").await;

    let start = json_ok(app.login_start(Some("leo")).await).await;
    let assertion = key.get(&start["publicKey"]).await;
    let resp = app.login_finish(start["ceremonyId"].as_str().unwrap(), &assertion).await;
    let cookie = set_cookie(resp.headers(), "handoff_session").expect("session cookie set");
    json_ok(resp).await;
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "no Secure flag on an http origin: {cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");

    // Sign-out revokes server-side: the old cookie value no longer works anywhere.
    let value = cookie.split(';').next().unwrap().to_owned();
    let other = app.new_browser();
    let ok = other.get(app.url("/api/v1/session")).header("cookie", &value).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let out = app.delete("/api/v1/session").await;
    assert_eq!(out.status(), 204);
    let cleared = set_cookie(out.headers(), "handoff_session").expect("cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let replay = other.get(app.url("/api/v1/session")).header("cookie", &value).send().await.unwrap();
    expect_error(replay, 401, "not-signed-in").await;
    // Garbage cookies are simply "not signed in".
    let junk =
        other.get(app.url("/api/v1/session")).header("cookie", "handoff_session=../../etc").send().await.unwrap();
    expect_error(junk, 401, "not-signed-in").await;
});

on_both_backends!(https_origins_get_secure_cookies, |backend| async move {
    let app = TestApp::spawn_with(backend, TestOptions { https_origin: true, ..Default::default() }).await;
    let mut key = SoftKey::new(&app.origin);
    let start = json_ok(app.registration_start("mia").await).await;
    let credential = key.create(&start["publicKey"]).await;
    let resp = app.registration_finish(start["ceremonyId"].as_str().unwrap(), &credential).await;
    let cookie = set_cookie(resp.headers(), "__Host-handoff_session").expect("session cookie set with __Host-");
    assert_eq!(resp.status(), 200);
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/") && !cookie.contains("Domain"), "{cookie}");
    assert!(set_cookie(resp.headers(), "handoff_session").is_none());
    // Strict-Transport-Security on an https origin (none on http: see http_origins_send_no_hsts).
    let hsts = resp.headers().get("strict-transport-security").expect("HSTS on https").to_str().unwrap().to_owned();
    assert!(hsts.starts_with("max-age="), "{hsts}");
    // A cookie without the prefix (as a sibling subdomain could plant) is not a session.
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    let planted = app.new_browser();
    let resp = planted
        .get(app.url("/api/v1/session"))
        .header("cookie", format!("handoff_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = planted
        .get(app.url("/api/v1/session"))
        .header("cookie", format!("__Host-handoff_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
});

on_both_backends!(http_origins_send_no_hsts, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let resp = app.get("/healthz").await;
    assert!(resp.headers().get("strict-transport-security").is_none());
});

on_both_backends!(signed_in_devices_are_listed_and_can_be_ended, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "nia").await;
    // A second device signs in.
    let phone = app.new_browser();
    let start = json_ok(
        phone
            .post(app.url("/api/v1/login/start"))
            .json(&serde_json::json!({"identifier": "nia"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let assertion = key.get(&start["publicKey"]).await;
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    let resp = phone
        .post(app.url("/api/v1/login/finish"))
        .header("user-agent", iphone)
        .json(&serde_json::json!({"ceremonyId": start["ceremonyId"], "credential": assertion}))
        .send()
        .await
        .unwrap();
    json_ok(resp).await;
    let list = json_ok(app.get("/api/v1/sessions").await).await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!(other["device"]["os"], "iOS");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    // End the phone's session from here; the phone is signed out.
    let id = other["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/api/v1/sessions/{id}")).await.status(), 204);
    expect_error(phone.get(app.url("/api/v1/session")).send().await.unwrap(), 401, "not-signed-in").await;
    expect_error(app.delete(&format!("/api/v1/sessions/{id}")).await, 404, "session-not-found").await;
    expect_error(app.delete("/api/v1/sessions/zz").await, 400, "invalid-session-id").await;
    // Another account cannot end this one's sessions.
    let mine = json_ok(app.get("/api/v1/sessions").await).await["sessions"][0]["id"].as_str().unwrap().to_owned();
    let mut other_key = SoftKey::new(&app.origin);
    let stranger = TestApp::sign_up_in(&app, &app.new_browser(), &mut other_key, "oli").await;
    expect_error(
        stranger.delete(app.url(&format!("/api/v1/sessions/{mine}"))).send().await.unwrap(),
        404,
        "session-not-found",
    )
    .await;
    json_ok(app.get("/api/v1/session").await).await;
});

// A session unused for `session_idle` ends even though its absolute lifetime has not run
// out; use moves it on (kept to the minute). Sessions on `main` at 37d6c7f had no idle end.
on_both_backends!(an_idle_session_ends, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "idle@example.com").await;
    assert_eq!(app.get("/api/v1/session").await.status(), 200);
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let age_sessions = |ms: i64| {
        let db = db.clone();
        async move {
            db.run_script(&format!("UPDATE sessions SET last_seen_at = last_seen_at - {ms}")).await.unwrap();
        }
    };
    // Two days without use (the default idle time is three): still signed in, and the
    // request notes the use.
    age_sessions(2 * 86_400_000).await;
    assert_eq!(app.get("/api/v1/session").await.status(), 200);
    age_sessions(2 * 86_400_000).await;
    assert_eq!(app.get("/api/v1/session").await.status(), 200, "the last use moved the idle end on");
    // Over three days without use: signed out.
    age_sessions(3 * 86_400_000 + 1_000).await;
    let resp = app.get("/api/v1/session").await;
    expect_error(resp, 401, "not-signed-in").await;
});

// "Sign out everywhere" ends every session of the account, after a step-up.
on_both_backends!(sign_out_everywhere_ends_every_session, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    app.sign_up(&mut key, "all@example.com").await;
    let other = app.new_browser();
    let start = json_ok(
        other
            .post(app.url("/api/v1/login/start"))
            .json(&serde_json::json!({"identifier": "all@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let assertion = key.get(&start["publicKey"]).await;
    let finish = other
        .post(app.url("/api/v1/login/finish"))
        .json(&serde_json::json!({"ceremonyId": start["ceremonyId"], "credential": assertion}))
        .send()
        .await
        .unwrap();
    json_ok(finish).await;
    let resp = app.client.delete(app.url("/api/v1/sessions")).send().await.unwrap();
    let ended = json_ok(resp).await;
    assert_eq!(ended["ended"], 2);
    expect_error(app.get("/api/v1/session").await, 401, "not-signed-in").await;
    expect_error(other.get(app.url("/api/v1/session")).send().await.unwrap(), 401, "not-signed-in").await;
});

// The provider lists are enforced at registration and at every sign-in, not only in
// decisions (security review L10).
on_both_backends!(blocked_providers_neither_register_nor_sign_in, |backend| async move {
    let blocked = RawConfig { blocked_providers: Some(vec!["1Password".into()]), ..RawConfig::default() };
    let app = TestApp::spawn_with(backend, TestOptions { extra: blocked.clone(), ..Default::default() }).await;
    let mut key = SoftKey::new(&app.origin); // reports 1Password's AAGUID
    let start = json_ok(app.registration_start("blocked@example.com").await).await;
    let credential = key.create(&start["publicKey"]).await;
    let refused = app.registration_finish(start["ceremonyId"].as_str().unwrap(), &credential).await;
    let message = expect_error(refused, 403, "provider-not-allowed").await;
    assert!(message.contains("1Password"), "{message}");

    // A passkey registered before the operator blocked its provider no longer signs in.
    let open = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&open.origin);
    open.sign_up(&mut key, "early@example.com").await;
    let options = TestOptions { database_url: Some(open.database_url.clone()), extra: blocked, ..Default::default() };
    let strict = TestApp::spawn_with(backend, options).await;
    let mut key = key.at_origin(&strict.origin);
    let start = json_ok(strict.login_start(None).await).await;
    let assertion = key.get(&start["publicKey"]).await;
    let refused = strict.login_finish(start["ceremonyId"].as_str().unwrap(), &assertion).await;
    expect_error(refused, 403, "provider-not-allowed").await;
});
