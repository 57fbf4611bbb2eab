//! Building the application: open the database, load the provider catalog, make sure an
//! operator token exists, assemble the routers and middleware, bind the listener. Tests
//! bind port 0 and read the bound address back; `handoff serve` runs it until a signal.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::{REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::{HeaderValue, Response};
use handoff_core::clock::now_ms;
use handoff_core::observe::{Journal, JournalSettings};
use handoff_core::passkeys::{PasskeyConfig, PasskeyService, SessionService};
use handoff_core::provider::ProviderCatalog;
use handoff_core::qr::QrService;
use handoff_store::Database;
use tokio::net::TcpListener;
use tower_http::LatencyUnit;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::config::{Secret, Settings, redact_url};
use crate::geoip::MaxMindLocator;
use crate::notify::QrNotifier;
use crate::state::{AppState, HttpSettings, Services};
use crate::telemetry;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] handoff_store::StoreError),
    /// The AAGUID list could not be loaded.
    #[error(transparent)]
    Catalog(#[from] handoff_core::provider::CatalogError),
    /// Filesystem trouble (data directory, operator token).
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A built application, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    db: Database,
    state: AppState,
    local_addr: SocketAddr,
    retention: Duration,
    mailer: Option<Arc<crate::mail::Mailer>>,
}

