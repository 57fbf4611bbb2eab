//! `AppState`, cloned into every handler: the domain services and the few settings the
//! HTTP layer needs, behind one `Arc`. Every extractor that takes the state clones it, and a
//! field-by-field clone was some thirty reference counts (each service holds the storage
//! handles) bumped and dropped per request, across both cores' caches.

use std::sync::Arc;
use std::time::Duration;

use handoff_core::observe::Journal;
use handoff_core::storage::Journeys;

use handoff_core::passkeys::{PasskeyService, SessionService};
use handoff_core::qr::QrService;

use crate::config::Secret;
use crate::notify::QrNotifier;

/// Shared state of the HTTP layer; cheap to clone (one reference count).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Shares `services` with every handler.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What the handlers reach through [`AppState`].
pub struct Services {
    /// Passkey ceremonies and the passkey record.
    pub passkeys: PasskeyService,
    /// Sessions.
    pub sessions: SessionService,
    /// QR approval.
    pub qr: QrService,
    /// Webhook endpoints and deliveries.
    pub webhooks: handoff_core::webhooks::WebhookService,
    /// The identity provider (OIDC, sign-in proofs).
    pub oidc: handoff_core::oidc::OidcService,
    /// Email codes, recovery codes and recovery links.
    pub recovery: handoff_core::recovery::RecoveryService,
    /// Wakes the mail worker when a request queued mail.
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// Wakes desktops waiting on QR attempts.
    pub notifier: QrNotifier,
    /// The rate-limit counters.
    pub rate: crate::limits::RateLimits,
    /// The configured limits.
    pub limits: crate::limits::Limits,
    /// Open event streams and long-polls, capped.
    pub streams: Arc<crate::connections::StreamSlots>,
    /// The writer of events and journeys.
    pub journal: Journal,
    /// Journeys, for the operator's reads.
    pub journeys: Arc<dyn Journeys>,
    /// Idle time after which an open journey is finished.
    pub journey_idle: Duration,
    /// The time for expiry and windows (ceremonies, sessions, QR attempts, journeys); the
    /// system clock except in tests.
    pub clock: handoff_core::clock::Clock,
    /// Prometheus counters and histograms of this instance.
    pub metrics: Arc<crate::metrics::Metrics>,
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
    /// Configured origins (`scheme://host[:port]`), for QR URLs and CSRF checks.
    pub origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<crate::client_addr::TrustedProxies>,
    /// Time an HTTP/1 client has to send a request's headers.
    pub header_read_timeout: std::time::Duration,
    /// Time a request (other than a stream or long-poll) has to be answered.
    pub request_timeout: std::time::Duration,
    /// The origin is https: send `Strict-Transport-Security` and name the session cookie
    /// with the `__Host-` prefix.
    pub https: bool,
}
