//! Logging: `tracing` with an env filter (`RUST_LOG`, default `info`), one span per
//! request carrying its request id.

use axum::http::Request;
use tracing::Span;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once (later calls are ignored, which tests rely on).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,webauthn_rs_core=warn,tower_http=info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).try_init();
}

/// The span for one request. It names the route, not the raw path, where the path holds
/// a secret: the phone page's `/q/{token}` carries a live QR claim token, and anyone who
/// reads the logs could otherwise claim it first.
pub fn request_span<B>(request: &Request<B>) -> Span {
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
    let method = crate::metrics::method_label(request.method());
    tracing::info_span!("request", method, path = %loggable_path(request.uri().path()), request_id)
}

/// The path as it may be logged: a secret segment becomes its route parameter's name.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/q/") {
        Some(_) => "/q/{token}".into(),
        None => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn qr_tokens_are_not_logged() {
        assert_eq!(loggable_path("/q/abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"), "/q/{token}");
        assert_eq!(loggable_path("/api/v1/qr/claim"), "/api/v1/qr/claim");
        assert_eq!(loggable_path("/"), "/");
    }
}