impl Application {
    /// Opens everything the settings name and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartError::Io { context: format!("cannot listen on {}", settings.listen), source })?;
        Self::build_on(settings, listener).await
    }

    /// Like [`Application::build`] on a listener the caller bound (tests bind port 0 first
    /// so that the configured origin can name the real port).
    pub async fn build_on(settings: Settings, listener: TcpListener) -> Result<Self, StartError> {
        let db = open_database(&settings).await?;
        let catalog = match &settings.aaguid_list {
            Some(path) => {
                let c = ProviderCatalog::with_community_list(path)?;
                tracing::info!(path = %path.display(), providers = c.len(), "loaded AAGUID list");
                c
            }
            None => ProviderCatalog::built_in(),
        };
        let operator_token = operator_token(&settings)?;
        let storage = db.storage();
        let passkey_config = PasskeyConfig {
            rp_id: settings.rp_id.clone(),
            rp_name: settings.rp_name.clone(),
            origins: settings.origins.clone(),
            ceremony_ttl: settings.ceremony_ttl,
            rules: settings.rules.clone(),
            append: settings.append.clone(),
            fallbacks: handoff_core::recovery::fallback_methods(settings.mail.is_some()),
        };
        let decoy_key = decoy_key(&storage).await?;
        let webhooks = webhook_service(&settings, &storage).await?;
        let reporter = webhooks.reporter().clone();
        let writers = match db.backend() {
            handoff_store::Backend::Sqlite => 1,
            handoff_store::Backend::Postgres => 4,
        };
        let journal =
            Journal::start(storage.journeys.clone(), JournalSettings { writers, ..JournalSettings::default() });
        let passkeys = PasskeyService::new(
            passkey_config,
            storage.clone(),
            Arc::new(catalog),
            decoy_key.as_bytes(),
            journal.clone(),
        )
        .map_err(StartError::Config)?
        .with_clock(settings.clock.clone())
        .with_reporter(reporter.clone());
        match passkeys.refresh_decoys().await {
            Ok(accounts) => tracing::debug!(accounts, "sampled account shapes for decoys"),
            Err(e) => tracing::warn!(error = %e, "could not sample account shapes for decoys; using the built-in one"),
        }
        let sessions = SessionService::new(
            storage.clone(),
            settings.session_ttl,
            settings.qr.fresh_verification,
            settings.session_idle,
        )
        .with_clock(settings.clock.clone())
        .with_reporter(reporter.clone());
        let mut qr = QrService::new(storage.clone(), settings.qr.clone(), journal.clone())
            .with_clock(settings.clock.clone())
            .with_reporter(reporter);
        if let Some(path) = &settings.geoip_database {
            let locator = MaxMindLocator::open(path).map_err(StartError::Config)?;
            tracing::info!(
                path = %path.display(),
                database = locator.database_type(),
                built = locator.build_epoch(),
                "loaded GeoIP database"
            );
            qr = qr.with_locator(Arc::new(locator));
        }
        let notifier = QrNotifier::start(db.clone())
            .await
            .map_err(|e| StartError::Config(format!("cannot LISTEN for QR notifications: {e}")))?;
        let oidc = provider(&settings, &storage).await?.with_journal(journal.clone());
        let recovery = recovery_service(&settings, &storage).await?.with_journal(journal.clone());
        let mailer = match &settings.mail {
            Some(mail) => Some(Arc::new(crate::mail::Mailer::new(mail).map_err(StartError::Config)?)),
            None => None,
        };
        let origins = settings.origins.iter().map(|o| o.origin().ascii_serialization()).collect();
        let state = AppState::new(Services {
            oidc,
            recovery,
            mail_wake: Arc::default(),
            passkeys,
            sessions,
            qr,
            webhooks,
            notifier,
            rate: match db.backend() {
                handoff_store::Backend::Sqlite => crate::limits::RateLimits::local(),
                handoff_store::Backend::Postgres => crate::limits::RateLimits::shared(storage.rate_counters.clone()),
            }
            .with_clock(settings.clock.clone()),
            limits: settings.limits.clone(),
            streams: crate::connections::StreamSlots::new(settings.stream_caps),
            journal,
            journeys: storage.journeys,
            journey_idle: settings.journey_idle,
            clock: settings.clock.clone(),
            metrics: Arc::default(),
            http: Arc::new(HttpSettings {
                secure_cookies: settings.secure_cookies(),
                operator_token,
                origins,
                trusted_proxies: Arc::new(settings.trusted_proxies.clone()),
                header_read_timeout: settings.header_read_timeout,
                request_timeout: settings.request_timeout,
                https: settings.secure_cookies(),
            }),
        });
        let router = router(state.clone());
        let local_addr =
            listener.local_addr().map_err(|source| StartError::Io { context: "listener address".into(), source })?;
        Ok(Self { listener, router, db, state, local_addr, retention: settings.retention, mailer })
    }

    /// The application's router with its state, for an integrator who serves it inside
    /// their own service (serve it with `into_make_service_with_connect_info::<SocketAddr>()`
    /// so that per-client limits see each client).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The address actually bound (port 0 becomes a real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight requests
    /// finish and closes the database pool.
    pub async fn run_until<F>(self, shutdown: F) -> std::io::Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let janitor = tokio::spawn(purge_expired(self.db.clone(), self.state.clone()));
        let checkpointer = tokio::spawn(checkpoint_sqlite(self.db.clone()));
        let qr_janitor = tokio::spawn(expire_qr(self.state.clone()));
        let journey_janitor = tokio::spawn(finish_idle_journeys(self.state.clone()));
        let roller = tokio::spawn(roll_up_journeys(self.db.clone()));
        let retention = tokio::spawn(purge_old(self.db.clone(), self.retention));
        let mail_worker = self.mailer.clone().map(|mailer| {
            tokio::spawn(crate::mail::run(self.state.recovery.clone(), mailer, self.state.mail_wake.clone()))
        });
        let webhook_worker = tokio::spawn(crate::webhooks::deliver(self.state.webhooks.clone()));
        let webhook_interest = tokio::spawn(crate::webhooks::refresh_interest(self.state.webhooks.clone()));
        let result =
            crate::serve::serve(self.listener, self.router, self.state.http.header_read_timeout, shutdown).await;
        janitor.abort();
        checkpointer.abort();
        qr_janitor.abort();
        journey_janitor.abort();
        roller.abort();
        retention.abort();
        if let Some(worker) = mail_worker {
            worker.abort();
        }
        webhook_worker.abort();
        webhook_interest.abort();
        self.db.close().await;
        result
    }
}

