//! The OpenID Connect provider (PRODUCT §6.1, §6.3) as an application meets it: the
//! relying party is the `openidconnect` crate, which discovers the provider, builds the
//! authorization URL (PKCE S256, nonce, state), exchanges the code, verifies the ID token
//! against the JWKS (signature, `iss`, `aud`, `nonce`) and calls userinfo. The browser is a
//! test client with the Handoff session cookie that does not follow redirects, so each
//! answer's `Location` is read as an application's callback would read it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    TokenResponse as _,
};
use reqwest::header::{CONTENT_TYPE, LOCATION, ORIGIN, WWW_AUTHENTICATE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use url::Url;

use crate::on_both_backends;
use crate::support::app::{expect_error, json_ok, settled_events};
use crate::support::{SoftKey, TestApp};

pub(crate) const OPERATOR: &str = "test-operator-token-0123456789";
const CALLBACK: &str = "http://localhost/callback";
const AFTER_LOGOUT: &str = "http://localhost/signed-out";

/// The relying party as `from_provider_metadata` makes it.
type Rp = CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// A client registered through the operator API.
pub(crate) struct Registered {
    pub(crate) id: String,
    pub(crate) secret: Option<String>,
}

/// Registers a client; `spec` is merged over a confidential first-party RS256 client.
pub(crate) async fn register(app: &TestApp, spec: Value) -> Registered {
    let mut body = json!({
        "name": "Notes",
        "redirectUris": [CALLBACK],
        "postLogoutRedirectUris": [AFTER_LOGOUT],
        "firstParty": true,
    });
    for (k, v) in spec.as_object().unwrap() {
        body[k] = v.clone();
    }
    let response = app.client.post(app.url("/api/v1/clients")).bearer_auth(OPERATOR).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.unwrap();
    Registered {
        id: answer["clientId"].as_str().unwrap().to_owned(),
        secret: answer["clientSecret"].as_str().map(str::to_owned),
    }
}

/// An HTTP client that never follows redirects (what the library needs, and a browser
/// whose every hop the test reads).
pub(crate) fn no_redirects() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A browser with a cookie jar that does not follow redirects.
fn browser() -> Client {
    Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A browser signed up (so signed in with a passkey) as `identifier`.
async fn signed_in(app: &TestApp, identifier: &str) -> Client {
    let http = browser();
    app.sign_up_in(&http, &mut SoftKey::new(&app.origin), identifier).await
}

pub(crate) fn issuer(app: &TestApp) -> String {
    app.origin.as_str().trim_end_matches('/').to_owned()
}

/// Discovers the provider (a fresh fetch of the metadata and JWKS) and builds the client.
async fn relying_party(app: &TestApp, client: &Registered) -> Rp {
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(issuer(app)).unwrap(), &no_redirects())
        .await
        .expect("discovery");
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap())
}

/// What the application keeps between the authorization request and the callback.
struct Pending {
    url: Url,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

fn authorization(rp: &Rp, scopes: &[&str]) -> Pending {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    let (url, state, nonce) = request.url();
    Pending { url, state, nonce, verifier }
}

/// `url` at the test server's listening address: the issuer says `localhost`, and the
/// session cookie belongs to the address the browser signed in at.
fn at_server(app: &TestApp, url: &Url) -> Url {
    let mut moved = app.base.join(url.path()).unwrap();
    moved.set_query(url.query());
    moved
}

/// GETs `url` in `browser` and returns the `Location` of its 303.
async fn see_other(app: &TestApp, browser: &Client, url: &Url) -> Url {
    let response = browser.get(at_server(app, url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", response.text().await.unwrap_or_default());
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    app.origin.join(&location).unwrap()
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The `code` of a callback, after checking its `state` and `iss` (RFC 9207).
fn code_of(app: &TestApp, callback: &Url, pending: &Pending) -> AuthorizationCode {
    assert_eq!(callback.as_str().split('?').next(), Some(CALLBACK), "{callback}");
    assert_eq!(param(callback, "state").as_deref(), Some(pending.state.secret().as_str()), "{callback}");
    assert_eq!(param(callback, "iss"), Some(issuer(app)), "{callback}");
    AuthorizationCode::new(param(callback, "code").unwrap_or_else(|| panic!("no code in {callback}")))
}

/// Authorizes in a signed-in `browser` straight through (no consent) and returns the code.
async fn code_for(app: &TestApp, browser: &Client, pending: &Pending) -> AuthorizationCode {
    let callback = see_other(app, browser, &pending.url).await;
    code_of(app, &callback, pending)
}

async fn exchange(rp: &Rp, code: AuthorizationCode, verifier: &PkceCodeVerifier) -> Result<CoreTokenResponse, String> {
    rp.exchange_code(code)
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().clone()))
        .request_async(&no_redirects())
        .await
        .map_err(error_code)
}

/// The RFC 6749 §5.2 `error` of a failed token request.
fn error_code<E: std::error::Error + 'static>(
    e: RequestTokenError<E, openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>>,
) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => r.error().to_string(),
        other => panic!("not an OAuth error answer: {other:?}"),
    }
}

