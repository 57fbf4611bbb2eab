//! The authorization endpoint (GET and POST), the hand-back from the sign-in page
//! (`/oauth2/authorize/continue`) and the consent form. Unknown clients and redirect URIs
//! get Handoff's error page and are never redirected to.

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use handoff_core::domain::JourneyId;
use handoff_core::oidc::{AuthorizeError, Next};
use handoff_core::passkeys::SessionUser;

use super::{internal, message, page, pairs, see_other};
use crate::extract::MaybeUser;
use crate::state::AppState;

/// `GET /oauth2/authorize`.
pub async fn by_query(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    RawQuery(query): RawQuery,
) -> Response {
    authorize(&state, user.as_ref(), &pairs(query.unwrap_or_default().as_bytes())).await
}

/// `POST /oauth2/authorize` (form-encoded, OIDC Core §3.1.2.1).
pub async fn by_form(State(state): State<AppState>, MaybeUser(user): MaybeUser, body: Bytes) -> Response {
    authorize(&state, user.as_ref(), &pairs(&body)).await
}

async fn authorize(state: &AppState, user: Option<&SessionUser>, params: &[(String, String)]) -> Response {
    let (request, client) = match state.oidc.check_request(params).await {
        Err(e) => return internal(&e),
        Ok(Err(AuthorizeError::Page(reason))) => {
            tracing::info!(%reason, "refused an authorization request");
            return message(
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                &format!(
                    "{reason}. Go back to the application and try again; if it keeps happening, tell its operator."
                ),
                None,
            );
        }
        Ok(Err(AuthorizeError::Redirect(url))) => return see_other(&url),
        Ok(Ok(checked)) => checked,
    };
    match state.oidc.proceed(request, client, user, false, None).await {
        Ok(next) => respond(state, user, next, None).await,
        Err(e) => internal(&e),
    }
}

/// The response for the next step.
async fn respond(state: &AppState, user: Option<&SessionUser>, next: Next, journey: Option<JourneyId>) -> Response {
    match next {
        Next::Redirect(url) => see_other(&url),
        Next::SignIn { request, client_name } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("request", &request.id).append_pair("client", &client_name);
            if let Some(hint) = &request.login_hint {
                query.append_pair("login_hint", hint);
            }
            see_other(&format!("/?{}", query.finish()))
        }
        Next::Consent { request, client } => {
            let Some(user) = user else {
                return message(
                    StatusCode::UNAUTHORIZED,
                    "Sign in first",
                    "Your sign-in ended; start again from the application.",
                    None,
                );
            };
            let identifier = match state.passkeys.account(user.user_id).await {
                Ok(account) => account.identifier.to_string(),
                Err(e) => return internal(&e),
            };
            // In the order of `SCOPES` (who you are first), not the stored alphabetical one.
            let asks: Vec<&str> = handoff_core::oidc::authorize::SCOPES
                .iter()
                .filter(|known| request.scope.iter().any(|s| s == *known))
                .map(|s| match *s {
                    "openid" => "know it is you (a stable id for your account)",
                    "profile" => "see your username and display name",
                    "email" => "see your email address",
                    "offline_access" => "stay signed in while you are away",
                    _ => "use your sign-in",
                })
                .collect();
            let destination = url::Url::parse(&request.redirect_uri)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_else(|_| request.redirect_uri.clone());
            page(
                StatusCode::OK,
                "provider/consent.html",
                &format!("Allow {}", client.name),
                &destination,
                minijinja::context! {
                    client => client.name, identifier, asks, destination => destination.clone(), request => request.id,
                    journey => journey.map(|j| j.to_string()),
                },
            )
        }
    }
}

/// `?request=` of the hand-back, and the sign-in page's journey (so that the journey
/// records the application it signed in to).
#[derive(serde::Deserialize)]
pub struct Resume {
    request: String,
    #[serde(default)]
    journey: Option<String>,
}

fn gone() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "This sign-in request has ended",
        "It expired or was already answered. Go back to the application and sign in again.",
        None,
    )
}

/// `GET /oauth2/authorize/continue?request=…`: the sign-in page is done.
pub async fn resume(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    query: Result<Query<Resume>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(Resume { request, journey })) = query else { return gone() };
    let journey = journey.and_then(|j| JourneyId::parse(&j).ok());
    let (request, client) = match state.oidc.stored_request(&request).await {
        Ok(Some(found)) => found,
        Ok(None) => return gone(),
        Err(e) => return internal(&e),
    };
    match state.oidc.proceed(request, client, user.as_ref(), true, journey).await {
        Ok(next) => respond(&state, user.as_ref(), next, journey).await,
        Err(e) => internal(&e),
    }
}

/// `POST /oauth2/authorize/consent`: Allow or Deny, from our own page only.
pub async fn consent(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Browsers name the page's origin on every form post (our pages send
    // `Referrer-Policy: same-origin`), so an answer without `Origin` did not come from one.
    let named = headers.contains_key(axum::http::header::ORIGIN);
    if !named || !crate::dashboard::auth::same_origin(&headers, &state.http.origins) {
        return message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This answer did not come from this site's consent page.",
            None,
        );
    }
    let Some(user) = user else {
        return message(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "Your sign-in ended before you answered; start again from the application.",
            None,
        );
    };
    let form = pairs(&body);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let allow = match field("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => return message(StatusCode::BAD_REQUEST, "No answer", "Choose Allow or Deny.", None),
    };
    let journey = field("journey").and_then(|j| JourneyId::parse(j).ok());
    match state.oidc.consent(field("request").unwrap_or_default(), &user, allow, journey).await {
        Ok(Some(url)) => see_other(&url),
        Ok(None) => gone(),
        Err(e) => internal(&e),
    }
}
