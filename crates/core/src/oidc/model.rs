//! What the provider stores: registered clients, authorization requests waiting for a
//! sign-in, grants (one per authorization: the family of every token issued from it),
//! authorization codes and tokens. Codes, tokens and client secrets are kept only as
//! SHA-256 digests of 256-bit random values, like session tokens.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::SigningAlg;
use crate::clock::Millis;
use crate::domain::UserId;
use crate::error::{DomainError, Result};

/// Hex SHA-256 of a secret a client presents.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two digests without an early exit.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where a client's registration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientSource {
    /// `handoff clients add` or the operator API.
    Operator,
    /// `[[clients]]` in the configuration file (replaced at every start).
    Config,
}

impl ClientSource {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Config => "config",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "operator" => Some(Self::Operator),
            "config" => Some(Self::Config),
            _ => None,
        }
    }
}

/// A registered relying party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// Shown on the consent page and the dashboard.
    pub name: String,
    /// Digest of the secret; `None` for a public client (PKCE instead).
    pub secret_digest: Option<String>,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser.
    pub post_logout_redirect_uris: Vec<String>,
    /// Origins whose pages may call the API with credentials (the sign-in proof, §6.3).
    pub allowed_origins: Vec<String>,
    /// The operator's own application: no consent screen.
    pub first_party: bool,
    /// The ID token's signing algorithm.
    pub id_token_alg: SigningAlg,
    /// May use the device authorization grant.
    pub device: bool,
    /// Where the registration came from.
    pub source: ClientSource,
    /// When it was registered.
    pub created_at: Millis,
}

impl Client {
    /// True for a client that authenticates with a secret.
    pub fn confidential(&self) -> bool {
        self.secret_digest.is_some()
    }
}

/// A client as the operator describes it (CLI, API, TOML), before it is checked.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientSpec {
    /// Shown to people on the consent page.
    pub name: String,
    /// Exact redirect URIs (at least one).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Origins allowed to call the API with credentials (`https://app.example.com`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// A public client (a single-page or native app): no secret, PKCE required.
    #[serde(default)]
    pub public: bool,
    /// The operator's own application: no consent screen.
    #[serde(default)]
    pub first_party: bool,
    /// `RS256` (default) or `ES256`.
    #[serde(default)]
    pub id_token_alg: Option<String>,
    /// May use the device authorization grant.
    #[serde(default)]
    pub device: bool,
}

fn invalid(code: &'static str, message: String) -> DomainError {
    DomainError::invalid(code, message)
}

/// Checks a redirect URI: absolute, no fragment; `http` only to a loopback host.
pub fn check_redirect_uri(raw: &str, field: &str) -> Result<String> {
    let url = url::Url::parse(raw)
        .map_err(|e| invalid("invalid-client", format!("{field} {raw:?} is not an absolute URL: {e}")))?;
    if url.fragment().is_some() {
        return Err(invalid("invalid-client", format!("{field} {raw:?} must not have a #fragment")));
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
            if !loopback {
                return Err(invalid(
                    "invalid-client",
                    format!("{field} {raw:?} uses http to a host that is not loopback; use https"),
                ));
            }
        }
        "javascript" | "data" | "file" | "vbscript" => {
            return Err(invalid(
                "invalid-client",
                format!("{field} {raw:?} has a scheme that cannot be a redirect target"),
            ));
        }
        // A native app's private-use scheme (RFC 8252 §7.1) like `com.example.app:/cb`.
        _ => {}
    }
    Ok(raw.to_owned())
}

fn check_origin(raw: &str) -> Result<String> {
    let url = url::Url::parse(raw)
        .map_err(|e| invalid("invalid-client", format!("allowed origin {raw:?} is not a URL: {e}")))?;
    let origin = url.origin().ascii_serialization();
    if !matches!(url.scheme(), "http" | "https") || origin.trim_end_matches('/') != raw.trim_end_matches('/') {
        return Err(invalid(
            "invalid-client",
            format!("allowed origin {raw:?} must be scheme://host[:port] with nothing after it"),
        ));
    }
    Ok(origin)
}

