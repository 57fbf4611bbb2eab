//! Sign-up and sign-in, both styles, and the record of where each passkey lives.

use serde_json::Value;

use crate::on_both_backends;
use crate::support::app::{expect_error, json_ok};
use crate::support::{SoftKey, TestApp};

on_both_backends!(sign_up_then_sign_in_identifier_first, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    let done = app.sign_up(&mut key, "Alice@Example.com").await;
    assert_eq!(done["provider"]["name"], "1Password");
    let user_id = done["userId"].as_str().unwrap().to_owned();

    // The new account is signed in right away.
    let session = json_ok(app.get("/api/v1/session").await).await;
    assert_eq!(session["identifier"], "alice@example.com");
    assert_eq!(session["userId"], user_id.as_str());

    // Sign out, then sign in identifier-first (case-insensitively).
    assert_eq!(app.delete("/api/v1/session").await.status(), 204);
    expect_error(app.get("/api/v1/session").await, 401, "not-signed-in").await;
    let start = json_ok(app.login_start(Some("ALICE@example.com")).await).await;
    let allow = start["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allow.len(), 1, "allowCredentials names the account's passkey: {start}");
    assert_eq!(allow[0]["id"], done["credentialId"]);
    assert_eq!(start["publicKey"]["userVerification"], "required");
    assert_eq!(start["decision"]["verdict"], "local");
    assert!(start["journeyId"].as_str().unwrap().len() == 36);
    let assertion = key.get(&start["publicKey"]).await;
    let signed_in = json_ok(app.login_finish(start["ceremonyId"].as_str().unwrap(), &assertion).await).await;
    assert_eq!(signed_in["userId"], user_id.as_str());
    assert_eq!(signed_in["identifier"], "alice@example.com");
    json_ok(app.get("/api/v1/session").await).await;
});

on_both_backends!(usernameless_sign_in, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    let done = app.sign_up(&mut key, "bob").await;
    app.delete("/api/v1/session").await;
    let start = json_ok(app.login_start(None).await).await;
    assert!(start["publicKey"]["allowCredentials"].as_array().is_none_or(Vec::is_empty), "{start}");
    let assertion = key.get(&start["publicKey"]).await;
    assert!(assertion["response"]["userHandle"].is_string(), "a discoverable assertion carries the user handle");
    let signed_in = json_ok(app.login_finish(start["ceremonyId"].as_str().unwrap(), &assertion).await).await;
    assert_eq!(signed_in["userId"], done["userId"]);
});

on_both_backends!(registration_options_require_discoverable_verified_credentials, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let start = json_ok(app.registration_start("carol").await).await;
    let pk = &start["publicKey"];
    assert_eq!(pk["rp"]["id"], "localhost");
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    let algs: Vec<i64> =
        pk["pubKeyCredParams"].as_array().unwrap().iter().map(|p| p["alg"].as_i64().unwrap()).collect();
    assert!(algs.contains(&-7) && algs.contains(&-257), "ES256 and RS256 offered: {algs:?}");
    assert!(pk["challenge"].as_str().unwrap().len() >= 43, "challenge is at least 32 bytes of base64url");
    assert_eq!(pk["user"]["name"], "carol");
});

