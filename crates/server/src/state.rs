//! `AppState`, cloned into every handler: the domain services and the few settings the
//! HTTP layer needs.

use std::sync::Arc;

use handoff_core::passkeys::{PasskeyService, SessionService};

use crate::config::Secret;

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct AppState {
    /// Passkey ceremonies and the passkey record.
    pub passkeys: PasskeyService,
    /// Sessions.
    pub sessions: SessionService,
    /// HTTP-only settings.
    pub http: Arc<HttpSettings>,
}

/// Settings the HTTP layer uses directly.
#[derive(Debug)]
pub struct HttpSettings {
    /// Mark cookies `Secure` (an https origin is configured).
    pub secure_cookies: bool,
    /// Bearer token for operator endpoints.
    pub operator_token: Secret,
}
