//! The device authorization grant (RFC 8628, PRODUCT §6.2) as a TV app and a phone meet it.
//! The device is the `openidconnect` crate's device flow, which discovers the provider, asks
//! for codes and polls the token endpoint itself (its sleep moves the server's clock, so
//! intervals pass without waiting); the phone is a browser signed in with a passkey that
//! enters the code on the verification page's API and approves.

use std::time::Duration;

use openidconnect::core::{CoreDeviceAuthorizationResponse, CoreIdToken, CoreTokenResponse};
use openidconnect::{DeviceAuthorizationUrl, Nonce, OAuth2TokenResponse, Scope, TokenResponse as _};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::oidc::{OPERATOR, Registered, issuer, no_redirects, register};
use crate::on_both_backends;
use crate::support::app::{expect_error, json_ok, settled_events};
use crate::support::{SoftKey, TestApp, TestOptions};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A browser signed in with a passkey (usually a phone), that can verify again.
struct Phone {
    http: Client,
    key: SoftKey,
    identifier: String,
}

impl Phone {
    async fn signed_up(app: &TestApp, identifier: &str) -> Self {
        let http = Client::builder().cookie_store(true).build().unwrap();
        let mut key = SoftKey::new(&app.origin);
        app.sign_up_in(&http, &mut key, identifier).await;
        Self { http, key, identifier: identifier.to_owned() }
    }

    async fn post(&self, app: &TestApp, path: &str, body: Value) -> Response {
        self.http.post(app.url(path)).header("origin", issuer(app)).json(&body).send().await.unwrap()
    }

    async fn claim(&self, app: &TestApp, code: &str, via: &str) -> Response {
        self.post(app, "/api/v1/device/claim", json!({"userCode": code, "via": via})).await
    }

    async fn approve(&self, app: &TestApp, code: &str, pick: Option<&str>) -> Response {
        self.post(app, "/api/v1/device/approve", json!({"userCode": code, "pick": pick})).await
    }

    /// A passkey sign-in in this browser: the session counts as freshly verified again.
    async fn verify_again(&mut self, app: &TestApp) {
        let start = json_ok(self.post(app, "/api/v1/login/start", json!({"identifier": self.identifier})).await).await;
        let assertion = self.key.get(&start["publicKey"]).await;
        let body = json!({"ceremonyId": start["ceremonyId"], "credential": assertion});
        json_ok(self.post(app, "/api/v1/login/finish", body).await).await;
    }

    async fn user_id(&self, app: &TestApp) -> String {
        let session = json_ok(self.http.get(app.url("/api/v1/session")).send().await.unwrap()).await;
        session["userId"].as_str().unwrap().to_owned()
    }
}

/// A public device client (no redirect URI: a TV has none).
async fn tv(app: &TestApp) -> Registered {
    register(
        app,
        json!({"name": "Living-room TV", "redirectUris": [], "public": true, "firstParty": false, "device": true}),
    )
    .await
}

/// Asks for codes as a device would (form body); returns the JSON answer.
async fn device_codes(app: &TestApp, client: &Registered, scope: &str) -> Value {
    let form = [("client_id", client.id.as_str()), ("scope", scope)];
    json_ok(app.client.post(app.url("/oauth2/device_authorization")).form(&form).send().await.unwrap()).await
}

/// One poll of the token endpoint.
async fn poll(app: &TestApp, client: &Registered, device_code: &str) -> Response {
    let form = [("grant_type", GRANT), ("device_code", device_code), ("client_id", client.id.as_str())];
    app.client.post(app.url("/oauth2/token")).form(&form).send().await.unwrap()
}

async fn oauth_error(response: Response, error: &str) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some(error)), "{body}");
    body
}

async fn journey_events(app: &TestApp, journey: &str, last: &str) -> Vec<String> {
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let id = handoff_core::domain::JourneyId::parse(journey).unwrap();
    settled_events(&db, id, last).await.into_iter().map(|e| e.name).collect()
}

