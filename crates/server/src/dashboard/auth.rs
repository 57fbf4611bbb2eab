//! Who may read the dashboard. Automation sends the operator token as
//! `Authorization: Bearer …`, as for the API. A person signs in once through a form and
//! then carries a cookie that needs no server-side state, so it works on every instance
//! behind a load balancer: `{expiry_ms}.{hex HMAC-SHA256(operator token,
//! "handoff-dashboard:" + expiry_ms)}`. Only a holder of the token can make one, changing
//! the token ends every sign-in, and it expires after 12 hours. Tokens and tags are
//! compared in constant time; sign-in and sign-out refuse other origins' posts (CSRF), and
//! sign-in attempts and wrong bearer tokens are rate-limited per address (`limits.rs`).

use axum::http::{HeaderMap, StatusCode, header};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use handoff_core::clock::Millis;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;
use crate::state::AppState;

/// The sign-in cookie.
pub const COOKIE: &str = "handoff_operator";
/// Where the cookie is sent.
pub const COOKIE_PATH: &str = "/dashboard";
/// How long a sign-in lasts.
pub const LIFETIME_MS: Millis = 12 * 3_600_000;
/// What the tag signs besides the expiry, so it can mean nothing else.
const CONTEXT: &str = "handoff-dashboard:";
/// Clocks of several instances disagree a little; a cookie from a slightly fast one is fine.
const CLOCK_SLACK_MS: Millis = 5 * 60_000;

/// How a request stands with the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The operator: a valid bearer token or sign-in cookie.
    Granted,
    /// Nothing that signs in; `stale` when a sign-in cookie came but is expired or forged.
    Missing {
        /// A cookie came that no longer (or never did) sign in.
        stale: bool,
    },
    /// A bearer token that is not the operator token.
    Refused,
}

/// What the request carries, checked against the operator token at `now`.
pub fn access(headers: &HeaderMap, token: &Secret, now: Millis) -> Access {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Some(bearer) = authorization.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) {
        return if token.matches(bearer.trim()) { Access::Granted } else { Access::Refused };
    }
    match CookieJar::from_headers(headers).get(COOKIE) {
        Some(c) if verify(token, c.value(), now) => Access::Granted,
        Some(_) => Access::Missing { stale: true },
        None => Access::Missing { stale: false },
    }
}

fn tag(token: &Secret, expiry_ms: Millis) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes()).ok()?;
    mac.update(CONTEXT.as_bytes());
    mac.update(expiry_ms.to_string().as_bytes());
    Some(mac)
}

/// The cookie value for a sign-in that ends at `expiry_ms`.
pub fn cookie_value(token: &Secret, expiry_ms: Millis) -> Option<String> {
    let bytes = tag(token, expiry_ms)?.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{expiry_ms}.{hex}"))
}

/// Whether `value` is a cookie this token made that has not expired at `now`.
pub fn verify(token: &Secret, value: &str, now: Millis) -> bool {
    let Some((expiry, hex)) = value.split_once('.') else { return false };
    // Only the canonical spelling of the number, so one tag has one cookie.
    let Some(expiry_ms) = expiry.parse::<Millis>().ok().filter(|ms| ms.to_string() == expiry) else {
        return false;
    };
    if expiry_ms <= now || expiry_ms > now.saturating_add(LIFETIME_MS + CLOCK_SLACK_MS) {
        return false;
    }
    let Some(bytes) = unhex(hex) else { return false };
    tag(token, expiry_ms).is_some_and(|mac| mac.verify_slice(&bytes).is_ok())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// The cookie that signs this browser in until `now` + 12 h.
pub fn sign_in_cookie(state: &AppState, now: Millis) -> Option<Cookie<'static>> {
    let value = cookie_value(&state.http.operator_token, now + LIFETIME_MS)?;
    Some(
        Cookie::build((COOKIE, value))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(state.http.secure_cookies)
            .path(COOKIE_PATH)
            .max_age(time::Duration::milliseconds(LIFETIME_MS))
            .build(),
    )
}

/// A cookie that removes the sign-in cookie.
pub fn signed_out_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = Cookie::build((COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.http.secure_cookies)
        .path(COOKIE_PATH)
        .build();
    c.make_removal();
    c
}