/// The ID token of a token response, verified by the library; returns its claims as JSON
/// (for `sid`, which the library does not model) after checking them against `rp`.
fn verified(rp: &Rp, tokens: &CoreTokenResponse, nonce: &Nonce, alg: CoreJwsSigningAlgorithm) -> Value {
    let id_token = tokens.id_token().expect("an ID token");
    assert_eq!(id_token.signing_alg().unwrap(), &alg);
    let verifier = rp.id_token_verifier().set_allowed_algs([alg]);
    let claims = id_token.claims(&verifier, nonce).expect("the ID token verifies");
    assert_eq!(claims.nonce().map(|n| n.secret()), Some(nonce.secret()));
    payload(&id_token.to_string())
}

/// A JWT's header (`0`) or payload (`1`), unverified.
fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn payload(token: &str) -> Value {
    jwt_part(token, 1)
}

async fn session_of(app: &TestApp, browser: &Client) -> Response {
    browser.get(app.url("/api/v1/session")).send().await.unwrap()
}

async fn userinfo_status(app: &TestApp, access_token: &str) -> StatusCode {
    app.client.get(app.url("/oauth2/userinfo")).bearer_auth(access_token).send().await.unwrap().status()
}

/// POSTs a form to the token endpoint with client credentials in Basic.
async fn token_form(app: &TestApp, client: &Registered, body: &str) -> Response {
    app.client
        .post(app.url("/oauth2/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// Asserts an RFC 6749 §5.2 JSON error.
async fn oauth_error(response: Response, status: u16, error: &str) {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!((got, body["error"].as_str().unwrap_or("<none>")), (status, error), "{body}");
}

/// Asserts one of the provider's HTML pages with `status` and no redirect.
async fn html_page(response: Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status);
    assert!(response.headers().get(LOCATION).is_none());
    assert!(response.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    response.text().await.unwrap()
}

on_both_backends!(code_flow_with_pkce_gives_verified_id_tokens_and_userinfo, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let discovery = json_ok(app.get("/.well-known/openid-configuration").await).await;
    assert_eq!(discovery["issuer"], issuer(&app));
    assert_eq!(discovery["code_challenge_methods_supported"], json!(["S256"]));

    for (alg, name) in
        [(CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, "RS256"), (CoreJwsSigningAlgorithm::EcdsaP256Sha256, "ES256")]
    {
        let client = register(&app, json!({"idTokenAlg": name})).await;
        let rp = relying_party(&app, &client).await;
        let identifier = format!("{}@example.com", name.to_lowercase());

        // Not signed in yet: to Handoff's sign-in page, then back with a code.
        let http = browser();
        let pending = authorization(&rp, &["profile", "email"]);
        let to_sign_in = see_other(&app, &http, &pending.url).await;
        assert_eq!(to_sign_in.path(), "/");
        assert_eq!(param(&to_sign_in, "client").as_deref(), Some("Notes"));
        let request = param(&to_sign_in, "request").expect("the request id");
        app.sign_up_in(&http, &mut SoftKey::new(&app.origin), &identifier).await;
        let resume = app.origin.join(&format!("/oauth2/authorize/continue?request={request}")).unwrap();
        let callback = see_other(&app, &http, &resume).await;
        let code = code_of(&app, &callback, &pending);

        let tokens = exchange(&rp, code, &pending.verifier).await.expect("the code exchange");
        assert!(tokens.refresh_token().is_none(), "no offline_access, no refresh token");
        let id_token = tokens.id_token().unwrap();
        assert_eq!(jwt_part(&id_token.to_string(), 0)["alg"], name);
        let claims = verified(&rp, &tokens, &pending.nonce, alg.clone());
        let verifier = rp.id_token_verifier().set_allowed_algs([alg.clone()]);
        let typed = id_token.claims(&verifier, &pending.nonce).unwrap();

        let session = json_ok(session_of(&app, &http).await).await;
        let user_id = session["userId"].as_str().expect("userId").to_owned();
        assert_eq!(typed.subject().as_str(), user_id);
        assert_eq!(typed.preferred_username().map(|u| u.as_str()), Some(identifier.as_str()));
        assert_eq!(typed.email().map(|e| e.as_str()), Some(identifier.as_str()));
        assert!(typed.auth_time().is_some());
        let amr: Vec<&str> = typed.auth_method_refs().unwrap().iter().map(|a| a.as_str()).collect();
        assert!(amr.contains(&"pop") && amr.contains(&"mfa"), "{amr:?}");
        assert!(claims["sid"].as_str().is_some_and(|s| !s.is_empty()), "{claims}");
        assert_eq!(claims["iss"], issuer(&app));
        assert_eq!(claims["aud"], json!(client.id));

        let info: CoreUserInfoClaims = rp
            .user_info(tokens.access_token().clone(), Some(typed.subject().clone()))
            .unwrap()
            .request_async(&no_redirects())
            .await
            .expect("userinfo");
        assert_eq!(info.preferred_username().map(|u| u.as_str()), Some(identifier.as_str()));

        // Signed in now: the next authorization goes straight back with a code.
        let again = authorization(&rp, &["profile"]);
        let code = code_for(&app, &http, &again).await;
        let tokens = exchange(&rp, code, &again.verifier).await.unwrap();
        let claims = verified(&rp, &tokens, &again.nonce, alg);
        assert_eq!(claims["sub"], user_id.as_str());
    }
});

on_both_backends!(refresh_tokens_rotate_and_a_replay_revokes_the_family, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = register(&app, json!({})).await;
    let rp = relying_party(&app, &client).await;
    let http = signed_in(&app, "rhea@example.com").await;
    let pending = authorization(&rp, &["offline_access"]);
    let code = code_for(&app, &http, &pending).await;
    let tokens = exchange(&rp, code, &pending.verifier).await.unwrap();
    let first = tokens.refresh_token().expect("a refresh token with offline_access").clone();

    let refreshed =
        rp.exchange_refresh_token(&first).unwrap().request_async(&no_redirects()).await.expect("the refresh");
    let second = refreshed.refresh_token().expect("a new refresh token").clone();
    assert_ne!(first.secret(), second.secret());
    assert_eq!(userinfo_status(&app, refreshed.access_token().secret()).await, StatusCode::OK);

    let replay = rp.exchange_refresh_token(&first).unwrap().request_async(&no_redirects()).await;
    assert_eq!(replay.map_err(error_code).err().as_deref(), Some("invalid_grant"));
    let after = rp.exchange_refresh_token(&second).unwrap().request_async(&no_redirects()).await;
    assert_eq!(after.map_err(error_code).err().as_deref(), Some("invalid_grant"), "the family is revoked");
});

on_both_backends!(a_reused_code_is_refused_and_revokes_what_it_issued, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = register(&app, json!({})).await;
    let rp = relying_party(&app, &client).await;
    let http = signed_in(&app, "cato@example.com").await;
    let pending = authorization(&rp, &[]);
    let code = code_for(&app, &http, &pending).await;
    let tokens = exchange(&rp, code.clone(), &pending.verifier).await.unwrap();
    let access = tokens.access_token().secret().clone();
    assert_eq!(userinfo_status(&app, &access).await, StatusCode::OK);

    assert_eq!(exchange(&rp, code, &pending.verifier).await.err().as_deref(), Some("invalid_grant"));
    assert_eq!(userinfo_status(&app, &access).await, StatusCode::UNAUTHORIZED);
});

