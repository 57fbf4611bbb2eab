//! The token side of the provider: client authentication (RFC 6749 §2.3), the
//! `authorization_code` and `refresh_token` grants with single-use codes and rotating
//! refresh tokens (a replay revokes the family), ID tokens, userinfo, revocation
//! (RFC 7009), introspection (RFC 7662), logout hints and sign-in proofs (PRODUCT §6.3).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::keys::seconds;
use super::model::{Client, CodeRedemption, GrantRecord, RefreshUse, TokenKind, TokenRecord, digest};
use super::{OidcService, OidcSettings, amr_of};
use crate::domain::SecretToken;
use crate::error::DomainError;
use crate::passkeys::{Account, SessionUser};

/// An RFC 6749 §5.2 error: `error` is the registered code.
#[derive(Debug)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, …
    pub error: &'static str,
    /// For the developer reading it.
    pub description: String,
    /// The storage or signing failure behind a `server_error` (logged, not shown).
    pub internal: Option<DomainError>,
}

impl OAuthError {
    /// An error with this code.
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self { error, description: description.into(), internal: None }
    }
}

impl From<DomainError> for OAuthError {
    fn from(e: DomainError) -> Self {
        Self { error: "server_error", description: "the server could not answer; try again".into(), internal: Some(e) }
    }
}

type OResult<T> = std::result::Result<T, OAuthError>;

/// How the client authenticated at a token-side endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// From `Authorization: Basic` (already split and form-decoded).
    pub basic: Option<(String, String)>,
    /// `client_id` in the body.
    pub client_id: Option<String>,
    /// `client_secret` in the body.
    pub client_secret: Option<String>,
}

impl ClientCredentials {
    /// Parses an `Authorization: Basic` value (RFC 6749 §2.3.1: id and secret are
    /// form-encoded before base64). `None` when it is not well-formed.
    pub fn parse_basic(header: &str) -> Option<(String, String)> {
        let encoded = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic "))?;
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let id = url::form_urlencoded::parse(format!("x={id}").as_bytes()).next()?.1.into_owned();
        let secret = url::form_urlencoded::parse(format!("x={secret}").as_bytes()).next()?.1.into_owned();
        Some((id, secret))
    }
}

/// A token request's parameters (form body).
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `code`.
    pub code: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `code_verifier`.
    pub code_verifier: Option<String>,
    /// `refresh_token`.
    pub refresh_token: Option<String>,
    /// `scope` (a refresh may narrow it).
    pub scope: Option<String>,
    /// `device_code` (RFC 8628 §3.4).
    pub device_code: Option<String>,
}

/// A successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenResponse {
    /// Opaque bearer token for userinfo.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    /// With `offline_access`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The ID token.
    pub id_token: String,
    /// Granted scopes.
    pub scope: String,
}

/// S256 of a PKCE verifier.
pub fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The claims `scope` releases about `account` (PRODUCT §6.1); `email_verified`: the
/// address was confirmed by a verification link (PRODUCT §7).
fn profile_claims(claims: &mut Map<String, Value>, grant: &GrantRecord, account: &Account, email_verified: bool) {
    let identifier = account.identifier.to_string();
    if grant.has_scope("profile") {
        claims.insert("preferred_username".into(), json!(identifier));
        claims.insert("name".into(), json!(account.display_name.as_str()));
    }
    if grant.has_scope("email") && identifier.contains('@') {
        claims.insert("email".into(), json!(identifier));
        claims.insert("email_verified".into(), json!(email_verified));
    }
}

impl OidcService {
    /// Whether the account's address was verified, asked only when the `email` claim is
    /// released.
    async fn email_verified(&self, grant: &GrantRecord, account: &Account) -> crate::error::Result<bool> {
        let address = account.identifier.as_str();
        if !grant.has_scope("email") || !address.contains('@') {
            return Ok(false);
        }
        self.recovery.email_verified(account.id, address).await
    }

    /// The client a token-side request comes from: confidential clients by secret (basic
    /// or post, not both), public ones by id alone.
    pub async fn authenticate(&self, creds: &ClientCredentials) -> OResult<Client> {
        let invalid = || OAuthError::new("invalid_client", "client authentication failed");
        match (&creds.basic, &creds.client_secret) {
            (Some(_), Some(_)) => {
                Err(OAuthError::new("invalid_request", "use one client authentication method, not two"))
            }
            (Some((_, secret)), None) | (None, Some(secret)) => {
                let id = match (&creds.basic, &creds.client_id) {
                    (Some((id, _)), Some(body_id)) if body_id != id => {
                        return Err(OAuthError::new(
                            "invalid_request",
                            "client_id differs from the authenticated client",
                        ));
                    }
                    (Some((id, _)), _) => id.clone(),
                    (None, Some(id)) => id.clone(),
                    (None, None) => return Err(OAuthError::new("invalid_request", "client_secret without client_id")),
                };
                self.clients.authenticate(&id, secret).await?.ok_or_else(invalid)
            }
            (None, None) => {
                let id = creds
                    .client_id
                    .as_deref()
                    .ok_or_else(|| OAuthError::new("invalid_client", "no client authentication"))?;
                match self.clients.get(id).await? {
                    Some(client) if !client.confidential() => Ok(client),
                    _ => Err(invalid()),
                }
            }
        }
    }

