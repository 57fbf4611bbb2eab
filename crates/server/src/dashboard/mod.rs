//! The operator dashboard at `/dashboard` (PRODUCT.md §4.4): funnels per flow with charts,
//! breakdowns and root causes with their actions, the insights, and the support lookup
//! from a search to one journey's timeline, and each webhook endpoint's deliveries. It is server-rendered HTML: minijinja
//! templates (embedded, HTML auto-escaped, so identifiers and event attributes can never
//! become markup) and SVG charts drawn on the server, so every page works without
//! JavaScript and the pages keep the strict Content-Security-Policy of the demo pages.
//!
//! It reads exactly what the API reads: `report::funnels` and `report::insights` (the
//! journey table's counts, never raw events) and the journey lookups of `api::journeys`.
//! Access is the operator token, as a bearer header or a signed cookie (`auth`).

pub(crate) mod auth;
mod charts;
mod render;
mod timeline;
mod views;
mod webhooks;

use std::net::IpAddr;

use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::CookieJar;
use handoff_core::clock::now_ms;
use serde::Deserialize;

pub use auth::{Access, COOKIE, cookie_value};

use crate::state::AppState;

/// Largest form body (the sign-in form holds one token).
const MAX_FORM_BYTES: usize = 4 * 1024;

/// The dashboard's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(views::overview))
        .route("/dashboard/journeys", get(views::search))
        .route("/dashboard/journeys/{journey_id}", get(timeline::timeline))
        .route("/dashboard/webhooks", get(webhooks::page))
        .route("/dashboard/webhooks/deliveries/{id}/redeliver", post(webhooks::redeliver))
        .route("/dashboard/sign-in", post(sign_in))
        .route("/dashboard/sign-out", post(sign_out))
        .route("/dashboard/assets/{name}", get(asset))
        .route("/dashboard/{*rest}", get(not_found))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}

impl FromRequestParts<AppState> for Access {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // A client past its wrong-token limit is answered 429 before any token is compared.
        checked_access(parts, state).await.map_err(IntoResponse::into_response)
    }
}

/// [`auth::access`], with wrong bearer tokens counted per client: past the limit every
/// bearer token is refused without being compared (429).
async fn checked_access(parts: &Parts, state: &AppState) -> Result<Access, crate::error::ApiError> {
    let bearer = parts.headers.contains_key(axum::http::header::AUTHORIZATION);
    let key = crate::limits::ip_key(crate::extract::client_ip(parts));
    if bearer {
        state.rate.peek(&state.limits.operator_failures, &key).await?;
    }
    let access = auth::access(&parts.headers, &state.http.operator_token, now_ms());
    if access == Access::Refused {
        state.rate.record(&state.limits.operator_failures, &key).await?;
    }
    Ok(access)
}

/// The operator, signed in; otherwise the answer is the sign-in form (401, or 403 for a
/// wrong bearer token), which brings the person back to this page afterwards.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let access = match checked_access(parts, state).await {
            Ok(access) => access,
            Err(limited) => return Err(limited.into_response()),
        };
        match access {
            Access::Granted => Ok(Self),
            other => {
                let next = parts.uri.path_and_query().map_or("/dashboard", |p| p.as_str());
                Err(render::sign_in(auth::status_of(other), &render::SignIn::for_access(other, next)))
            }
        }
    }
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    /// The operator token.
    token: String,
    /// The dashboard page to return to.
    #[serde(default)]
    next: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    PeerIp(ip): PeerIp,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    if !auth::same_origin(&headers, &state.http.origins) {
        return render::message(
            StatusCode::FORBIDDEN,
            false,
            "Sign-in refused",
            "This sign-in came from a page on another site, so it was refused (cross-site request forgery \
             protection). Open the dashboard on this server and sign in there.",
        );
    }
    let Ok(Form(form)) = form else {
        let page = render::SignIn {
            error: Some("Send the operator token in the form field \"token\".".into()),
            ..render::SignIn::default()
        };
        return render::sign_in(StatusCode::BAD_REQUEST, &page);
    };
    let next = auth::local_target(form.next.as_deref()).to_owned();
    let key = crate::limits::ip_key(ip);
    let limited = match state.rate.check(&state.limits.dashboard_sign_in, &key).await {
        Ok(()) => state.rate.peek(&state.limits.operator_failures, &key).await.err(),
        Err(e) => Some(e),
    };
    if let Some(limited) = limited {
        let page = render::SignIn {
            error: Some(format!("Too many sign-in attempts from this address: {}.", limited.message())),
            next,
            ..render::SignIn::default()
        };
        let mut response = render::sign_in(limited.status(), &page);
        if let Some(wait) = limited.retry_after() {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, wait.into());
        }
        return response;
    }
    if !state.http.operator_token.matches(form.token.trim()) {
        if let Err(e) = state.rate.record(&state.limits.operator_failures, &key).await {
            return e.into_response();
        }
        let page = render::SignIn {
            error: Some(
                "That is not this server's operator token. Check for a missing character, and that you \
                         copied the token of this server."
                    .into(),
            ),
            next,
            ..render::SignIn::default()
        };
        return render::sign_in(StatusCode::FORBIDDEN, &page);
    }
    match auth::sign_in_cookie(&state, now_ms()) {
        Some(cookie) => (jar.add(cookie), render::see_other(&next)).into_response(),
        None => render::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            false,
            "Sign-in failed",
            "The sign-in cookie could not be made.",
        ),
    }
}

async fn sign_out(State(state): State<AppState>, jar: CookieJar, headers: HeaderMap) -> Response {
    if !auth::same_origin(&headers, &state.http.origins) {
        return render::message(
            StatusCode::FORBIDDEN,
            false,
            "Sign-out refused",
            "This sign-out came from a page on another site, so it was refused.",
        );
    }
    (jar.add(auth::signed_out_cookie(&state)), render::see_other("/dashboard?signedOut=1")).into_response()
}

/// The peer's address, when the server knows it.
struct PeerIp(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(crate::extract::client_ip(parts)))
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "dashboard.css" => render::css(),
        _ => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

async fn not_found(access: Access) -> Response {
    render::message(
        StatusCode::NOT_FOUND,
        access == Access::Granted,
        "Page not found",
        "The dashboard has no such page.",
    )
}