on_both_backends!(pkce_redirect_uri_and_client_secret_are_checked_at_the_token_endpoint, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = register(&app, json!({})).await;
    let rp = relying_party(&app, &client).await;
    let http = signed_in(&app, "dora@example.com").await;

    // The wrong PKCE verifier.
    let pending = authorization(&rp, &[]);
    let code = code_for(&app, &http, &pending).await;
    let wrong = PkceCodeChallenge::new_random_sha256().1;
    assert_eq!(exchange(&rp, code, &wrong).await.err().as_deref(), Some("invalid_grant"));

    // Another redirect URI than the authorization request's.
    let pending = authorization(&rp, &[]);
    let code = code_for(&app, &http, &pending).await;
    let elsewhere = rp.clone().set_redirect_uri(RedirectUrl::new("http://localhost/other".into()).unwrap());
    assert_eq!(exchange(&elsewhere, code, &pending.verifier).await.err().as_deref(), Some("invalid_grant"));

    // The wrong client secret: invalid_client, 401.
    let pending = authorization(&rp, &[]);
    let code = code_for(&app, &http, &pending).await;
    let impostor = Registered { id: client.id.clone(), secret: Some("not-the-secret".into()) };
    let bad = relying_party(&app, &impostor).await;
    assert_eq!(exchange(&bad, code.clone(), &pending.verifier).await.err().as_deref(), Some("invalid_client"));
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={CALLBACK}&code_verifier={}",
        code.secret(),
        pending.verifier.secret()
    );
    let response = token_form(&app, &impostor, &body).await;
    assert!(response.headers().contains_key(WWW_AUTHENTICATE));
    oauth_error(response, 401, "invalid_client").await;
    // The refused attempts did not use the code up.
    assert!(exchange(&rp, code, &pending.verifier).await.is_ok());
});

