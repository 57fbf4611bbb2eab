//! The pages behind the links recovery mails and prints (PRODUCT §7). The operator's
//! recovery link: `GET /recovery-link/{token}` shows what the link does and a Sign in
//! button, and only the button's `POST` uses the link, so a mail scanner or a link preview
//! that fetches the address does not spend it; using it starts a recovery session and goes
//! to the demo page, which offers to create a passkey here. The sign-up's address
//! verification link (`/verify-email/{token}`) works the same way: a page, then a `POST`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum_extra::extract::CookieJar;
use handoff_core::DomainError;
use handoff_core::passkeys::SessionMethod;

use crate::extract::ClientContext;
use crate::oidc::{message, page, see_other};
use crate::state::AppState;

/// Routes of the page.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/recovery-link/{token}", get(show).post(use_link))
        .route("/verify-email/{token}", get(show_verification).post(verify))
}

fn invalid() -> Response {
    message(
        StatusCode::GONE,
        "This link does not work any more",
        "It was used already, it expired (links work for 15 minutes), or it is incomplete. Ask the site's operator for a new one.",
        None,
    )
}

/// `GET /recovery-link/{token}`.
pub async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.recovery.recovery_link(&token).await {
        Ok(link) => {
            let expires = handoff_core::clock::rfc3339(link.expires_at).replace('T', " ");
            let expires = expires.get(..16).unwrap_or(&expires).to_owned();
            let ctx = minijinja::context! { site => state.recovery.settings().site_name.clone(), expires, token };
            page(StatusCode::OK, "provider/recovery_link.html", "Sign in with a recovery link", "", ctx)
        }
        Err(DomainError::RecoveryLinkInvalid) => invalid(),
        Err(e) => crate::oidc::internal(&e),
    }
}

/// `POST /recovery-link/{token}`: from our own page only.
pub async fn use_link(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: ClientContext,
    jar: CookieJar,
    headers: HeaderMap,
) -> Result<(CookieJar, Response), Response> {
    let named = headers.contains_key(axum::http::header::ORIGIN);
    if !named || !crate::dashboard::auth::same_origin(&headers, &state.http.origins) {
        return Err(message(StatusCode::FORBIDDEN, "Not allowed", "Use the Sign in button on the link's page.", None));
    }
    let (user, journey) = match state.recovery.use_recovery_link(&token).await {
        Ok(found) => found,
        Err(DomainError::RecoveryLinkInvalid) => return Err(invalid()),
        Err(e) => return Err(crate::oidc::internal(&e)),
    };
    let jar = crate::api::recovery::recovery_session(&state, jar, client, user, SessionMethod::RecoveryLink, journey)
        .await
        .map_err(axum::response::IntoResponse::into_response)?;
    Ok((jar, see_other("/?recovered=recovery-link")))
}

/// `GET /verify-email/{token}`: a Confirm button (the `POST` spends the link).
pub async fn show_verification(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let site = state.recovery.settings().site_name.clone();
    let ctx = minijinja::context! { site, token };
    page(StatusCode::OK, "provider/verify_email.html", "Confirm your email address", "", ctx)
}

/// `POST /verify-email/{token}`: from our own page only.
pub async fn verify(State(state): State<AppState>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let named = headers.contains_key(axum::http::header::ORIGIN);
    if !named || !crate::dashboard::auth::same_origin(&headers, &state.http.origins) {
        return message(StatusCode::FORBIDDEN, "Not allowed", "Use the Confirm button on the link's page.", None);
    }
    match state.recovery.verify_email(&token).await {
        Ok(user) => {
            tracing::info!(user = %user, "an account's email address was verified");
            message(StatusCode::OK, "Email address confirmed", "Thank you: this address is now verified.", Some("/"))
        }
        Err(DomainError::RecoveryLinkInvalid) => message(
            StatusCode::GONE,
            "This link does not work any more",
            "It was used already, it expired (links work for 24 hours), or it is incomplete.",
            None,
        ),
        Err(e) => crate::oidc::internal(&e),
    }
}
