//! The HTML pages and the browser SDK, embedded in the binary so one file runs anywhere.
//! Pages get a strict Content-Security-Policy: scripts and styles only from this origin,
//! images also as data URIs (provider icons), and no framing.

use axum::Router;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const SIGNIN_JS: &str = include_str!("../assets/signin.js");
const CROSS_DEVICE_JS: &str = include_str!("../assets/cross-device.js");
const APPEND_JS: &str = include_str!("../assets/append.js");
const ACCOUNT_JS: &str = include_str!("../assets/account.js");
const RECOVERY_JS: &str = include_str!("../assets/recovery.js");
const DOM_JS: &str = include_str!("../assets/dom.js");
const PASSKEY_LIST_JS: &str = include_str!("../assets/passkey-list.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");
const PHONE_HTML: &str = include_str!("../assets/phone.html");
const PHONE_JS: &str = include_str!("../assets/phone.js");
const QR_HTML: &str = include_str!("../assets/qr.html");
const QR_DESKTOP_JS: &str = include_str!("../assets/qr-desktop.js");
const QR_CSS: &str = include_str!("../assets/qr.css");
const DEVICE_HTML: &str = include_str!("../assets/device.html");
const DEVICE_JS: &str = include_str!("../assets/device.js");

const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                        connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Page and asset routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page(INDEX_HTML) }))
        .route("/q/{token}", get(|| async { page(PHONE_HTML) }))
        .route("/qr-login", get(|| async { page(QR_HTML) }))
        .route("/assets/{name}", get(asset))
        .route("/sdk/{name}", get(sdk_module))
        .route("/healthz", get(|| async { "ok" }))
}

/// The device sign-in's verification page (routed by the provider, which records its
/// opening first).
pub(crate) fn device_page() -> Response {
    page(DEVICE_HTML)
}

fn page(html: &'static str) -> Response {
    (
        [(CONTENT_TYPE, "text/html; charset=utf-8"), (CONTENT_SECURITY_POLICY, PAGE_CSP), (CACHE_CONTROL, "no-cache")],
        html,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => text("text/javascript; charset=utf-8", APP_JS),
        "signin.js" => text("text/javascript; charset=utf-8", SIGNIN_JS),
        "cross-device.js" => text("text/javascript; charset=utf-8", CROSS_DEVICE_JS),
        "append.js" => text("text/javascript; charset=utf-8", APPEND_JS),
        "account.js" => text("text/javascript; charset=utf-8", ACCOUNT_JS),
        "recovery.js" => text("text/javascript; charset=utf-8", RECOVERY_JS),
        "dom.js" => text("text/javascript; charset=utf-8", DOM_JS),
        "passkey-list.js" => text("text/javascript; charset=utf-8", PASSKEY_LIST_JS),
        "style.css" => text("text/css; charset=utf-8", STYLE_CSS),
        "phone.js" => text("text/javascript; charset=utf-8", PHONE_JS),
        "qr-desktop.js" => text("text/javascript; charset=utf-8", QR_DESKTOP_JS),
        "qr.css" => text("text/css; charset=utf-8", QR_CSS),
        "device.js" => text("text/javascript; charset=utf-8", DEVICE_JS),
        _ => (axum::http::StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// The JS SDK's ES modules (`handoff.js` imports the others by relative path).
const SDK_MODULES: &[(&str, &str)] = &[
    ("handoff.js", include_str!("../../../sdk/js/handoff.js")),
    ("events.js", include_str!("../../../sdk/js/events.js")),
    ("encoding.js", include_str!("../../../sdk/js/encoding.js")),
];

async fn sdk_module(Path(name): Path<String>) -> Response {
    match SDK_MODULES.iter().find(|(n, _)| *n == name) {
        Some((_, body)) => text("text/javascript; charset=utf-8", body),
        None => (axum::http::StatusCode::NOT_FOUND, "no such SDK module").into_response(),
    }
}

fn text(content_type: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")], body).into_response()
}