on_both_backends!(authorization_errors_go_to_the_client_only_when_it_is_known, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = register(&app, json!({})).await;
    let rp = relying_party(&app, &client).await;

    // prompt=none without a session: back to the client with login_required.
    let pending = authorization(&rp, &[]);
    let mut url = pending.url.clone();
    url.query_pairs_mut().append_pair("prompt", "none");
    let callback = see_other(&app, &browser(), &url).await;
    assert_eq!(callback.as_str().split('?').next(), Some(CALLBACK));
    assert_eq!(param(&callback, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&callback, "state").as_deref(), Some(pending.state.secret().as_str()));
    assert_eq!(param(&callback, "iss"), Some(issuer(&app)));
    assert!(param(&callback, "code").is_none());

    // An unknown redirect URI or client: Handoff's page, never a redirect.
    let with = |name: &str, value: &str| {
        let mut url = at_server(&app, &pending.url);
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == name { value.to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        url
    };
    let page =
        html_page(browser().get(with("redirect_uri", "https://evil.example/cb")).send().await.unwrap(), 400).await;
    assert!(page.contains("not a redirect URI registered"), "{page}");
    let page = html_page(browser().get(with("client_id", "no-such-client")).send().await.unwrap(), 400).await;
    assert!(page.contains("no application is registered"), "{page}");
});

