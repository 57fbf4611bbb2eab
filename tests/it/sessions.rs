//! Session cookies and sign-out.

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