on_both_backends!(a_tv_signs_in_with_the_openidconnect_crate_while_the_phone_approves, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = tv(&app).await;
    let mut phone = Phone::signed_up(&app, "tess@example.com").await;

    // Discovery names the endpoint and the grant; the crate needs the endpoint set by hand.
    let http = no_redirects();
    let discovery: Value =
        http.get(app.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    let endpoint = discovery["device_authorization_endpoint"].as_str().unwrap().to_owned();
    assert_eq!(endpoint, format!("{}/oauth2/device_authorization", issuer(&app)));
    assert!(discovery["grant_types_supported"].as_array().unwrap().iter().any(|g| g == GRANT));
    let metadata = openidconnect::core::CoreProviderMetadata::discover_async(
        openidconnect::IssuerUrl::new(issuer(&app)).unwrap(),
        &http,
    )
    .await
    .unwrap();
    let rp = openidconnect::core::CoreClient::from_provider_metadata(
        metadata,
        openidconnect::ClientId::new(client.id.clone()),
        None,
    )
    .set_device_authorization_url(DeviceAuthorizationUrl::new(endpoint).unwrap());

    let details: CoreDeviceAuthorizationResponse = rp
        .exchange_device_code()
        .add_scope(Scope::new("profile".into()))
        .request_async(&http)
        .await
        .expect("device authorization");
    let user_code = details.user_code().secret().clone();
    assert!(regex_like_user_code(&user_code), "XXXX-XXXX of consonants: {user_code}");
    assert!(details.expires_in() <= Duration::from_secs(600));
    let complete = details.verification_uri_complete().unwrap().secret().clone();
    assert_eq!(complete, format!("{}/device?user_code={user_code}", issuer(&app)));

    // The device polls (each wait moves the server's clock by the interval) while the phone
    // types the code and approves.
    let clock = app.clock.clone();
    let sleep = move |d: Duration| {
        clock.advance(d);
        tokio::time::sleep(Duration::from_millis(100))
    };
    let device = async {
        rp.exchange_device_access_token(&details)
            .unwrap()
            .request_async(&http, sleep, None)
            .await
            .expect("tokens after the approval")
    };
    let approving = async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let claim = json_ok(phone.claim(&app, &user_code.to_lowercase().replace('-', " "), "typed").await).await;
        assert_eq!(claim["state"], "claimed");
        assert_eq!(claim["client"]["name"], "Living-room TV");
        assert_eq!(claim["device"]["ip"], "127.0.0.1");
        assert!(claim["device"]["requestedAt"].is_string());
        assert!(claim.get("choices").is_none(), "a typed code needs no pick: {claim}");
        // Passkey checks a minute old are fresh enough; the sign-up was moments ago.
        json_ok(phone.approve(&app, &user_code, None).await).await;
        claim["journeyId"].as_str().unwrap().to_owned()
    };
    let (tokens, journey): (CoreTokenResponse, String) = tokio::join!(device, approving);

    // The ID token verifies with the published keys and says who approved and how.
    let id_token: &CoreIdToken = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(&rp.id_token_verifier(), |_: Option<&Nonce>| Ok(())).expect("ID token verifies");
    assert_eq!(claims.subject().as_str(), phone.user_id(&app).await);
    let amr: Vec<String> = claims.auth_method_refs().unwrap().iter().map(|a| a.as_str().to_owned()).collect();
    assert_eq!(amr, ["pop", "mca"], "approved from another device");
    assert_eq!(claims.preferred_username().unwrap().as_str(), "tess@example.com");
    let userinfo = app.client.get(app.url("/oauth2/userinfo")).bearer_auth(tokens.access_token().secret()).send();
    assert_eq!(json_ok(userinfo.await.unwrap()).await["preferred_username"], "tess@example.com");

    // The device code redeems once.
    oauth_error(poll(&app, &client, details.device_code().secret()).await, "invalid_grant").await;

    // Every step is in the journey, in its own flow, attributed to the client.
    let names = journey_events(&app, &journey, "device.tokens_issued").await;
    for step in [
        "device.code_issued",
        "device.code_entered",
        "device.confirmation_shown",
        "device.approved",
        "device.tokens_issued",
        "session.established",
    ] {
        assert!(names.iter().any(|n| n == step), "{step} missing from {names:?}");
    }
    let operator = |path: String| app.client.get(app.url(&path)).bearer_auth(OPERATOR).send();
    let view = json_ok(operator(format!("/api/v1/journeys/{journey}")).await.unwrap()).await;
    assert_eq!(view["flow"], "device-grant", "{view}");
    assert_eq!(view["outcome"], "success", "{view}");
    assert_eq!(view["segments"]["client"].as_str(), Some(client.id.as_str()), "{view}");
    let funnel = json_ok(operator("/api/v1/funnels?flow=device-grant".into()).await.unwrap()).await;
    let steps: Vec<&str> = funnel["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["code-issued", "page-opened", "code-entered", "confirmation-shown", "confirmed", "session"]);
    assert_eq!(funnel["steps"][5]["count"], 1, "{funnel}");
    phone.verify_again(&app).await;
});

fn regex_like_user_code(code: &str) -> bool {
    let letters: Vec<char> = code.chars().collect();
    letters.len() == 9
        && letters[4] == '-'
        && letters.iter().enumerate().all(|(i, c)| i == 4 || "BCDFGHJKLMNPQRSTVWXZ".contains(*c))
}