    /// The token endpoint.
    pub async fn token(&self, creds: &ClientCredentials, request: &TokenRequest) -> OResult<TokenResponse> {
        let client = self.authenticate(creds).await?;
        match request.grant_type.as_deref() {
            Some("authorization_code") => self.exchange_code(&client, request).await,
            Some("refresh_token") => self.refresh(&client, request).await,
            Some(super::device::DEVICE_GRANT_TYPE) => self.device_token(&client, request).await,
            Some(other) => {
                Err(OAuthError::new("unsupported_grant_type", format!("grant_type {other:?} is not supported")))
            }
            None => Err(OAuthError::new("invalid_request", "grant_type is missing")),
        }
    }

    async fn exchange_code(&self, client: &Client, request: &TokenRequest) -> OResult<TokenResponse> {
        let code = request.code.as_deref().ok_or_else(|| OAuthError::new("invalid_request", "code is missing"))?;
        let now = self.clock.now_ms();
        let redemption = if code.len() > 100 {
            CodeRedemption::Unknown
        } else {
            self.storage.redeem_code(&digest(code), &client.id, now).await?
        };
        let (record, grant) = match redemption {
            CodeRedemption::Fresh(record, grant) => (record, grant),
            CodeRedemption::Reused { grant_id } => {
                self.storage.revoke_grant(&grant_id, now).await?;
                tracing::warn!(client = %client.id, grant = %grant_id, "an authorization code was used twice; its tokens are revoked");
                return Err(OAuthError::new("invalid_grant", "the code was already used; what it issued is revoked"));
            }
            CodeRedemption::Unknown => {
                return Err(OAuthError::new("invalid_grant", "the code is unknown, expired or not this client's"));
            }
        };
        if request.redirect_uri.as_deref() != Some(record.redirect_uri.as_str()) {
            return Err(OAuthError::new("invalid_grant", "redirect_uri differs from the authorization request's"));
        }
        match (&record.code_challenge, request.code_verifier.as_deref()) {
            (Some(challenge), Some(verifier)) => {
                if pkce_s256(verifier) != *challenge {
                    return Err(OAuthError::new("invalid_grant", "code_verifier does not match the code_challenge"));
                }
            }
            (Some(_), None) => return Err(OAuthError::new("invalid_grant", "code_verifier is missing")),
            (None, Some(_)) => {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "code_verifier given, but the request had no code_challenge",
                ));
            }
            (None, None) => {}
        }
        self.issue(client, &grant, true).await
    }

    async fn refresh(&self, client: &Client, request: &TokenRequest) -> OResult<TokenResponse> {
        let token = request
            .refresh_token
            .as_deref()
            .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing"))?;
        let now = self.clock.now_ms();
        let used = if token.len() > 100 {
            RefreshUse::Unknown
        } else {
            self.storage.use_refresh(&digest(token), &client.id, now).await?
        };
        let mut grant = match used {
            RefreshUse::Fresh(grant) => grant,
            RefreshUse::Reused { grant_id } => {
                self.storage.revoke_grant(&grant_id, now).await?;
                tracing::warn!(client = %client.id, grant = %grant_id, "a rotated refresh token was used again; its family is revoked");
                return Err(OAuthError::new(
                    "invalid_grant",
                    "the refresh token was already used; its family is revoked",
                ));
            }
            RefreshUse::Unknown => {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "the refresh token is unknown, expired, revoked or not this client's",
                ));
            }
        };
        if let Some(scope) = request.scope.as_deref() {
            let asked: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
            if let Some(extra) = asked.iter().find(|s| !grant.has_scope(s)) {
                return Err(OAuthError::new("invalid_scope", format!("scope {extra:?} was not granted")));
            }
            // The family keeps its scopes; this response narrows what it says.
            grant.scope = grant.scope.split(' ').filter(|s| asked.contains(s)).collect::<Vec<_>>().join(" ");
        }
        self.issue(client, &grant, false).await
    }

    /// Issues an access token, a refresh token (with `offline_access`) and an ID token.
    pub(super) async fn issue(&self, client: &Client, grant: &GrantRecord, with_nonce: bool) -> OResult<TokenResponse> {
        let now = self.clock.now_ms();
        let account = self
            .accounts
            .find_by_id(grant.user_id)
            .await?
            .ok_or_else(|| OAuthError::new("invalid_grant", "the account no longer exists"))?;
        let access = SecretToken::generate()?;
        let access_expires = now.saturating_add(self.settings.access_ttl_ms()).min(grant.expires_at);
        let mut records = vec![TokenRecord {
            digest: digest(access.expose()),
            grant_id: grant.id.clone(),
            kind: TokenKind::Access,
            created_at: now,
            expires_at: access_expires,
        }];
        let refresh = if grant.has_scope("offline_access") {
            let token = SecretToken::generate()?;
            records.push(TokenRecord {
                digest: digest(token.expose()),
                grant_id: grant.id.clone(),
                kind: TokenKind::Refresh,
                created_at: now,
                expires_at: grant.expires_at,
            });
            Some(token.expose().to_owned())
        } else {
            None
        };
        self.storage.add_tokens(&client.id, &records).await?;
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.settings.issuer));
        claims.insert("sub".into(), json!(grant.user_id.to_string()));
        claims.insert("aud".into(), json!(client.id));
        claims.insert("iat".into(), json!(seconds(now)));
        claims.insert("exp".into(), json!(seconds(now.saturating_add(self.settings.id_token_ttl_ms()))));
        claims.insert("auth_time".into(), json!(seconds(grant.auth_time)));
        if with_nonce && let Some(nonce) = &grant.nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        claims.insert("sid".into(), json!(grant.sid));
        claims.insert("amr".into(), json!(grant.amr));
        let verified = self.email_verified(grant, &account).await?;
        profile_claims(&mut claims, grant, &account, verified);
        let id_token = self.keys.sign(client.id_token_alg, "JWT", claims).await?;
        Ok(TokenResponse {
            access_token: access.expose().to_owned(),
            token_type: "Bearer",
            expires_in: seconds(access_expires.saturating_sub(now)),
            refresh_token: refresh,
            id_token: id_token.token,
            scope: grant.scope.clone(),
        })
    }

    /// The claims userinfo answers for an access token; `None` when the token is not live.
    pub async fn userinfo(&self, access_token: &str) -> crate::error::Result<Option<Map<String, Value>>> {
        if access_token.len() > 100 {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let Some((_, grant)) = self.storage.token(&digest(access_token), TokenKind::Access, now).await? else {
            return Ok(None);
        };
        let Some(account) = self.accounts.find_by_id(grant.user_id).await? else { return Ok(None) };
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(grant.user_id.to_string()));
        let verified = self.email_verified(&grant, &account).await?;
        profile_claims(&mut claims, &grant, &account, verified);
        Ok(Some(claims))
    }

    async fn find_token(
        &self,
        token: &str,
        hint: Option<&str>,
    ) -> crate::error::Result<Option<(TokenRecord, GrantRecord)>> {
        if token.len() > 100 {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let digest = digest(token);
        let order = if hint == Some("refresh_token") {
            [TokenKind::Refresh, TokenKind::Access]
        } else {
            [TokenKind::Access, TokenKind::Refresh]
        };
        for kind in order {
            if let Some(found) = self.storage.token(&digest, kind, now).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// RFC 7009: revokes a token of this client (a refresh token takes its whole family).
    /// Unknown tokens are not an error.
    pub async fn revoke(&self, creds: &ClientCredentials, token: Option<&str>, hint: Option<&str>) -> OResult<()> {
        let client = self.authenticate(creds).await?;
        let token = token.ok_or_else(|| OAuthError::new("invalid_request", "token is missing"))?;
        if let Some((record, grant)) = self.find_token(token, hint).await?
            && grant.client_id == client.id
        {
            match record.kind {
                TokenKind::Refresh => self.storage.revoke_grant(&grant.id, self.clock.now_ms()).await?,
                TokenKind::Access => {
                    self.storage.delete_token(&record.digest).await?;
                }
            }
            tracing::info!(client = %client.id, kind = record.kind.as_str(), "revoked a token");
        }
        Ok(())
    }

    /// RFC 7662 for confidential clients: what a token of this client is.
    pub async fn introspect(
        &self,
        creds: &ClientCredentials,
        token: Option<&str>,
        hint: Option<&str>,
    ) -> OResult<Value> {
        let client = self.authenticate(creds).await?;
        if !client.confidential() {
            return Err(OAuthError::new("invalid_client", "introspection is for confidential clients"));
        }
        let token = token.ok_or_else(|| OAuthError::new("invalid_request", "token is missing"))?;
        let Some((record, grant)) = self.find_token(token, hint).await? else { return Ok(json!({"active": false})) };
        if grant.client_id != client.id {
            return Ok(json!({"active": false}));
        }
        Ok(json!({
            "active": true,
            "scope": grant.scope,
            "client_id": grant.client_id,
            "sub": grant.user_id.to_string(),
            "aud": grant.client_id,
            "iss": self.settings.issuer,
            "iat": seconds(record.created_at),
            "exp": seconds(record.expires_at),
            "token_type": if record.kind == TokenKind::Access { "Bearer" } else { "refresh_token" },
        }))
    }

    /// The client an `id_token_hint` was issued to, when one of the published keys signed
    /// it for this issuer (it may have expired: logout hints often have).
    pub async fn logout_hint(&self, id_token_hint: &str) -> crate::error::Result<Option<Client>> {
        let Some((claims, _)) = self.keys.verify(id_token_hint).await? else { return Ok(None) };
        if claims.get("iss").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Ok(None);
        }
        let aud = match claims.get("aud") {
            Some(Value::String(aud)) => aud.clone(),
            Some(Value::Array(list)) => list.first().and_then(Value::as_str).unwrap_or_default().to_owned(),
            _ => return Ok(None),
        };
        self.clients.get(&aud).await
    }

    /// A sign-in proof for the signed-in session (PRODUCT §6.3): a JWT for `client_id`
    /// that lives at most two minutes.
    pub async fn session_proof(&self, session: &SessionUser, client_id: &str) -> crate::error::Result<(String, i64)> {
        let Some(client) = self.clients.get(client_id).await? else {
            return Err(DomainError::invalid("unknown-client", format!("no client is registered as {client_id:?}")));
        };
        let now = self.clock.now_ms();
        let exp = now.saturating_add(OidcSettings::ms(self.settings.proof_ttl));
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.settings.issuer));
        claims.insert("sub".into(), json!(session.user_id.to_string()));
        claims.insert("aud".into(), json!(client.id));
        claims.insert("iat".into(), json!(seconds(now)));
        claims.insert("exp".into(), json!(seconds(exp)));
        claims.insert("jti".into(), json!(SecretToken::generate()?.expose()));
        claims.insert("auth_time".into(), json!(seconds(session.created_at.max(session.verified_at))));
        claims.insert("amr".into(), json!(amr_of(session.method)));
        claims.insert("sid".into(), json!(session.session_digest.chars().take(32).collect::<String>()));
        let signed = self.keys.sign(client.id_token_alg, PROOF_TYPE, claims).await?;
        Ok((signed.token, seconds(exp)))
    }

    /// Checks a sign-in proof for the authenticated client and uses up its `jti`. The
    /// answer is the claims, or why the proof is refused (a stable code).
    pub async fn verify_proof(
        &self,
        client: &Client,
        token: &str,
    ) -> crate::error::Result<Result<Map<String, Value>, &'static str>> {
        let Some((claims, typ)) = self.keys.verify(token).await? else { return Ok(Err("bad-signature")) };
        if typ.as_deref() != Some(PROOF_TYPE) {
            // An ID token carries most of the same claims; only a proof is typed this way.
            return Ok(Err("not-a-proof"));
        }
        if claims.get("iss").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Ok(Err("wrong-issuer"));
        }
        if claims.get("aud").and_then(Value::as_str) != Some(client.id.as_str()) {
            return Ok(Err("wrong-audience"));
        }
        let now = seconds(self.clock.now_ms());
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if exp <= now {
            return Ok(Err("expired"));
        }
        let Some(jti) = claims.get("jti").and_then(Value::as_str).filter(|j| j.len() <= 64) else {
            return Ok(Err("no-jti"));
        };
        if !self.storage.use_proof_id(jti, exp.saturating_mul(1000)).await? {
            return Ok(Err("replayed"));
        }
        Ok(Ok(claims))
    }
}

/// The JWS `typ` of a sign-in proof, so that no verifier takes it for an ID token.
pub const PROOF_TYPE: &str = "handoff-proof+jwt";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20client:s%3Acret"));
        assert_eq!(ClientCredentials::parse_basic(&header), Some(("my client".into(), "s:cret".into())));
        assert_eq!(ClientCredentials::parse_basic("Basic !!!"), None);
        assert_eq!(ClientCredentials::parse_basic("Bearer x"), None);
    }
}