/// Whether a state-changing form post may come from where it came from: a browser names
/// the page's origin in `Origin` (our pages ask for it with `Referrer-Policy:
/// same-origin`), and it must be a configured one; `Sec-Fetch-Site: cross-site` is refused
/// too. A request without either header is not a browser page's (tools, tests).
pub fn same_origin(headers: &HeaderMap, origins: &[String]) -> bool {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    if header("sec-fetch-site") == Some("cross-site") {
        return false;
    }
    match header("origin") {
        Some(o) => origins.iter().any(|c| c.trim_end_matches('/') == o),
        None => true,
    }
}

/// Where to go after signing in: a dashboard path from the form, never another site.
pub fn local_target(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if (n == COOKIE_PATH || n.starts_with("/dashboard/") || n.starts_with("/dashboard?"))
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => COOKIE_PATH,
    }
}

/// The response status for a request without access.
pub fn status_of(access: Access) -> StatusCode {
    match access {
        Access::Refused => StatusCode::FORBIDDEN,
        _ => StatusCode::UNAUTHORIZED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const NOW: Millis = 1_800_000_000_000;

    fn token() -> Secret {
        Secret::new("test-operator-token-0123456789")
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("x")));
        h
    }

    #[test]
    fn a_cookie_signs_in_until_it_expires() {
        let value = cookie_value(&token(), NOW + LIFETIME_MS).unwrap_or_default();
        assert!(verify(&token(), &value, NOW));
        assert!(verify(&token(), &value, NOW + LIFETIME_MS - 1));
        assert!(!verify(&token(), &value, NOW + LIFETIME_MS));
        let cookie = format!("{COOKIE}={value}");
        assert_eq!(access(&with("cookie", &cookie), &token(), NOW), Access::Granted);
    }

    #[test]
    fn forged_and_foreign_cookies_are_refused() {
        let value = cookie_value(&token(), NOW + LIFETIME_MS).unwrap_or_default();
        let (expiry, tag) = value.split_once('.').unwrap_or_default();
        // Another token's cookie, a later expiry with the old tag, a flipped tag, junk.
        let other = cookie_value(&Secret::new("another-operator-token-000"), NOW + LIFETIME_MS).unwrap_or_default();
        let later = format!("{}.{tag}", NOW + LIFETIME_MS + 1);
        let flipped = format!("{expiry}.{}{}", if tag.starts_with('0') { "1" } else { "0" }, &tag[1..]);
        let padded = format!("0{expiry}.{tag}");
        let far = cookie_value(&token(), NOW + 10 * LIFETIME_MS).unwrap_or_default();
        for bad in [other, later, flipped, padded, far, "".into(), ".".into(), "1.2".into(), "x.y".into()] {
            assert!(!verify(&token(), &bad, NOW), "{bad}");
            let cookie = format!("{COOKIE}={bad}");
            assert_eq!(access(&with("cookie", &cookie), &token(), NOW), Access::Missing { stale: true }, "{bad}");
        }
    }

    #[test]
    fn bearer_tokens_are_checked() {
        let good = with("authorization", "Bearer test-operator-token-0123456789");
        assert_eq!(access(&good, &token(), NOW), Access::Granted);
        assert_eq!(access(&with("authorization", "Bearer nope"), &token(), NOW), Access::Refused);
        assert_eq!(access(&HeaderMap::new(), &token(), NOW), Access::Missing { stale: false });
    }

    #[test]
    fn only_configured_origins_may_post() {
        let origins = vec!["http://localhost:8080".to_owned()];
        assert!(same_origin(&with("origin", "http://localhost:8080"), &origins));
        assert!(same_origin(&HeaderMap::new(), &origins));
        assert!(!same_origin(&with("origin", "https://evil.example"), &origins));
        assert!(!same_origin(&with("origin", "null"), &origins));
        assert!(!same_origin(&with("sec-fetch-site", "cross-site"), &origins));
    }

    #[test]
    fn sign_in_only_leads_back_into_the_dashboard() {
        assert_eq!(local_target(Some("/dashboard/journeys?identifier=a%40b")), "/dashboard/journeys?identifier=a%40b");
        assert_eq!(local_target(Some("/dashboard?from=7d")), "/dashboard?from=7d");
        for bad in ["//evil.example", "https://evil.example/dashboard", "/dashboardx", "/dashboard/\r\nx", "/"] {
            assert_eq!(local_target(Some(bad)), "/dashboard", "{bad}");
        }
        assert_eq!(local_target(None), "/dashboard");
    }
}