impl ClientSpec {
    /// The client this describes, with `id` and the digest of `secret` (none for a public
    /// client); names what is wrong otherwise.
    pub fn into_client(self, id: String, secret: Option<&str>, source: ClientSource, now: Millis) -> Result<Client> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(invalid("invalid-client", "name must be 1 to 100 characters".into()));
        }
        if self.redirect_uris.is_empty() && !self.device {
            return Err(invalid("invalid-client", "at least one redirect URI is needed".into()));
        }
        if self.redirect_uris.len() + self.post_logout_redirect_uris.len() + self.allowed_origins.len() > 50 {
            return Err(invalid("invalid-client", "at most 50 URIs and origins in all".into()));
        }
        let redirect_uris =
            self.redirect_uris.iter().map(|u| check_redirect_uri(u, "redirect URI")).collect::<Result<Vec<_>>>()?;
        let post_logout_redirect_uris = self
            .post_logout_redirect_uris
            .iter()
            .map(|u| check_redirect_uri(u, "post-logout redirect URI"))
            .collect::<Result<Vec<_>>>()?;
        let allowed_origins = self.allowed_origins.iter().map(|o| check_origin(o)).collect::<Result<Vec<_>>>()?;
        let id_token_alg = match &self.id_token_alg {
            Some(alg) => SigningAlg::parse(alg)?,
            None => SigningAlg::Rs256,
        };
        let secret_digest = match (self.public, secret) {
            (true, _) => None,
            (false, Some(secret)) => Some(digest(secret)),
            (false, None) => return Err(invalid("invalid-client", "a confidential client needs a secret".into())),
        };
        Ok(Client {
            id,
            name,
            secret_digest,
            redirect_uris,
            post_logout_redirect_uris,
            allowed_origins,
            first_party: self.first_party,
            id_token_alg,
            device: self.device,
            source,
            created_at: now,
        })
    }
}

/// Checks a client id chosen in the configuration file.
pub fn check_client_id(raw: &str) -> Result<String> {
    let ok = (3..=100).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(invalid("invalid-client", format!("client id {raw:?} must be 3 to 100 letters, digits, '-', '_' or '.'")))
    }
}

/// `prompt` values that change what the authorization endpoint does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// Show nothing: answer with an error when a page would be needed.
    pub none: bool,
    /// Sign in again even with a live session.
    pub login: bool,
    /// Ask for consent again.
    pub consent: bool,
}

/// An authorization request that passed every check, kept while the person signs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// Random id (the sign-in page carries it).
    pub id: String,
    /// The client.
    pub client_id: String,
    /// Where the answer goes (one of the client's).
    pub redirect_uri: String,
    /// Requested scopes, sorted, `openid` among them.
    pub scope: Vec<String>,
    /// Echoed back.
    pub state: Option<String>,
    /// Put in the ID token.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// `prompt`.
    pub prompt: Prompt,
    /// `max_age` in seconds.
    pub max_age: Option<i64>,
    /// Fills the identifier on the sign-in page.
    pub login_hint: Option<String>,
    /// When the request arrived.
    pub created_at: Millis,
}

/// One authorization and every token issued from it: revoking it revokes them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// Random id.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The person.
    pub user_id: UserId,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// When the person signed in.
    pub auth_time: Millis,
    /// How (RFC 8176 values).
    pub amr: Vec<String>,
    /// The Handoff session's public id.
    pub sid: String,
    /// From the authorization request.
    pub nonce: Option<String>,
    /// When it was made.
    pub created_at: Millis,
    /// No token of it lives past this.
    pub expires_at: Millis,
}

impl GrantRecord {
    /// True when `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// An authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// Digest of the code.
    pub digest: String,
    /// Its grant.
    pub grant_id: String,
    /// The redirect URI of the request (the exchange must name the same).
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// Single use before this.
    pub expires_at: Millis,
}

/// What a code's digest leads to when it is exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant, reason = "made once per code exchange and matched at once; boxing buys nothing")]
pub enum CodeRedemption {
    /// First use, in time: the code and its (live) grant.
    Fresh(CodeRecord, GrantRecord),
    /// The code was already used: its grant must be revoked.
    Reused {
        /// The grant of the code.
        grant_id: String,
    },
    /// Unknown or expired.
    Unknown,
}

/// Kinds of token kept in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An opaque access token.
    Access,
    /// A refresh token.
    Refresh,
}

impl TokenKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "access" => Some(Self::Access),
            "refresh" => Some(Self::Refresh),
            _ => None,
        }
    }
}

/// An issued access or refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Digest of the token.
    pub digest: String,
    /// Its grant.
    pub grant_id: String,
    /// Access or refresh.
    pub kind: TokenKind,
    /// When it was issued.
    pub created_at: Millis,
    /// When it ends.
    pub expires_at: Millis,
}

/// What a refresh token's digest leads to when it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// Its first use, live: the grant to issue from (the token is now rotated away).
    Fresh(GrantRecord),
    /// The token was rotated away already: someone replays it, so the family is revoked.
    Reused {
        /// The family.
        grant_id: String,
    },
    /// Unknown, expired or revoked.
    Unknown,
}
