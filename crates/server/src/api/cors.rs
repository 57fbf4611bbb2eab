//! CORS for applications that run the SDK on their own origin (PRODUCT §6.3): a request
//! whose `Origin` is one of a registered client's `allowedOrigins` gets
//! `Access-Control-Allow-Origin` for that origin with credentials (and a preflight
//! answer); every other cross-origin request gets no CORS header, so browsers keep it
//! same-origin. Our own origins need none.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// The middleware (on `/api/v1`).
pub async fn allow_client_origins(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(origin) = origin.filter(|o| !state.http.origins.iter().any(|own| own == o)) else {
        return next.run(request).await;
    };
    let allowed = match state.oidc.clients().allows_origin(&origin).await {
        Ok(allowed) => allowed,
        Err(e) => {
            tracing::warn!(error = %e, "reading the clients' allowed origins failed; answering without CORS");
            false
        }
    };
    let Ok(value) = HeaderValue::from_str(&origin) else { return next.run(request).await };
    if !allowed {
        return next.run(request).await;
    }
    let preflight = request.method() == Method::OPTIONS;
    let mut response =
        if preflight { (StatusCode::NO_CONTENT, Body::empty()).into_response() } else { next.run(request).await };
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
    headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    headers.append(VARY, HeaderValue::from_static("origin"));
    if preflight {
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE"));
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type, accept"));
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    response
}
