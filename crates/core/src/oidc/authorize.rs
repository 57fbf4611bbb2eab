//! The authorization endpoint's state machine (OIDC Core §3.1.2, RFC 6749 §4.1, RFC 7636,
//! RFC 9207): check the request, then sign-in → consent → code. Errors before the client
//! and its redirect URI are known are shown on Handoff's own page and never redirected
//! (an open redirector otherwise); later ones go back to the client with `error`, `state`
//! and `iss`.

use super::model::{AuthRequest, Client, CodeRecord, GrantRecord, Prompt, digest};
use super::{OidcService, amr_of};
use crate::clock::Millis;
use crate::domain::{JourneyId, SecretToken};
use crate::error::Result;
use crate::passkeys::SessionUser;

/// Scopes this provider knows; others are ignored (OIDC Core §3.1.2.1).
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The longest value any authorization parameter may have.
const MAX_PARAM: usize = 2048;

/// Why an authorization request cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or redirect URI is unknown or missing: shown on Handoff's error page.
    Page(String),
    /// Answered to the client (its redirect URI) with `error`.
    Redirect(String),
}

/// What the browser does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Sign in on Handoff's page, then continue with this request.
    SignIn {
        /// The stored request.
        request: AuthRequest,
        /// The client's name for the page.
        client_name: String,
    },
    /// Ask the person to consent.
    Consent {
        /// The stored request.
        request: AuthRequest,
        /// The client.
        client: Client,
    },
    /// Back to the client: a code or an error.
    Redirect(String),
}

/// Builds `redirect_uri` with the answer's parameters (query response mode).
pub fn answer_url(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return redirect_uri.to_owned();
    }
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return redirect_uri.to_owned(),
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
    }
    url.to_string()
}

fn page(message: impl Into<String>) -> AuthorizeError {
    AuthorizeError::Page(message.into())
}