/// The full router with middleware. Integrators embedding Handoff in their own axum
/// service can call this with a state they built.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let proxies = state.http.trusted_proxies.clone();
    // Browsers honour HSTS only over https; an http origin (local development) sends none.
    let hsts = state.http.https.then(|| HeaderValue::from_static("max-age=31536000"));
    Router::new()
        .merge(
            crate::api::router()
                .layer(axum::middleware::from_fn_with_state(state.clone(), crate::api::cors::allow_client_origins)),
        )
        .merge(crate::pages::router())
        .merge(crate::dashboard::router())
        .merge(crate::oidc::router())
        .merge(crate::recovery_link::router())
        .route("/metrics", axum::routing::get(crate::metrics::serve_metrics))
        // After routing, so the timeout knows the streaming routes and the latency is
        // labelled with the route pattern.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::connections::request_timeout))
        .route_layer(axum::middleware::from_fn_with_state(metrics, crate::metrics::track_http))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(proxies, crate::client_addr::resolve))
        .layer(SetResponseHeaderLayer::if_not_present(STRICT_TRANSPORT_SECURITY, move |_: &Response<Body>| {
            hsts.clone()
        }))
        .layer(SetResponseHeaderLayer::overriding(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        // A page may ask for more (the dashboard: same-origin, so its form posts name their origin).
        .layer(SetResponseHeaderLayer::if_not_present(REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Micros)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn open_database(settings: &Settings) -> Result<Database, StartError> {
    if settings.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartError::Io {
            context: format!("cannot create data directory {}", settings.data_dir.display()),
            source,
        })?;
    }
    let db = Database::connect(&settings.database_url).await?;
    tracing::info!(database = %redact_url(&settings.database_url), backend = ?db.backend(), "database ready (migrations applied)");
    Ok(db)
}

/// The shortest operator token a token file may hold (a generated one has 43).
const MIN_TOKEN_FILE_CHARS: usize = 32;

/// The configured operator token, or the one stored in the data directory, or a new one
/// written there (mode 0600) with a log line saying where.
fn operator_token(settings: &Settings) -> Result<Secret, StartError> {
    if let Some(token) = &settings.operator_token {
        return Ok(token.clone());
    }
    let path = settings.data_dir.join("operator-token");
    let io = |context: String| move |source| StartError::Io { context, source };
    if path.exists() {
        let token = std::fs::read_to_string(&path).map_err(io(format!("cannot read {}", path.display())))?;
        // An empty or short file (a write cut short by a full disk or a crash, or a hand
        // edit) would let anyone sign in to the dashboard with that token.
        if token.trim().chars().count() < MIN_TOKEN_FILE_CHARS {
            return Err(StartError::Config(format!(
                "the operator token file {} is empty or shorter than {MIN_TOKEN_FILE_CHARS} characters; \
                 delete it to have a new token generated, or write a longer one into it",
                path.display()
            )));
        }
        return Ok(Secret::new(token.trim()));
    }
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(io(format!("cannot create data directory {}", settings.data_dir.display())))?;
    let token = handoff_core::domain::SecretToken::generate().map_err(|e| StartError::Config(e.to_string()))?;
    write_private(&path, token.expose()).map_err(io(format!("cannot write {}", path.display())))?;
    tracing::info!(path = %path.display(), "generated an operator token; use it as `Authorization: Bearer <token>`");
    Ok(Secret::new(token.expose()))
}

/// The server-wide key behind decoy passkeys, shared through the database so that every
/// instance answers an unknown identifier the same way.
async fn decoy_key(storage: &handoff_core::storage::Storage) -> Result<String, StartError> {
    let candidate = handoff_core::domain::SecretToken::generate().map_err(|e| StartError::Config(e.to_string()))?;
    storage
        .secrets
        .get_or_create("decoy-credential-key", candidate.expose())
        .await
        .map_err(|e| StartError::Config(format!("cannot read the decoy key from the database: {e}")))
}

/// Recovery (PRODUCT §7): email codes are keyed by a server-wide secret shared through the
/// database, so every instance checks every instance's codes.
async fn recovery_service(
    settings: &Settings,
    storage: &handoff_core::storage::Storage,
) -> Result<handoff_core::recovery::RecoveryService, StartError> {
    use handoff_core::recovery::{RecoveryService, RecoverySettings};
    let candidate = handoff_core::domain::SecretToken::generate().map_err(|e| StartError::Config(e.to_string()))?;
    let key = storage
        .secrets
        .get_or_create("email-code-key", candidate.expose())
        .await
        .map_err(|e| StartError::Config(format!("cannot read the email code key from the database: {e}")))?;
    let origin = settings.origins.first().map(|o| o.origin().ascii_serialization()).unwrap_or_default();
    let mut recovery_settings = RecoverySettings::new(settings.rp_name.clone(), origin, settings.mail.is_some());
    recovery_settings.verify_email = settings.email_verification;
    Ok(RecoveryService::new(storage.clone(), recovery_settings, key.into_bytes(), settings.clock.clone()))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

/// The webhook registry with the configuration file's endpoints registered and the
/// subscribed types read, so the first sign-in is already reported.
async fn webhook_service(
    settings: &Settings,
    storage: &handoff_core::storage::Storage,
) -> Result<handoff_core::webhooks::WebhookService, StartError> {
    use handoff_core::webhooks::{Reporter, WebhookService};
    let reporter = Reporter::new(settings.clock.clone());
    let service = WebhookService::new(
        storage.webhooks.clone(),
        reporter,
        settings.webhook_policy.clone(),
        settings.clock.clone(),
    );
    let configured = service
        .sync_configured(settings.webhooks.clone())
        .await
        .map_err(|e| StartError::Config(format!("[[webhooks]] in the configuration file: {e}")))?;
    if configured > 0 {
        tracing::info!(endpoints = configured, "registered the configuration file's webhook endpoints");
    }
    Ok(service)
}

/// The client id of the example application (`examples/node-rp`) that a server on
/// `http://localhost` registers for its demo.
pub const DEMO_CLIENT: &str = "demo-app";

/// The demo's relying party: a public client (PKCE, no secret) on http://localhost:3000.
fn demo_client() -> handoff_core::oidc::ConfiguredClient {
    handoff_core::oidc::ConfiguredClient {
        id: DEMO_CLIENT.into(),
        secret: None,
        name: "Example app (demo)".into(),
        redirect_uris: vec!["http://localhost:3000/callback".into()],
        post_logout_redirect_uris: vec!["http://localhost:3000/".into()],
        allowed_origins: vec!["http://localhost:3000".into()],
        public: true,
        first_party: false,
        id_token_alg: None,
        device: false,
    }
}

/// The demo's device client: a public client allowed the device grant, for
/// `handoff device-login --client demo-tv`.
pub const DEMO_DEVICE_CLIENT: &str = "demo-tv";

fn demo_device_client() -> handoff_core::oidc::ConfiguredClient {
    handoff_core::oidc::ConfiguredClient {
        id: DEMO_DEVICE_CLIENT.into(),
        secret: None,
        name: "Living-room TV (demo)".into(),
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        allowed_origins: vec![],
        public: true,
        first_party: false,
        id_token_alg: None,
        device: true,
    }
}

/// The identity provider: signing keys made on the first start, the configuration file's
/// clients registered (and on http://localhost, the demo's example application and TV).
async fn provider(
    settings: &Settings,
    storage: &handoff_core::storage::Storage,
) -> Result<handoff_core::oidc::OidcService, StartError> {
    use handoff_core::oidc::{KeyRing, OidcService, OidcSettings};
    let mut oidc_settings = OidcSettings::new(settings.issuer.clone());
    oidc_settings.device_ttl = settings.device_ttl;
    let keys = KeyRing::new(storage.signing_keys.clone(), settings.clock.clone(), oidc_settings.longest_signed());
    keys.ensure().await.map_err(|e| StartError::Config(format!("cannot load or create the signing keys: {e}")))?;
    let oidc = OidcService::new(oidc_settings, storage, keys, settings.clock.clone());
    let mut clients = settings.clients.clone();
    let local_demo = settings.origins.iter().all(|o| o.scheme() == "http" && o.host_str() == Some("localhost"));
    if local_demo && !clients.iter().any(|c| c.id == DEMO_CLIENT) {
        clients.push(demo_client());
    }
    if local_demo && !clients.iter().any(|c| c.id == DEMO_DEVICE_CLIENT) {
        clients.push(demo_device_client());
    }
    let configured = oidc
        .clients()
        .sync_configured(clients)
        .await
        .map_err(|e| StartError::Config(format!("[[clients]] in the configuration file: {e}")))?;
    if configured > 0 {
        tracing::info!(clients = configured, "registered the configuration file's clients");
    }
    Ok(oidc)
}

/// Deletes expired ceremonies and sessions and forgets past rate-limit windows, once a
/// minute; samples account shapes for decoys again every ten minutes.
async fn purge_expired(db: Database, state: AppState) {
    use handoff_core::storage::{Ceremonies, Sessions};
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut minutes = 0u64;
    loop {
        tick.tick().await;
        minutes += 1;
        if minutes.is_multiple_of(10)
            && let Err(e) = state.passkeys.refresh_decoys().await
        {
            tracing::warn!(error = %e, "could not sample account shapes for decoys");
        }
        let pruned = state.rate.prune().await;
        if pruned > 0 {
            tracing::debug!(keys = pruned, "forgot past rate-limit windows");
        }
        let now = state.clock.now_ms();
        let idle_since = state.sessions.idle_since(now);
        if let Err(e) = state.oidc.purge().await {
            tracing::warn!(error = %e, "purging expired authorization codes and tokens failed");
        }
        if let Err(e) = state.recovery.purge().await {
            tracing::warn!(error = %e, "purging expired email codes, recovery links and sent mail failed");
        }
        match (Ceremonies::purge_expired(&db, now).await, Sessions::purge_expired(&db, now, idle_since).await) {
            (Ok(c), Ok(s)) if c + s > 0 => tracing::debug!(ceremonies = c, sessions = s, "purged expired rows"),
            (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "purging expired rows failed"),
            _ => {}
        }
    }
}

/// Rows per table and batch of the retention job: small, so one batch holds the write
/// lock for milliseconds and sign-ins never wait long behind it.
const RETENTION_BATCH: u32 = 500;

/// Deletes what is older than the retention period (PRODUCT §8), at start and every ten
/// minutes, in batches until none is left, yielding between batches.
async fn purge_old(db: Database, retention: Duration) {
    use handoff_core::storage::{Purged, Retention};
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let keep = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        tick.tick().await;
        let cutoff = now_ms().saturating_sub(keep);
        let mut total = Purged::default();
        loop {
            match db.purge_before(cutoff, RETENTION_BATCH).await {
                Ok(batch) if batch.total() == 0 => break,
                Ok(batch) => {
                    total.journeys += batch.journeys;
                    total.events += batch.events;
                    total.qr_attempts += batch.qr_attempts;
                    total.security_events += batch.security_events;
                    total.attempts += batch.attempts;
                    total.append_offers += batch.append_offers;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the retention job failed; it tries again in ten minutes");
                    break;
                }
            }
        }
        if total.total() > 0 {
            tracing::info!(
                journeys = total.journeys,
                events = total.events,
                qr_attempts = total.qr_attempts,
                security_events = total.security_events,
                attempts = total.attempts,
                append_offers = total.append_offers,
                days = retention.as_secs() / 86_400,
                "deleted data older than the retention period"
            );
        }
    }
}

/// Checkpoints SQLite's write-ahead log every second, beside the writers (see
/// `Database::checkpoint`); nothing to do on PostgreSQL.
async fn checkpoint_sqlite(db: Database) {
    if db.backend() != handoff_store::Backend::Sqlite {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match db.checkpoint().await {
            Ok(pages) if pages > 100_000 => tracing::warn!(pages, "the SQLite WAL keeps growing; checkpoints lag"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "checkpointing SQLite failed"),
        }
    }
}

/// Expires QR attempts whose time ran out and wakes their desktops, and device sign-ins
/// whose time ran out, every second.
async fn expire_qr(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match state.qr.expire_due().await {
            Ok(expired) => {
                if !expired.is_empty() {
                    state.metrics.qr("expired", expired.len() as u64);
                }
                for a in expired {
                    state.notifier.publish(a.id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "expiring QR attempts failed"),
        }
        if let Err(e) = state.oidc.expire_devices().await {
            tracing::warn!(error = %e, "expiring device sign-ins failed");
        }
    }
}

/// Recomputes the hourly rollups of journeys (funnels and insights read them) for hours
/// that changed, once each hour has ended, every few seconds; a backlog (after an upgrade)
/// is worked through a day of hours at a time.
async fn roll_up_journeys(db: Database) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        // An hour is rolled up a minute after it ends; until then it is read row by row.
        match db.refresh_rollups(now_ms().saturating_sub(60_000), 24).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(hours = n, "rolled up journeys"),
            Err(e) => tracing::warn!(error = %e, "rolling up journeys failed"),
        }
    }
}

/// Finishes journeys idle for the configured time (as stalled), checking a few times per
/// idle period (at most every 30 s, at least every second).
async fn finish_idle_journeys(state: AppState) {
    let idle = state.journey_idle;
    let mut tick = tokio::time::interval((idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(30)));
    let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
    loop {
        tick.tick().await;
        loop {
            let now = state.clock.now_ms();
            let reporter = state.webhooks.reporter().clone();
            let builder = reporter.clone();
            let report = move |j: &handoff_core::observe::JourneyColumns| builder.signin_failed(j);
            match state.journeys.finish_idle_reported(now.saturating_sub(idle_ms), now, 1_000, &report).await {
                Ok(0) => break,
                Ok(n) => {
                    if reporter.listens(handoff_core::webhooks::EventType::SigninFailed) {
                        reporter.wake();
                    }
                    tracing::info!(journeys = n, "finished idle journeys");
                    if n < 1_000 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "finishing idle journeys failed");
                    break;
                }
            }
        }
    }
}
