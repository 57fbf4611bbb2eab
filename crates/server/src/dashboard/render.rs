//! Turning a page's data into an HTTP response: the templates (`crate::templates`; names
//! end in `.html`, so everything printed is HTML-escaped unless a template marks a
//! server-drawn chart `safe`), the page headers (strict
//! Content-Security-Policy, no caching of operator data, `Referrer-Policy: same-origin` so
//! the browser names our origin on form posts), and the pages every route may need: the
//! sign-in form and a message page for errors.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use minijinja::value::{Serde, Value};
use serde::Serialize;

use super::auth::Access;

const CSS: &str = include_str!("../../assets/dashboard/dashboard.css");

/// Scripts: none. Styles: our stylesheet only (charts use presentation attributes, never
/// `style`). Forms post only here; no framing.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Renders `template` with `ctx` (plus `title` and whether the operator is signed in).
pub fn page<T: Serialize>(status: StatusCode, template: &str, title: &str, signed_in: bool, ctx: &T) -> Response {
    let rendered = crate::templates::render(
        template,
        context! { title => title, signed_in => signed_in, ..Value::from(Serde(ctx)) },
    );
    match rendered {
        Ok(html) => html_response(status, html),
        Err(e) => {
            tracing::error!(error = %e, "rendering a dashboard page failed");
            let body = "The dashboard page could not be drawn; the error has been logged.";
            (StatusCode::INTERNAL_SERVER_ERROR, [(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
        }
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, CSP),
            (CACHE_CONTROL, "no-store"),
            (REFERRER_POLICY, "same-origin"),
        ],
        html,
    )
        .into_response()
}

/// The sign-in form.
#[derive(Debug, Default, Serialize)]
pub struct SignIn {
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// A note above the form (signed out, sign-in expired).
    pub notice: Option<String>,
    /// The dashboard page to return to.
    pub next: String,
}

impl SignIn {
    /// The form for a request without access to `next`.
    pub fn for_access(access: Access, next: &str) -> Self {
        let (error, notice) = match access {
            Access::Refused => (Some("The bearer token sent is not this server's operator token.".to_owned()), None),
            Access::Missing { stale: true } => {
                (None, Some("Your dashboard sign-in has expired or is no longer valid. Sign in again.".to_owned()))
            }
            _ => (None, None),
        };
        Self { error, notice, next: super::auth::local_target(Some(next)).to_owned() }
    }
}

/// The sign-in page with this status.
pub fn sign_in(status: StatusCode, form: &SignIn) -> Response {
    page(status, "sign_in.html", "Sign in", false, form)
}

#[derive(Serialize)]
struct Message<'a> {
    heading: &'a str,
    message: &'a str,
}

/// A page that says what went wrong (or where to go), with this status; `signed_in` shows
/// the dashboard's navigation.
pub fn message(status: StatusCode, signed_in: bool, heading: &str, message: &str) -> Response {
    page(status, "message.html", heading, signed_in, &Message { heading, message })
}

/// 303 to a local path (checked by the caller; a value that is no header value goes home).
pub fn see_other(location: &str) -> Response {
    let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/dashboard"));
    (StatusCode::SEE_OTHER, [(LOCATION, location), (CACHE_CONTROL, HeaderValue::from_static("no-store"))])
        .into_response()
}

/// The stylesheet.
pub fn css() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8"), (CACHE_CONTROL, "no-cache")], CSS).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn printed_values_are_escaped() {
        let form = SignIn { error: Some("<script>alert(1)</script>".into()), notice: None, next: "/dashboard".into() };
        let response = sign_in(StatusCode::FORBIDDEN, &form);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
        let html = String::from_utf8_lossy(&body);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"), "{html}");
        assert!(!html.contains("<script>alert"));
    }
}