/// True for a PKCE verifier or challenge: 43–128 unreserved characters (RFC 7636 §4.1).
fn pkce_shaped(raw: &str) -> bool {
    (43..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl OidcService {
    /// An error answer to the client.
    fn error_url(&self, redirect_uri: &str, state: Option<&str>, error: &str, description: &str) -> String {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", self.settings.issuer.as_str()));
        answer_url(redirect_uri, &params)
    }

    /// Checks an authorization request's parameters (query or form, in order, repeats
    /// included so that they can be refused).
    pub async fn check_request(
        &self,
        params: &[(String, String)],
    ) -> Result<Result<(AuthRequest, Client), AuthorizeError>> {
        let one = |name: &str| -> std::result::Result<Option<&str>, String> {
            let mut values = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
            let first = values.next();
            if values.next().is_some() {
                return Err(format!("parameter {name} is given more than once"));
            }
            match first {
                Some(v) if v.len() > MAX_PARAM => {
                    Err(format!("parameter {name} is longer than {MAX_PARAM} characters"))
                }
                Some("") => Ok(None),
                other => Ok(other),
            }
        };
        let client_id = match one("client_id") {
            Ok(Some(id)) => id,
            Ok(None) => return Ok(Err(page("the request names no client (client_id is missing)"))),
            Err(e) => return Ok(Err(page(e))),
        };
        let Some(client) = self.clients.get(client_id).await? else {
            return Ok(Err(page(format!("no application is registered with the client id {client_id:?}"))));
        };
        let redirect_uri = match one("redirect_uri") {
            Ok(Some(uri)) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
            Ok(Some(uri)) => {
                return Ok(Err(page(format!("{uri:?} is not a redirect URI registered for {}", client.name))));
            }
            Ok(None) => return Ok(Err(page("the request has no redirect_uri"))),
            Err(e) => return Ok(Err(page(e))),
        };
        let state = one("state").ok().flatten().map(str::to_owned);
        let fail = |error: &str, description: String| {
            Ok(Err(AuthorizeError::Redirect(self.error_url(&redirect_uri, state.as_deref(), error, &description))))
        };
        let mut values = std::collections::HashMap::new();
        for name in [
            "response_type",
            "scope",
            "nonce",
            "code_challenge",
            "code_challenge_method",
            "prompt",
            "max_age",
            "login_hint",
            "response_mode",
        ] {
            match one(name) {
                Ok(v) => {
                    values.insert(name, v);
                }
                Err(e) => return fail("invalid_request", e),
            }
        }
        if one("state").is_err() {
            return fail("invalid_request", "parameter state is given more than once".into());
        }
        if params.iter().any(|(k, _)| k == "request") {
            return fail("request_not_supported", "request objects are not supported".into());
        }
        if params.iter().any(|(k, _)| k == "request_uri") {
            return fail("request_uri_not_supported", "request_uri is not supported".into());
        }
        match values["response_type"] {
            Some("code") => {}
            Some(other) => {
                return fail(
                    "unsupported_response_type",
                    format!("response_type {other:?} is not supported; use code"),
                );
            }
            None => return fail("invalid_request", "response_type is missing".into()),
        }
        if let Some(mode) = values["response_mode"]
            && mode != "query"
        {
            return fail("invalid_request", format!("response_mode {mode:?} is not supported; use query"));
        }
        let requested: Vec<&str> = values["scope"].unwrap_or("").split(' ').filter(|s| !s.is_empty()).collect();
        if !requested.contains(&"openid") {
            return fail("invalid_scope", "scope must include openid".into());
        }
        let mut scope: Vec<String> =
            SCOPES.iter().filter(|known| requested.contains(known)).map(|s| (*s).to_owned()).collect();
        scope.sort();
        let code_challenge = match (values["code_challenge"], values["code_challenge_method"]) {
            (Some(challenge), Some("S256")) if pkce_shaped(challenge) => Some(challenge.to_owned()),
            (Some(_), Some("S256")) => {
                return fail("invalid_request", "code_challenge must be 43 to 128 unreserved characters".into());
            }
            (Some(_), None | Some("plain")) => {
                return fail("invalid_request", "code_challenge_method plain is not allowed; use S256".into());
            }
            (Some(_), Some(other)) => {
                return fail("invalid_request", format!("code_challenge_method {other:?} is not supported; use S256"));
            }
            (None, Some(_)) => return fail("invalid_request", "code_challenge_method without code_challenge".into()),
            (None, None) if !client.confidential() => {
                return fail("invalid_request", "a public client must use PKCE (code_challenge with S256)".into());
            }
            (None, None) => None,
        };
        let mut prompt = Prompt::default();
        for value in values["prompt"].unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                other => return fail("invalid_request", format!("prompt {other:?} is not supported")),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return fail("invalid_request", "prompt none cannot be combined with other values".into());
        }
        let max_age = match values["max_age"] {
            None => None,
            Some(raw) => match raw.parse::<i64>() {
                Ok(seconds) if seconds >= 0 => Some(seconds),
                _ => return fail("invalid_request", format!("max_age {raw:?} is not a number of seconds")),
            },
        };
        let request = AuthRequest {
            id: SecretToken::generate()?.expose().to_owned(),
            client_id: client.id.clone(),
            redirect_uri,
            scope,
            state,
            nonce: values["nonce"].map(str::to_owned),
            code_challenge,
            prompt,
            max_age,
            login_hint: values["login_hint"].map(|h| h.chars().take(256).collect()),
            created_at: self.clock.now_ms(),
        };
        Ok(Ok((request, client)))
    }

    /// When the session signed in, for `auth_time` and `max_age`.
    fn auth_time(session: &SessionUser) -> Millis {
        session.created_at.max(session.verified_at)
    }

    /// The next step for a checked request: `stored` says whether it is kept already (it
    /// came back after the sign-in page).
    pub async fn proceed(
        &self,
        request: AuthRequest,
        client: Client,
        session: Option<&SessionUser>,
        stored: bool,
        journey: Option<JourneyId>,
    ) -> Result<Next> {
        let now = self.clock.now_ms();
        let signed_in = session.filter(|s| {
            let at = Self::auth_time(s);
            let fresh_enough = request.max_age.is_none_or(|age| now.saturating_sub(at) <= age.saturating_mul(1000));
            // A passkey ceremony in a browser already signed in re-verifies its session instead
            // of starting one: the sign-in time is the later of the two. A request that has
            // just arrived (not stored yet) was never answered by the sign-in page, so no
            // session satisfies its `prompt=login`, even one made in the same millisecond.
            let after_request = !request.prompt.login || (stored && at >= request.created_at);
            fresh_enough && after_request
        });
        let state = request.state.clone();
        let Some(session) = signed_in else {
            if request.prompt.none {
                return self.finish_with_error(&request, stored, "login_required", "the person is not signed in").await;
            }
            if !stored {
                self.storage.put_request(&request, now.saturating_add(self.settings.request_ttl_ms())).await?;
            }
            return Ok(Next::SignIn { request, client_name: client.name });
        };
        let scope = request.scope.join(" ");
        let needs_consent = !client.first_party
            && (request.prompt.consent || !self.clients.has_consent(session.user_id, &client.id, &scope).await?);
        if needs_consent {
            if request.prompt.none {
                return self
                    .finish_with_error(&request, stored, "consent_required", "the person has not consented")
                    .await;
            }
            if !stored {
                self.storage.put_request(&request, now.saturating_add(self.settings.request_ttl_ms())).await?;
            }
            return Ok(Next::Consent { request, client });
        }
        if stored && !self.storage.take_request(&request.id).await? {
            return Ok(Next::Redirect(self.error_url(
                &request.redirect_uri,
                state.as_deref(),
                "invalid_request",
                "this sign-in request was already answered",
            )));
        }
        Ok(Next::Redirect(self.issue_code(&request, &client, session, journey).await?))
    }

    async fn finish_with_error(
        &self,
        request: &AuthRequest,
        stored: bool,
        error: &str,
        description: &str,
    ) -> Result<Next> {
        if stored {
            self.storage.take_request(&request.id).await?;
        }
        Ok(Next::Redirect(self.error_url(&request.redirect_uri, request.state.as_deref(), error, description)))
    }

    /// A stored request by id, with its client (`None` when it expired, was answered or
    /// its client was removed).
    pub async fn stored_request(&self, id: &str) -> Result<Option<(AuthRequest, Client)>> {
        if id.len() > 64 {
            return Ok(None);
        }
        let Some(request) = self.storage.request(id, self.clock.now_ms()).await? else { return Ok(None) };
        let Some(client) = self.clients.get(&request.client_id).await? else { return Ok(None) };
        Ok(Some((request, client)))
    }

    /// The person's answer on the consent page. Allowing records the consent and issues
    /// a code; denying answers `access_denied`.
    pub async fn consent(
        &self,
        request_id: &str,
        session: &SessionUser,
        allow: bool,
        journey: Option<JourneyId>,
    ) -> Result<Option<String>> {
        let Some((request, client)) = self.stored_request(request_id).await? else { return Ok(None) };
        if !self.storage.take_request(&request.id).await? {
            return Ok(None);
        }
        if !allow {
            tracing::info!(client = %client.id, user = %session.user_id, "consent denied");
            return Ok(Some(self.error_url(
                &request.redirect_uri,
                request.state.as_deref(),
                "access_denied",
                "the person did not allow this application",
            )));
        }
        self.clients.add_consent(session.user_id, &client.id, &request.scope.join(" ")).await?;
        Ok(Some(self.issue_code(&request, &client, session, journey).await?))
    }

    /// Issues a code; when the sign-in page named its journey, records `oidc.code_issued`
    /// there (the journey then says which application it signed in to).
    async fn issue_code(
        &self,
        request: &AuthRequest,
        client: &Client,
        session: &SessionUser,
        journey: Option<JourneyId>,
    ) -> Result<String> {
        let now = self.clock.now_ms();
        let code = SecretToken::generate()?;
        let offline = request.scope.iter().any(|s| s == "offline_access");
        let lifetime = if offline { self.settings.refresh_ttl_ms() } else { self.settings.access_ttl_ms() };
        let grant = GrantRecord {
            id: SecretToken::generate()?.digest()[..32].to_owned(),
            client_id: client.id.clone(),
            user_id: session.user_id,
            scope: request.scope.join(" "),
            auth_time: Self::auth_time(session),
            amr: amr_of(session.method).iter().map(|s| (*s).to_owned()).collect(),
            sid: session.session_digest.chars().take(32).collect(),
            nonce: request.nonce.clone(),
            created_at: now,
            expires_at: now.saturating_add(self.settings.code_ttl_ms()).saturating_add(lifetime),
        };
        let record = CodeRecord {
            digest: digest(code.expose()),
            grant_id: grant.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            expires_at: now.saturating_add(self.settings.code_ttl_ms()),
        };
        self.storage.issue_code(&grant, &record).await?;
        tracing::info!(client = %client.id, user = %session.user_id, "issued an authorization code");
        if let (Some(journey), Some(journal)) = (journey, &self.journal) {
            let attrs = serde_json::json!({"clientId": client.id, "scope": grant.scope});
            journal.submit_server(vec![crate::storage::StoredEvent::server(
                journey,
                "oidc.code_issued",
                None,
                attrs,
                now,
            )]);
        }
        let mut params = vec![("code", code.expose())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.settings.issuer));
        Ok(answer_url(&request.redirect_uri, &params))
    }
}