on_both_backends!(where_the_passkey_lives_is_recorded, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::new(&app.origin);
    let start = json_ok(app.registration_start("dave").await).await;
    let mut credential = key.create(&start["publicKey"]).await;
    // A browser reports transports and attachment beside the attestation.
    credential["response"]["transports"] = serde_json::json!(["hybrid", "internal"]);
    credential["authenticatorAttachment"] = Value::from("platform");
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    let resp = app
        .client
        .post(app.url("/api/v1/passkeys/registration/finish"))
        .header("user-agent", iphone)
        .json(&serde_json::json!({"ceremonyId": start["ceremonyId"], "credential": credential}))
        .send()
        .await
        .unwrap();
    json_ok(resp).await;
    let list = json_ok(app.get("/api/v1/passkeys").await).await;
    let p = &list["passkeys"][0];
    assert_eq!(p["provider"]["name"], "1Password");
    assert_eq!(p["provider"]["aaguid"], "bada5566-a7aa-401f-bd96-45619a55120d");
    assert!(p["provider"]["iconLight"].as_str().unwrap().starts_with("data:image/"), "icon from the community list");
    assert_eq!(p["transports"], serde_json::json!(["hybrid", "internal"]));
    assert_eq!(p["authenticatorAttachment"], "platform");
    assert_eq!(p["createdOn"], serde_json::json!({"os": "iOS", "browser": "Safari", "formFactor": "phone"}));
    assert!(p["backupEligible"].is_boolean() && p["backupState"].is_boolean());
    assert!(p["lastUsedAt"].is_null());

    // Using it records when and on which device.
    app.delete("/api/v1/session").await;
    let windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    let start = json_ok(app.login_start(Some("dave")).await).await;
    let assertion = key.get(&start["publicKey"]).await;
    let resp = app
        .client
        .post(app.url("/api/v1/login/finish"))
        .header("user-agent", windows)
        .json(&serde_json::json!({"ceremonyId": start["ceremonyId"], "credential": assertion}))
        .send()
        .await
        .unwrap();
    json_ok(resp).await;
    let session = json_ok(app.get("/api/v1/session").await).await;
    let p = &session["passkeys"][0];
    assert!(p["lastUsedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(p["lastUsedOn"], serde_json::json!({"os": "Windows", "browser": "Chrome", "formFactor": "desktop"}));
});

on_both_backends!(unknown_aaguid_is_unknown, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut key = SoftKey::with_aaguid(&app.origin, [0; 16]);
    let done = app.sign_up(&mut key, "erin").await;
    assert_eq!(done["provider"]["name"], "unknown");
    assert_eq!(done["provider"]["aaguid"], "00000000-0000-0000-0000-000000000000");
});

on_both_backends!(a_signed_in_account_adds_and_deletes_passkeys, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let mut phone = SoftKey::new(&app.origin);
    let mut laptop = SoftKey::with_aaguid(&app.origin, [7; 16]);
    let first = app.sign_up(&mut phone, "frank").await;

    // Adding a second passkey needs this account's session; the exclude list names the first.
    let start = json_ok(app.registration_start("frank").await).await;
    assert_eq!(start["publicKey"]["excludeCredentials"][0]["id"], first["credentialId"]);
    let credential = laptop.create(&start["publicKey"]).await;
    let second = json_ok(app.registration_finish(start["ceremonyId"].as_str().unwrap(), &credential).await).await;
    assert_eq!(second["userId"], first["userId"]);
    let list = json_ok(app.get("/api/v1/passkeys").await).await;
    assert_eq!(list["passkeys"].as_array().unwrap().len(), 2);

    // Another browser cannot add a passkey to frank: its start is answered as for a new
    // identifier (no existence oracle), and the ceremony fails at finish.
    let stranger = app.new_browser();
    let resp = stranger
        .post(app.url("/api/v1/passkeys/registration/start"))
        .json(&serde_json::json!({"identifier": "frank"}))
        .send()
        .await
        .unwrap();
    let start = json_ok(resp).await;
    assert!(start["publicKey"]["excludeCredentials"].as_array().is_none_or(|e| e.is_empty()), "{start}");
    let credential = SoftKey::new(&app.origin).create(&start["publicKey"]).await;
    let resp = stranger
        .post(app.url("/api/v1/passkeys/registration/finish"))
        .json(&serde_json::json!({"ceremonyId": start["ceremonyId"], "credential": credential}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 409, "identifier-taken").await;
    assert_eq!(json_ok(app.get("/api/v1/passkeys").await).await["passkeys"].as_array().unwrap().len(), 2);

    // Delete the first; it can no longer sign in, the second still can.
    let path = format!("/api/v1/passkeys/{}", first["credentialId"].as_str().unwrap());
    assert_eq!(app.delete(&path).await.status(), 204);
    expect_error(app.delete(&path).await, 404, "passkey-not-found").await;
    app.delete("/api/v1/session").await;
    let start = json_ok(app.login_start(None).await).await;
    let mut only_first = SoftKey::new(&app.origin);
    only_first.store().restore(phone.store().snapshot());
    let assertion = only_first.get(&start["publicKey"]).await;
    expect_error(app.login_finish(start["ceremonyId"].as_str().unwrap(), &assertion).await, 401, "unknown-credential")
        .await;
    let ok = app.sign_in(&mut laptop, "frank").await;
    json_ok(ok).await;
});