on_both_backends!(a_third_party_client_asks_for_consent_once, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = register(&app, json!({"name": "Gallery", "firstParty": false})).await;
    let rp = relying_party(&app, &client).await;
    let http = signed_in(&app, "eve@example.com").await;
    let consent = |request: &str, decision: &str, origin: &str| {
        http.post(app.url("/oauth2/authorize/consent"))
            .header(ORIGIN, origin)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("request={request}&decision={decision}"))
    };
    let ours = issuer(&app);

    let pending = authorization(&rp, &["profile"]);
    let response = http.get(at_server(&app, &pending.url)).send().await.unwrap();
    let page = html_page(response, 200).await;
    assert!(page.contains("Allow") && page.contains("Gallery") && page.contains("eve@example.com"), "{page}");
    let request = page.split("name=\"request\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();

    // From another site: refused, and the request is still open.
    let refused = consent(&request, "allow", "https://evil.example").send().await.unwrap();
    html_page(refused, 403).await;
    // Without any Origin (no browser posts a form that way): refused too.
    let unnamed = http
        .post(app.url("/oauth2/authorize/consent"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("request={request}&decision=allow"))
        .send()
        .await
        .unwrap();
    html_page(unnamed, 403).await;

    let allowed = consent(&request, "allow", &ours).send().await.unwrap();
    assert_eq!(allowed.status(), StatusCode::SEE_OTHER);
    let callback = app.origin.join(allowed.headers()[LOCATION].to_str().unwrap()).unwrap();
    let code = code_of(&app, &callback, &pending);
    exchange(&rp, code, &pending.verifier).await.expect("the consented code works");
    // The request was answered: a second answer finds nothing.
    html_page(consent(&request, "allow", &ours).send().await.unwrap(), 400).await;

    // Consented once for these scopes: straight through.
    let again = authorization(&rp, &["profile"]);
    let code = code_for(&app, &http, &again).await;
    exchange(&rp, code, &again.verifier).await.unwrap();

    // Asked again (prompt=consent) and denied: access_denied to the client.
    let denied = authorization(&rp, &["profile"]);
    let mut url = denied.url.clone();
    url.query_pairs_mut().append_pair("prompt", "consent");
    let page = html_page(http.get(at_server(&app, &url)).send().await.unwrap(), 200).await;
    let request = page.split("name=\"request\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let answer = consent(&request, "deny", &ours).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let callback = app.origin.join(answer.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(param(&callback, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&callback, "state").as_deref(), Some(denied.state.secret().as_str()));
    assert!(param(&callback, "code").is_none());
});

on_both_backends!(rp_initiated_logout_ends_the_session_and_returns_only_to_registered_uris, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = register(&app, json!({})).await;
    let rp = relying_party(&app, &client).await;
    let http = signed_in(&app, "finn@example.com").await;
    let pending = authorization(&rp, &[]);
    let code = code_for(&app, &http, &pending).await;
    let tokens = exchange(&rp, code, &pending.verifier).await.unwrap();
    let hint = tokens.id_token().unwrap().to_string();
    let discovery = json_ok(app.get("/.well-known/openid-configuration").await).await;
    let end_session = Url::parse(discovery["end_session_endpoint"].as_str().unwrap()).unwrap();

    // An unregistered post_logout_redirect_uri: a page, and the session stays.
    let mut url = at_server(&app, &end_session);
    url.query_pairs_mut()
        .append_pair("id_token_hint", &hint)
        .append_pair("post_logout_redirect_uri", "https://evil.example/bye")
        .append_pair("state", "s1");
    html_page(http.get(url).send().await.unwrap(), 400).await;
    json_ok(session_of(&app, &http).await).await;

    let mut url = at_server(&app, &end_session);
    url.query_pairs_mut()
        .append_pair("id_token_hint", &hint)
        .append_pair("post_logout_redirect_uri", AFTER_LOGOUT)
        .append_pair("state", "s2");
    let back = see_other(&app, &http, &url).await;
    assert_eq!(back.as_str(), format!("{AFTER_LOGOUT}?state=s2"));
    expect_error(session_of(&app, &http).await, 401, "not-signed-in").await;
});

