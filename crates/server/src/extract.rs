//! Extractors that turn a request into domain inputs: JSON bodies whose errors become
//! `ApiError`s, the client's device and address, and the signed-in user from the session
//! cookie.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use handoff_core::DomainError;
use handoff_core::device::{DeviceHeaders, DeviceInfo};
use handoff_core::domain::SecretToken;
use handoff_core::passkeys::SessionUser;
use serde::de::DeserializeOwned;

use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;

/// Name of the session cookie on an http origin.
pub const SESSION_COOKIE: &str = "handoff_session";
/// Name of the session cookie on an https origin. Browsers accept a `__Host-` cookie only
/// when it is `Secure`, has `Path=/` and no `Domain`, so a sibling subdomain cannot plant
/// one for this host (cookie tossing into the attacker's account).
pub const HOST_SESSION_COOKIE: &str = "__Host-handoff_session";

/// The session cookie's name for this server's origin.
pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.http.https { HOST_SESSION_COOKIE } else { SESSION_COOKIE }
}
/// Name of the first-party device cookie (which browser is this?).
pub const DEVICE_COOKIE: &str = "handoff_device";
/// How long the device cookie lives (400 days, the most browsers keep).
const DEVICE_COOKIE_DAYS: i64 = 400;

/// A JSON body; malformed JSON, wrong types and oversize bodies become clear 4xx errors.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// Who is calling: device, user agent and address.
#[derive(Debug, Clone)]
pub struct ClientContext {
    /// OS, browser, form factor.
    pub device: DeviceInfo,
    /// Raw User-Agent.
    pub user_agent: Option<String>,
    /// Peer address.
    pub ip: Option<String>,
    /// The browser's device cookie, when it has one of ours.
    pub device_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let user_agent = header(USER_AGENT.as_str()).map(|s| s.chars().take(512).collect::<String>());
        let device = DeviceInfo::from_headers(&DeviceHeaders {
            user_agent: user_agent.as_deref(),
            ch_platform: header("sec-ch-ua-platform"),
            ch_mobile: header("sec-ch-ua-mobile"),
        });
        let ip = client_ip(parts).map(|ip| ip.to_string());
        let device_id = CookieJar::from_headers(&parts.headers)
            .get(DEVICE_COOKIE)
            .and_then(|c| SecretToken::parse(c.value()))
            .map(|t| t.expose().to_owned());
        Ok(Self { device, user_agent, ip, device_id })
    }
}

/// The client's address: as resolved through trusted proxies ([`ClientAddr`]), else the
/// connection's peer (a router built without that middleware).
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    match parts.extensions.get::<ClientAddr>() {
        Some(ClientAddr(ip)) => *ip,
        None => parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip()),
    }
}

/// The session token from the cookie, if it looks like one of ours.
pub fn session_token(jar: &CookieJar, state: &AppState) -> Option<SecretToken> {
    jar.get(session_cookie_name(state)).and_then(|c| SecretToken::parse(c.value()))
}

/// The signed-in user, if any.
pub struct MaybeUser(pub Option<SessionUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(token) = session_token(&jar, state) else { return Ok(Self(None)) };
        Ok(Self(state.sessions.resolve(&token).await?))
    }
}

/// The signed-in user; 401 `not-signed-in` otherwise.
pub struct SignedIn(pub SessionUser);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match MaybeUser::from_request_parts(parts, state).await?.0 {
            Some(user) => Ok(Self(user)),
            None => Err(DomainError::NotSignedIn.into()),
        }
    }
}

impl ClientContext {
    /// The device id, minting one (and adding its cookie to `jar`) when the browser has none.
    pub fn ensure_device_id(&mut self, jar: CookieJar, state: &AppState) -> Result<(CookieJar, String), ApiError> {
        if let Some(id) = &self.device_id {
            return Ok((jar, id.clone()));
        }
        let id = SecretToken::generate()?.expose().to_owned();
        let cookie = Cookie::build((DEVICE_COOKIE, id.clone()))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(state.http.secure_cookies)
            .path("/")
            .max_age(time::Duration::days(DEVICE_COOKIE_DAYS))
            .build();
        self.device_id = Some(id.clone());
        Ok((jar.add(cookie), id))
    }
}

/// The session cookie for a new session.
pub fn session_cookie(token: &SecretToken, state: &AppState) -> Cookie<'static> {
    let max_age = state.sessions.ttl().as_secs().min(i64::MAX as u64) as i64;
    Cookie::build((session_cookie_name(state), token.expose().to_owned()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.http.secure_cookies)
        .path("/")
        .max_age(time::Duration::seconds(max_age))
        .build()
}

/// Signs this browser in with a new session. A session of the browser's previous user
/// (another account, or the same one signed in again) is ended, not left alive behind a
/// dropped cookie.
pub async fn replace_session(
    state: &AppState,
    jar: CookieJar,
    new: handoff_core::passkeys::NewSession,
) -> Result<CookieJar, ApiError> {
    if let Some(old) = session_token(&jar, state) {
        state.sessions.revoke(&old).await?;
    }
    let token = state.sessions.start(new).await?;
    Ok(jar.add(session_cookie(&token, state)))
}

/// A cookie that removes the session cookie.
pub fn cleared_session_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = Cookie::build((session_cookie_name(state), ""))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.http.secure_cookies)
        .path("/")
        .build();
    c.make_removal();
    c
}

/// An operator: the request carries the operator token as `Authorization: Bearer …`.
/// 401 `operator-token-required` without one, 403 `operator-token-invalid` for a wrong one,
/// 429 `rate-limited` after 20 wrong ones from one client within a minute.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let token = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")));
        // Wrong tokens are counted per client; past the limit no token is even compared.
        let key = crate::limits::ip_key(client_ip(parts));
        if token.is_some() {
            state.rate.peek(&state.limits.operator_failures, &key).await?;
        }
        match token {
            None => Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "operator-token-required",
                "this endpoint needs the operator token as `Authorization: Bearer <token>`",
            )),
            Some(t) if state.http.operator_token.matches(t.trim()) => Ok(Self),
            Some(_) => {
                state.rate.record(&state.limits.operator_failures, &key).await?;
                Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "operator-token-invalid",
                    "the bearer token is not this server's operator token",
                ))
            }
        }
    }
}