on_both_backends!(polling_answers_pending_slow_down_denied_and_expired, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = tv(&app).await;
    let phone = Phone::signed_up(&app, "uma@example.com").await;
    let codes = device_codes(&app, &client, "openid").await;
    let device_code = codes["device_code"].as_str().unwrap();
    assert_eq!(codes["interval"], 5);
    assert_eq!(codes["expires_in"], 600);

    oauth_error(poll(&app, &client, device_code).await, "authorization_pending").await;
    // Again at once: too early, and the interval grows by 5 s.
    let slow = oauth_error(poll(&app, &client, device_code).await, "slow_down").await;
    assert!(slow["error_description"].as_str().unwrap().contains("10 s"), "{slow}");
    app.clock.advance(Duration::from_secs(6));
    oauth_error(poll(&app, &client, device_code).await, "slow_down").await;
    app.clock.advance(Duration::from_secs(16));
    oauth_error(poll(&app, &client, device_code).await, "authorization_pending").await;

    // The phone denies: the device hears access_denied.
    let user_code = codes["user_code"].as_str().unwrap();
    json_ok(phone.claim(&app, user_code, "typed").await).await;
    let denied = json_ok(phone.post(&app, "/api/v1/device/deny", json!({"userCode": user_code})).await).await;
    assert_eq!(denied["state"], "denied");
    app.clock.advance(Duration::from_secs(30));
    oauth_error(poll(&app, &client, device_code).await, "access_denied").await;
    expect_error(phone.approve(&app, user_code, None).await, 409, "device-wrong-state").await;

    // Nobody enters a second code: after its ten minutes the device hears expired_token,
    // and the janitor records where it stopped.
    let late = device_codes(&app, &client, "openid").await;
    app.clock.advance(Duration::from_secs(601));
    oauth_error(poll(&app, &client, late["device_code"].as_str().unwrap()).await, "expired_token").await;
    expect_error(phone.claim(&app, late["user_code"].as_str().unwrap(), "typed").await, 410, "device-code-expired")
        .await;
    let operator = |path: String| app.client.get(app.url(&path)).bearer_auth(OPERATOR).send();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = json_ok(operator("/api/v1/journeys?flow=device-grant".into()).await.unwrap()).await;
        let ids: Vec<String> =
            found["journeys"].as_array().unwrap().iter().map(|j| j["journeyId"].as_str().unwrap().to_owned()).collect();
        let mut expired = false;
        for id in &ids {
            let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
            let events =
                handoff_core::storage::Journeys::events_of(&db, handoff_core::domain::JourneyId::parse(id).unwrap())
                    .await
                    .unwrap();
            expired |= events.iter().any(|e| e.name == "device.expired" && e.attrs.contains("pending"));
        }
        if expired {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no device.expired from pending in {ids:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
});

on_both_backends!(scanned_codes_need_the_right_pick_a_fresh_passkey_and_one_browser, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = tv(&app).await;
    let mut phone = Phone::signed_up(&app, "vic@example.com").await;
    let other = Phone::signed_up(&app, "wes@example.com").await;
    let codes = device_codes(&app, &client, "openid profile").await;
    let user_code = codes["user_code"].as_str().unwrap().to_owned();

    // Opening the QR's address is recorded, signed in or not.
    let page = app.client.get(app.url(&format!("/device?user_code={user_code}"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));

    let claim = json_ok(phone.claim(&app, &user_code, "scanned").await).await;
    let choices: Vec<String> =
        claim["choices"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(choices.len(), 3);
    assert_eq!(choices.iter().filter(|c| **c == user_code).count(), 1, "{choices:?}");
    // The same browser may open it again; another is refused (and it is recorded).
    json_ok(phone.claim(&app, &user_code, "scanned").await).await;
    expect_error(other.claim(&app, &user_code, "scanned").await, 409, "device-code-claimed").await;
    expect_error(other.approve(&app, &user_code, Some(&user_code)).await, 409, "device-code-claimed").await;

    // A scanned code needs a pick; an old passkey check needs a new one.
    expect_error(phone.approve(&app, &user_code, None).await, 400, "pick-required").await;
    app.clock.advance(Duration::from_secs(150));
    expect_error(phone.approve(&app, &user_code, Some(&user_code)).await, 401, "reauth-required").await;
    phone.verify_again(&app).await;
    // A wrong pick stops the sign-in for good.
    let wrong = choices.iter().find(|c| **c != user_code).unwrap();
    expect_error(phone.approve(&app, &user_code, Some(wrong)).await, 400, "wrong-code").await;
    expect_error(phone.approve(&app, &user_code, Some(&user_code)).await, 409, "device-wrong-state").await;
    oauth_error(poll(&app, &client, codes["device_code"].as_str().unwrap()).await, "access_denied").await;

    let journey = claim["journeyId"].as_str().unwrap();
    let names = journey_events(&app, journey, "device.refused").await;
    for step in ["device.code_issued", "device.page_opened", "device.code_scanned", "device.refused"] {
        assert!(names.iter().any(|n| n == step), "{step} missing from {names:?}");
    }

    // The right pick with a fresh check signs the device in.
    let codes = device_codes(&app, &client, "openid").await;
    let user_code = codes["user_code"].as_str().unwrap().to_owned();
    json_ok(phone.claim(&app, &user_code, "scanned").await).await;
    assert_eq!(json_ok(phone.approve(&app, &user_code, Some(&user_code)).await).await["state"], "approved");
    let tokens = json_ok(poll(&app, &client, codes["device_code"].as_str().unwrap()).await).await;
    assert!(tokens["id_token"].is_string() && tokens["access_token"].is_string(), "{tokens}");
});

on_both_backends!(typing_wrong_codes_is_rate_limited_and_bad_requests_are_named, |backend| async move {
    let app = TestApp::spawn(backend).await;
    app.at_the_start_of_a_minute();
    let client = tv(&app).await;
    let web_only = register(&app, json!({})).await;
    let phone = Phone::signed_up(&app, "xia@example.com").await;

    // Requests for codes: the client must be allowed the grant; scopes are checked.
    let ask =
        |form: Vec<(&'static str, String)>| app.client.post(app.url("/oauth2/device_authorization")).form(&form).send();
    let refused = ask(vec![("client_id", web_only.id.clone()), ("client_secret", web_only.secret.clone().unwrap())]);
    oauth_error(refused.await.unwrap(), "unauthorized_client").await;
    oauth_error(
        ask(vec![("client_id", client.id.clone()), ("scope", "openid wishes".into())]).await.unwrap(),
        "invalid_scope",
    )
    .await;
    oauth_error(
        ask(vec![("client_id", client.id.clone()), ("scope", "profile".into())]).await.unwrap(),
        "invalid_scope",
    )
    .await;
    let unknown = ask(vec![("client_id", "nobody".into())]).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let not_a_form = app.client.post(app.url("/oauth2/device_authorization")).json(&json!({"client_id": client.id}));
    oauth_error(not_a_form.send().await.unwrap(), "invalid_request").await;

    // Polls with unknown codes or another client's code.
    oauth_error(poll(&app, &client, "not-a-device-code").await, "invalid_grant").await;
    let other_tv = tv(&app).await;
    let codes = device_codes(&app, &other_tv, "openid").await;
    oauth_error(poll(&app, &client, codes["device_code"].as_str().unwrap()).await, "invalid_grant").await;

    // The confirming side: signed in, same origin, a well-formed code.
    let stranger = app.client.post(app.url("/api/v1/device/claim")).json(&json!({"userCode": "BCDF-GHJK"}));
    expect_error(stranger.send().await.unwrap(), 401, "not-signed-in").await;
    let forged = phone
        .http
        .post(app.url("/api/v1/device/claim"))
        .header("origin", "https://evil.example")
        .json(&json!({"userCode": "BCDF-GHJK"}));
    expect_error(forged.send().await.unwrap(), 403, "cross-origin-request").await;
    let message = expect_error(phone.claim(&app, "BCDA-GHJK", "typed").await, 400, "invalid-user-code").await;
    assert!(message.contains("'A'"), "{message}");
    expect_error(phone.claim(&app, "BCDF-GHJK", "waved").await, 400, "invalid-via").await;

    // Guessing: five wrong codes (the bad one above counted too), then every try is refused.
    for guess in ["BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD", "FFFF-FFFF"] {
        expect_error(phone.claim(&app, guess, "typed").await, 404, "device-code-not-found").await;
    }
    let right = codes["user_code"].as_str().unwrap();
    expect_error(phone.claim(&app, right, "typed").await, 429, "rate-limited").await;
});

on_both_backends!(a_device_sign_in_left_at_the_confirmation_is_diagnosed, |backend| async move {
    let extra = handoff_server::config::RawConfig {
        journey_idle_seconds: Some(1),
        qr_ttl_seconds: Some(1),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, TestOptions { extra, ..Default::default() }).await;
    let client = tv(&app).await;
    let phone = Phone::signed_up(&app, "yan@example.com").await;
    let codes = device_codes(&app, &client, "openid").await;
    let claim = json_ok(phone.claim(&app, codes["user_code"].as_str().unwrap(), "typed").await).await;
    let journey = claim["journeyId"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::from_secs(601));
    let operator = |path: String| app.client.get(app.url(&path)).bearer_auth(OPERATOR).send();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let view = loop {
        let view: Value = operator(format!("/api/v1/journeys/{journey}")).await.unwrap().json().await.unwrap();
        let observed = view["rootCause"]["basis"] == "observed";
        if view["state"] == "finished" && observed {
            break view;
        }
        assert!(std::time::Instant::now() < deadline, "never diagnosed: {view}");
        app.clock.advance(Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(view["rootCause"]["code"], "confirmation-dropoff", "{view}");
    assert_eq!(view["flow"], "device-grant");
});