on_both_backends!(rotated_keys_stay_published_and_new_tokens_use_the_new_ones, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = register(&app, json!({})).await;
    let rp = relying_party(&app, &client).await;
    let http = signed_in(&app, "gus@example.com").await;
    let pending = authorization(&rp, &[]);
    let code = code_for(&app, &http, &pending).await;
    let tokens = exchange(&rp, code, &pending.verifier).await.unwrap();
    let old_token: CoreIdToken = tokens.id_token().unwrap().clone();
    let old_kid = jwt_part(&old_token.to_string(), 0)["kid"].as_str().unwrap().to_owned();
    let kids = |jwks: &Value| -> Vec<String> {
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(kids(&json_ok(app.get("/oauth2/jwks").await).await).len(), 2);

    let rotated = app.client.post(app.url("/api/v1/keys/rotate")).bearer_auth(OPERATOR).send().await.unwrap();
    let rotated = json_ok(rotated).await;
    assert_eq!(rotated["kids"].as_array().unwrap().len(), 2);
    let published = kids(&json_ok(app.get("/oauth2/jwks").await).await);
    assert_eq!(published.len(), 4, "{published:?}");
    assert!(published.contains(&old_kid));

    let fresh = relying_party(&app, &client).await;
    old_token.claims(&fresh.id_token_verifier(), &pending.nonce).expect("the old ID token still verifies");

    let pending = authorization(&fresh, &[]);
    let code = code_for(&app, &http, &pending).await;
    let tokens = exchange(&fresh, code, &pending.verifier).await.unwrap();
    verified(&fresh, &tokens, &pending.nonce, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256);
    let new_kid = jwt_part(&tokens.id_token().unwrap().to_string(), 0)["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert!(rotated["kids"].as_array().unwrap().iter().any(|k| k == new_kid.as_str()), "{rotated}");
});

on_both_backends!(sign_in_proofs_verify_once_for_their_client, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = register(&app, json!({})).await;
    let secret = client.secret.clone().unwrap();
    let http = signed_in(&app, "hana@example.com").await;
    let user_id = json_ok(session_of(&app, &http).await).await["userId"].as_str().unwrap().to_owned();
    let verify = |token: &str, secret: &str| {
        app.client
            .post(app.url("/api/v1/session/token/verify"))
            .basic_auth(&client.id, Some(secret))
            .json(&json!({ "token": token }))
    };

    let proof = json_ok(
        http.post(app.url("/api/v1/session/token")).json(&json!({"clientId": client.id})).send().await.unwrap(),
    )
    .await;
    let token = proof["token"].as_str().unwrap().to_owned();
    assert!(proof["expiresAt"].is_string());
    assert_eq!(jwt_part(&token, 0)["typ"], "handoff-proof+jwt");

    let message = expect_error(verify(&token, "not-the-secret").send().await.unwrap(), 401, "invalid-client").await;
    assert!(!message.is_empty());
    let checked = json_ok(verify(&token, &secret).send().await.unwrap()).await;
    assert_eq!(checked["valid"], true);
    assert_eq!(checked["claims"]["sub"], user_id.as_str());
    assert_eq!(checked["claims"]["aud"], client.id.as_str());
    assert_eq!(checked["claims"]["amr"], json!(["pop", "mfa"]));
    let message = expect_error(verify(&token, &secret).send().await.unwrap(), 400, "invalid-proof").await;
    assert!(message.contains("replayed"), "{message}");

    // An ID token is not a proof, though signed by the same keys for the same client.
    let rp = relying_party(&app, &client).await;
    let pending = authorization(&rp, &[]);
    let code = code_for(&app, &http, &pending).await;
    let id_token = exchange(&rp, code, &pending.verifier).await.unwrap().id_token().unwrap().to_string();
    let message = expect_error(verify(&id_token, &secret).send().await.unwrap(), 400, "invalid-proof").await;
    assert!(message.contains("not-a-proof"), "{message}");
});

on_both_backends!(malformed_requests_get_oauth_errors_not_failures, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = register(&app, json!({})).await;

    let json_body = app
        .client
        .post(app.url("/oauth2/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .json(&json!({"grant_type": "authorization_code", "code": "x"}))
        .send()
        .await
        .unwrap();
    oauth_error(json_body, 400, "invalid_request").await;
    let repeated = "grant_type=authorization_code&code=a&code=b&redirect_uri=http%3A%2F%2Flocalhost%2Fcallback";
    oauth_error(token_form(&app, &client, repeated).await, 400, "invalid_request").await;
    let long = format!("grant_type=authorization_code&code={}&redirect_uri={CALLBACK}", "c".repeat(10_000));
    oauth_error(token_form(&app, &client, &long).await, 400, "invalid_request").await;
    oauth_error(token_form(&app, &client, "code=abc").await, 400, "invalid_request").await;
    oauth_error(
        token_form(&app, &client, "grant_type=password&username=a&password=b").await,
        400,
        "unsupported_grant_type",
    )
    .await;
    oauth_error(
        token_form(&app, &client, "grant_type=authorization_code&code=nope&redirect_uri=x").await,
        400,
        "invalid_grant",
    )
    .await;

    let mut authorize = app.url("/oauth2/authorize");
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &client.id)
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid");
    let page = html_page(browser().get(authorize).send().await.unwrap(), 400).await;
    assert!(page.contains("more than once"), "{page}");

    let response = app.client.get(app.url("/oauth2/userinfo")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert_eq!(userinfo_status(&app, "not-a-token").await, StatusCode::UNAUTHORIZED);
});

on_both_backends!(prompt_login_and_max_age_ask_for_a_fresh_sign_in, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = register(&app, json!({})).await;
    let rp = relying_party(&app, &client).await;
    let http = signed_in(&app, "livia@example.com").await;

    // A session younger than max_age goes straight back; an older one is sent to sign in.
    app.clock.advance(std::time::Duration::from_secs(120));
    let mut pending = authorization(&rp, &[]);
    pending.url.query_pairs_mut().append_pair("max_age", "600");
    code_for(&app, &http, &pending).await;
    let mut pending = authorization(&rp, &[]);
    pending.url.query_pairs_mut().append_pair("max_age", "60");
    let to_sign_in = see_other(&app, &http, &pending.url).await;
    assert_eq!(to_sign_in.path(), "/", "{to_sign_in}");
    let request = param(&to_sign_in, "request").expect("request id");

    // prompt=login: the live session is not enough, even right after signing in; coming
    // back without a new sign-in leads to the sign-in page again.
    let mut pending = authorization(&rp, &[]);
    pending.url.query_pairs_mut().append_pair("prompt", "login");
    let to_sign_in = see_other(&app, &http, &pending.url).await;
    let login_request = param(&to_sign_in, "request").expect("request id");
    let resume = app.origin.join(&format!("/oauth2/authorize/continue?request={login_request}")).unwrap();
    assert_eq!(see_other(&app, &http, &resume).await.path(), "/");

    // After a new sign-in in this browser, both requests go on to the application.
    let http = app.sign_up_in(&http, &mut SoftKey::new(&app.origin), "livia.two@example.com").await;
    let callback = see_other(&app, &http, &resume).await;
    code_of(&app, &callback, &pending);
    let resume = app.origin.join(&format!("/oauth2/authorize/continue?request={request}")).unwrap();
    assert!(param(&see_other(&app, &http, &resume).await, "code").is_some());
});

on_both_backends!(the_journey_records_the_application_it_signed_in_to, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = register(&app, json!({})).await;
    let rp = relying_party(&app, &client).await;
    let http = browser();
    let mut key = SoftKey::new(&app.origin);
    app.sign_up_in(&http, &mut key, "iris@example.com").await;

    // The application asks for a fresh sign-in; the sign-in page runs a passkey ceremony in
    // its journey and hands that journey to the provider when it continues.
    let mut pending = authorization(&rp, &[]);
    pending.url.query_pairs_mut().append_pair("prompt", "login");
    let request = param(&see_other(&app, &http, &pending.url).await, "request").expect("request id");
    let post = |path: &str, body: Value| http.post(app.url(path)).json(&body).send();
    let start = json_ok(post("/api/v1/login/start", json!({"identifier": "iris@example.com"})).await.unwrap()).await;
    let journey = start["journeyId"].as_str().unwrap().to_owned();
    let assertion = key.get(&start["publicKey"]).await;
    json_ok(
        post("/api/v1/login/finish", json!({"ceremonyId": start["ceremonyId"], "credential": assertion}))
            .await
            .unwrap(),
    )
    .await;
    let resume = app.origin.join(&format!("/oauth2/authorize/continue?request={request}&journey={journey}")).unwrap();
    code_of(&app, &see_other(&app, &http, &resume).await, &pending);

    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    let id = handoff_core::domain::JourneyId::parse(&journey).unwrap();
    settled_events(&db, id, "oidc.code_issued").await;
    let operator = |path: String| app.client.get(app.url(&path)).bearer_auth(OPERATOR).send();
    let view = json_ok(operator(format!("/api/v1/journeys/{journey}")).await.unwrap()).await;
    assert_eq!(view["segments"]["client"].as_str(), Some(client.id.as_str()), "{view}");
    let funnel = json_ok(operator("/api/v1/funnels?flow=passkey-local&by=client".into()).await.unwrap()).await;
    let segments: Vec<&str> =
        funnel["breakdown"].as_array().unwrap().iter().filter_map(|s| s["segment"].as_str()).collect();
    assert!(segments.contains(&client.id.as_str()), "{funnel}");
});
