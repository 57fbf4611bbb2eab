//! Configuration: built-in defaults, then a TOML file, then `HANDOFF_*` environment
//! variables, then command-line flags — later wins. The raw values become a validated
//! [`Settings`] once, at start, so a bad value stops the server with a sentence naming it
//! instead of failing on the first request. Secrets are wrapped so they never print.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use handoff_core::intelligence::{DecisionRules, Rollout};
use handoff_core::passkeys::AppendPolicy;
use handoff_core::qr::{FarApartPolicy, QrConfig};
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use crate::client_addr::TrustedProxies;

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// Whether `candidate` is this secret, compared in time that does not depend on where
    /// they differ (both are hashed first, so lengths do not leak either).
    pub fn matches(&self, candidate: &str) -> bool {
        use sha2::{Digest, Sha256};
        let (a, b) = (Sha256::digest(self.0.as_bytes()), Sha256::digest(candidate.as_bytes()));
        a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The secret itself, for comparisons and for writing it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Configuration as read from files, environment and flags (every field optional).
/// Field names are the TOML keys; `HANDOFF_<KEY>` in upper case sets them from the
/// environment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Directory for the SQLite file and the generated operator token (default `./data`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://…` (default: `handoff.db` in the data directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// WebAuthn relying-party ID (default `localhost`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rp_id: Option<String>,
    /// Relying-party name shown by authenticators (default `Handoff`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rp_name: Option<String>,
    /// Allowed origins: a list, or one string with commas (default `http://localhost:8080`).
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Option::is_none")]
    pub origin: Option<Vec<String>>,
    /// Bearer token for operator endpoints (default: generated at first start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_token: Option<String>,
    /// Path to a community AAGUID list (passkey-authenticator-aaguids JSON format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aaguid_list: Option<PathBuf>,
    /// Session lifetime in seconds (default 7 days).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_ttl_seconds: Option<u64>,
    /// A session not used for this long ends, in seconds (default 259200: three days).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_idle: Option<u64>,
    /// How long a WebAuthn ceremony may take, in seconds (default 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceremony_ttl_seconds: Option<u64>,
    /// Offer the browser's cross-device (hybrid QR + Bluetooth) flow (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_device_enabled: Option<bool>,
    /// Only offer passkeys from these providers (default: all).
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Option::is_none")]
    pub allowed_providers: Option<Vec<String>>,
    /// Never offer passkeys from these providers.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Option::is_none")]
    pub blocked_providers: Option<Vec<String>>,
    /// Failed passkey attempts in one browser before falling back (default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures_before_fallback: Option<u32>,
    /// How long the fallback lasts after the last failure, in seconds (default 900).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_cooldown_seconds: Option<u64>,
    /// Share of users who get the cross-device flow, 0–100 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_device_rollout_percent: Option<u8>,
    /// Operating systems that get the cross-device flow (default: all).
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Option::is_none")]
    pub cross_device_rollout_os: Option<Vec<String>>,
    /// Browsers that get the cross-device flow (default: all).
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Option::is_none")]
    pub cross_device_rollout_browsers: Option<Vec<String>>,
    /// Passkey-append offers per user per day (default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_max_offers_per_day: Option<u32>,
    /// Stop offering passkey append after this many skips (default 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_max_skips_total: Option<u32>,
    /// No passkey-append offer for this long after a skip, in seconds (default 86400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_skip_cooldown_seconds: Option<u64>,
    /// Offer Handoff QR approval (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_enabled: Option<bool>,
    /// How long a QR approval attempt lives, in seconds, at most 300 (default 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_ttl_seconds: Option<u64>,
    /// How long one displayed QR code works before it rotates, in seconds (default 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_code_ttl_seconds: Option<u64>,
    /// QR attempts one IP may create per minute (default 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_create_per_minute: Option<u32>,
    /// The SMTP server for email codes (PRODUCT §7): `smtp://user:pass@host:587` (STARTTLS
    /// required) or `smtps://…:465` (TLS from the start); unset: no email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// A file holding the SMTP password (instead of one in the URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_password_file: Option<PathBuf>,
    /// `smtp://` to a loopback server without STARTTLS (development and tests; default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_allow_plaintext: Option<bool>,
    /// Mail new accounts whose identifier is an email address a link to verify it
    /// (default false; needs smtp_url).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verification: Option<bool>,
    /// The sender of mails, e.g. `Example <login@example.com>`; required with smtp_url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_from: Option<String>,
    /// How long a device sign-in's codes (RFC 8628) live, in seconds, 30 to 600 (default 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_code_ttl_seconds: Option<u64>,
    /// QR approvals one account may make per minute (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_approve_per_minute: Option<u32>,
    /// How recent a passkey ceremony on this device must be for a sensitive action
    /// (approving a QR request, adding or deleting a passkey, ending other sessions), in
    /// seconds (default 120).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_reauth_after_seconds: Option<u64>,
    /// A desktop signed in by QR approval may add one passkey on itself without a passkey
    /// check, when the approver also ticks "also let this computer save a passkey" on the
    /// phone (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_session_may_add_passkey: Option<bool>,
    /// When the phone and the computer are far apart (by GeoIP place or country): `warn`
    /// (flag it on the phone, the default) or `refuse` (the approval is refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_far_apart: Option<String>,
    /// Refuse approvals from a phone signed in to another account than the identifier
    /// typed on the computer (default true; false only warns on the phone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_refuse_wrong_account: Option<bool>,
    /// A journey with no event for this long is finished as stalled, in seconds (default 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journey_idle_seconds: Option<u64>,
    /// Event batches one IP may send per minute (default 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_minute: Option<u32>,
    /// Events, journeys, QR attempts, security events and passkey attempts older than this
    /// many days are deleted (rollups keep the counts), in days (default 90).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Sign-in starts (`/login/start`) one client may make per minute (default 120).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_start_per_minute: Option<u32>,
    /// Sign-in starts for one identifier per minute, from anywhere (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_start_per_identifier: Option<u32>,
    /// Email codes one IP may ask for per minute (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_code_per_minute: Option<u32>,
    /// Email codes asked for one identifier per minute (default 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_code_per_identifier: Option<u32>,
    /// Sign-up starts (`/passkeys/registration/start`) one client may make per minute (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_start_per_minute: Option<u32>,
    /// Sign-up starts for one identifier per minute, from anywhere (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_start_per_identifier: Option<u32>,
    /// A MaxMind DB file (GeoLite2/GeoIP2 City or Country) to show the phone where a QR
    /// request comes from and to judge far-apart devices by distance (default: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geoip_database: Option<PathBuf>,
    /// How long an HTTP/1 client may take to send a request's headers before its
    /// connection is closed, in seconds (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout_seconds: Option<u64>,
    /// How long any request except an event stream or a long-poll may take before it is
    /// answered 503 `timeout`, in seconds (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_seconds: Option<u64>,
    /// Event streams and long-polls one client (IP; IPv6 by /64) may hold open (default 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streams_per_ip: Option<usize>,
    /// Event streams and long-polls the whole server holds open at most (default 10000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streams_total: Option<usize>,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` names the
    /// client (default: none; every connection's own address is the client).
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<Vec<String>>,
    /// The OpenID Connect issuer (`iss`), an https URL or an http one to loopback (default:
    /// the first origin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Relying parties declared in the configuration file (`[[clients]]`), registered or
    /// updated at every start (PRODUCT §6.1).
    #[serde(default, skip_serializing)]
    pub clients: Vec<handoff_core::oidc::ConfiguredClient>,
    /// Accept webhook targets over plain `http://` to a loopback address (development and
    /// tests; default false: `https://` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks_allow_insecure: Option<bool>,
    /// The delay before a failed webhook delivery's first retry, in milliseconds; it
    /// doubles per attempt, with jitter, up to 6 hours (default 5000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_retry_base_ms: Option<u64>,
    /// How long a failing delivery is retried before it is dead, in seconds (default
    /// 86400, at least 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_retry_window_seconds: Option<u64>,
    /// How long one delivery attempt may take, in seconds (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_timeout_seconds: Option<u64>,
    /// Failed attempts in a row after which an endpoint is shown as failing (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_failing_after: Option<u32>,
    /// Webhook endpoints declared in the configuration file (`[[webhooks]]`: `url`,
    /// `events`, `secret` or `secret_file`), registered or updated at every start.
    #[serde(default, skip_serializing)]
    pub webhooks: Vec<handoff_core::webhooks::ConfiguredWebhook>,
}

/// Outgoing mail (PRODUCT §7).
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `smtp` (STARTTLS) or `smtps` (TLS from the start).
    pub implicit_tls: bool,
    /// STARTTLS is skipped (only to a loopback host, when allowed).
    pub plaintext: bool,
    /// Host.
    pub host: String,
    /// Port (587 or 465 by default).
    pub port: u16,
    /// User name and password, when the server wants them.
    pub credentials: Option<(String, Secret)>,
    /// The sender.
    pub from: String,
}

impl MailSettings {
    fn parse(
        raw: &str,
        password_file: Option<&std::path::Path>,
        plaintext: bool,
        from: Option<String>,
    ) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError(format!("smtp_url: {why} (smtp://user:pass@host:587 or smtps://…)"));
        let url = Url::parse(raw).map_err(|_| bad("not a URL"))?;
        let implicit_tls = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => return Err(bad(&format!("the scheme is {other:?}"))),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?.to_owned();
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if plaintext && (implicit_tls || !loopback) {
            return Err(ConfigError(
                "smtp_allow_plaintext is only for smtp:// to a loopback host (development and tests)".into(),
            ));
        }
        let decode =
            |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
        let password = match password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("smtp_password_file {}: {e}", path.display())))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            None => url.password().and_then(decode),
        };
        let user = decode(url.username()).filter(|u| !u.is_empty());
        let credentials = match (user, password) {
            (Some(user), Some(password)) => Some((user, Secret::new(password))),
            (None, None) => None,
            _ => return Err(bad("give both a user name and a password, or neither")),
        };
        let from = from.filter(|f| f.contains('@')).ok_or_else(|| {
            ConfigError("mail_from is required with smtp_url, e.g. \"Example <login@example.com>\"".into())
        })?;
        Ok(Self {
            implicit_tls,
            plaintext,
            port: url.port().unwrap_or(if implicit_tls { 465 } else { 587 }),
            host,
            credentials,
            from,
        })
    }
}

/// Every configuration key (TOML key; `HANDOFF_<KEY>` in the environment).
pub const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "rp_id",
    "rp_name",
    "origin",
    "operator_token",
    "aaguid_list",
    "session_ttl_seconds",
    "session_idle",
    "ceremony_ttl_seconds",
    "cross_device_enabled",
    "allowed_providers",
    "blocked_providers",
    "failures_before_fallback",
    "failure_cooldown_seconds",
    "cross_device_rollout_percent",
    "cross_device_rollout_os",
    "cross_device_rollout_browsers",
    "append_max_offers_per_day",
    "append_max_skips_total",
    "append_skip_cooldown_seconds",
    "qr_enabled",
    "qr_ttl_seconds",
    "device_code_ttl_seconds",
    "smtp_url",
    "smtp_password_file",
    "smtp_allow_plaintext",
    "mail_from",
    "email_verification",
    "qr_code_ttl_seconds",
    "qr_create_per_minute",
    "qr_approve_per_minute",
    "qr_reauth_after_seconds",
    "qr_session_may_add_passkey",
    "qr_far_apart",
    "qr_refuse_wrong_account",
    "journey_idle_seconds",
    "events_per_minute",
    "retention_days",
    "login_start_per_minute",
    "login_start_per_identifier",
    "email_code_per_minute",
    "email_code_per_identifier",
    "registration_start_per_minute",
    "registration_start_per_identifier",
    "geoip_database",
    "header_read_timeout_seconds",
    "request_timeout_seconds",
    "streams_per_ip",
    "streams_total",
    "trusted_proxies",
    "issuer",
    "webhooks_allow_insecure",
    "webhook_retry_base_ms",
    "webhook_retry_window_seconds",
    "webhook_timeout_seconds",
    "webhook_failing_after",
];

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect(),
        OneOrMany::Many(v) => v,
    }))
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the time comes from (the system clock; tests move an adjustable one). Not a
    /// setting an operator can change.
    pub clock: handoff_core::clock::Clock,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The OpenID Connect issuer, without a trailing slash.
    pub issuer: String,
    /// `[[clients]]` from the configuration file.
    pub clients: Vec<handoff_core::oidc::ConfiguredClient>,
    /// `[[webhooks]]` from the configuration file, secrets read from their files.
    pub webhooks: Vec<handoff_core::webhooks::ConfiguredWebhook>,
    /// How webhook deliveries are sent and retried.
    pub webhook_policy: handoff_core::webhooks::DeliveryPolicy,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The database URL.
    pub database_url: String,
    /// RP ID.
    pub rp_id: String,
    /// RP name.
    pub rp_name: String,
    /// Allowed origins.
    pub origins: Vec<Url>,
    /// Operator token, if configured (otherwise it is generated into the data directory).
    pub operator_token: Option<Secret>,
    /// Community AAGUID list.
    pub aaguid_list: Option<PathBuf>,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// Ceremony lifetime.
    pub ceremony_ttl: Duration,
    /// Decision rules.
    pub rules: DecisionRules,
    /// Passkey-append caps.
    pub append: AppendPolicy,
    /// QR approval.
    pub qr: QrConfig,
    /// QR attempts per IP per minute.
    pub qr_create_per_minute: u32,
    /// How long a device sign-in's codes live.
    pub device_ttl: Duration,
    /// Outgoing mail, when configured.
    pub mail: Option<MailSettings>,
    /// Verify email addresses at sign-up.
    pub email_verification: bool,
    /// QR approvals per account per minute.
    pub qr_approve_per_minute: u32,
    /// Idle time after which an open journey is finished.
    pub journey_idle: Duration,
    /// Event batches per IP per minute.
    pub events_per_minute: u32,
    /// Every rate limit.
    pub limits: crate::limits::Limits,
    /// How long personal data is kept.
    pub retention: Duration,
    /// GeoIP database file.
    pub geoip_database: Option<PathBuf>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Time an HTTP/1 client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time a request (other than a stream or long-poll) has to be answered.
    pub request_timeout: Duration,
    /// Caps on open event streams and long-polls.
    pub stream_caps: crate::connections::StreamCaps,
}

/// A configuration problem, named.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl RawConfig {
    /// Reads defaults ← TOML file ← `HANDOFF_*` environment ← `overrides` (flags).
    /// `file` is read when given (it must exist) or when `./handoff.toml` exists.
    pub fn load(file: Option<&Path>, overrides: &RawConfig) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!("config file {} does not exist", path.display())));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("handoff.toml").exists() => figment = figment.merge(Toml::file_exact("handoff.toml")),
            None => {}
        }
        // Only known keys: other HANDOFF_* variables (test settings, tools) are not config.
        let env = Env::prefixed("HANDOFF_").only(KEYS);
        figment.merge(env).merge(Serialized::defaults(overrides)).extract().map_err(|e| ConfigError(e.to_string()))
    }

    /// Validates and fills in defaults.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let listen_raw = self.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_raw.parse().map_err(|_| {
            ConfigError(format!("listen address {listen_raw:?} is not HOST:PORT (e.g. 127.0.0.1:8080)"))
        })?;
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let database_url = match self.database_url {
            Some(url)
                if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                url
            }
            Some(url) => {
                return Err(ConfigError(format!(
                    "database_url {:?} must start with sqlite:// or postgres://",
                    redact_url(&url)
                )));
            }
            None => format!("sqlite://{}", data_dir.join("handoff.db").display()),
        };
        let rp_id = self.rp_id.unwrap_or_else(|| "localhost".into());
        let rp_name = self.rp_name.unwrap_or_else(|| "Handoff".into());
        let origins = self
            .origin
            .unwrap_or_else(|| vec!["http://localhost:8080".into()])
            .into_iter()
            .map(|o| parse_origin(&o))
            .collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            return Err(ConfigError("origin: at least one origin is required".into()));
        }
        let issuer = match self.issuer {
            None => origins[0].origin().ascii_serialization(),
            Some(raw) => {
                let url = Url::parse(&raw).map_err(|e| ConfigError(format!("issuer {raw:?} is not a URL: {e}")))?;
                let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
                if !(url.scheme() == "https" || (url.scheme() == "http" && loopback))
                    || url.query().is_some()
                    || url.fragment().is_some()
                {
                    return Err(ConfigError(format!(
                        "issuer {raw:?} must be an https URL without query or fragment (http only to localhost)"
                    )));
                }
                raw.trim_end_matches('/').to_owned()
            }
        };
        let operator_token = match self.operator_token {
            Some(t) if t.trim().len() < 16 => {
                return Err(ConfigError("operator_token must be at least 16 characters".into()));
            }
            Some(t) => Some(Secret::new(t.trim())),
            None => None,
        };
        let session_ttl = Duration::from_secs(self.session_ttl_seconds.unwrap_or(7 * 24 * 3600));
        let ceremony_ttl = Duration::from_secs(self.ceremony_ttl_seconds.unwrap_or(300));
        if ceremony_ttl.is_zero() || ceremony_ttl > Duration::from_secs(600) {
            return Err(ConfigError("ceremony_ttl_seconds must be between 1 and 600".into()));
        }
        if session_ttl.is_zero() {
            return Err(ConfigError("session_ttl_seconds must be above 0".into()));
        }
        let session_idle = Duration::from_secs(self.session_idle.unwrap_or(3 * 24 * 3600));
        if session_idle < Duration::from_secs(60) {
            return Err(ConfigError("session_idle must be at least 60 seconds".into()));
        }
        let rollout_percent = self.cross_device_rollout_percent.unwrap_or(100);
        if rollout_percent > 100 {
            return Err(ConfigError("cross_device_rollout_percent must be between 0 and 100".into()));
        }
        let qr_defaults = QrConfig::default();
        let qr = QrConfig {
            enabled: self.qr_enabled.unwrap_or(true),
            ttl: self.qr_ttl_seconds.map(Duration::from_secs).unwrap_or(qr_defaults.ttl),
            code_ttl: self.qr_code_ttl_seconds.map(Duration::from_secs).unwrap_or(qr_defaults.code_ttl),
            fresh_verification: self
                .qr_reauth_after_seconds
                .map(Duration::from_secs)
                .unwrap_or(qr_defaults.fresh_verification),
            session_may_add_passkey: self.qr_session_may_add_passkey.unwrap_or(false),
            far_apart: match self.qr_far_apart.as_deref() {
                None => qr_defaults.far_apart,
                Some(raw) => FarApartPolicy::parse(raw)
                    .ok_or_else(|| ConfigError(format!("qr_far_apart must be warn or refuse, not {raw:?}")))?,
            },
            refuse_wrong_account: self.qr_refuse_wrong_account.unwrap_or(qr_defaults.refuse_wrong_account),
        };
        if qr.ttl.is_zero() || qr.ttl > Duration::from_secs(300) {
            return Err(ConfigError(
                "qr_ttl_seconds must be between 1 and 300 (an attempt lives at most 5 minutes)".into(),
            ));
        }
        let mail = match self.smtp_url.as_deref().filter(|u| !u.is_empty()) {
            Some(raw) => Some(MailSettings::parse(
                raw,
                self.smtp_password_file.as_deref(),
                self.smtp_allow_plaintext.unwrap_or(false),
                self.mail_from.clone(),
            )?),
            None => None,
        };
        let email_verification = self.email_verification.unwrap_or(false);
        if email_verification && mail.is_none() {
            return Err(ConfigError("email_verification needs smtp_url and mail_from to send the links".into()));
        }
        let device_ttl = Duration::from_secs(self.device_code_ttl_seconds.unwrap_or(600));
        if !(30..=600).contains(&device_ttl.as_secs()) {
            return Err(ConfigError(
                "device_code_ttl_seconds must be between 30 and 600 (RFC 8628 codes live minutes)".into(),
            ));
        }
        if qr.code_ttl.is_zero() {
            return Err(ConfigError("qr_code_ttl_seconds must be above 0".into()));
        }
        let defaults = DecisionRules::default();
        let rules = DecisionRules {
            cross_device_enabled: self.cross_device_enabled.unwrap_or(defaults.cross_device_enabled),
            qr_approval_enabled: qr.enabled,
            allowed_providers: self.allowed_providers.unwrap_or_default(),
            blocked_providers: self.blocked_providers.unwrap_or_default(),
            failures_before_fallback: self.failures_before_fallback.unwrap_or(defaults.failures_before_fallback),
            failure_cooldown: self
                .failure_cooldown_seconds
                .map(Duration::from_secs)
                .unwrap_or(defaults.failure_cooldown),
            cross_device_rollout: Rollout {
                percent: rollout_percent,
                os: self.cross_device_rollout_os.unwrap_or_default(),
                browsers: self.cross_device_rollout_browsers.unwrap_or_default(),
            },
        };
        let append_defaults = AppendPolicy::default();
        let append = AppendPolicy {
            max_offers_per_day: self.append_max_offers_per_day.unwrap_or(append_defaults.max_offers_per_day),
            max_skips_total: self.append_max_skips_total.unwrap_or(append_defaults.max_skips_total),
            skip_cooldown: self
                .append_skip_cooldown_seconds
                .map(Duration::from_secs)
                .unwrap_or(append_defaults.skip_cooldown),
        };
        let journey_idle = Duration::from_secs(self.journey_idle_seconds.unwrap_or(600));
        if journey_idle.is_zero() || journey_idle < qr.ttl {
            return Err(ConfigError(format!(
                "journey_idle_seconds must be at least qr_ttl_seconds ({} s): a journey must not be finished while \
                 its QR code can still be scanned",
                qr.ttl.as_secs()
            )));
        }
        let events_per_minute = self.events_per_minute.unwrap_or(600);
        if events_per_minute == 0 {
            return Err(ConfigError("events_per_minute must be above 0".into()));
        }
        let trusted_proxies = TrustedProxies::parse(&self.trusted_proxies.unwrap_or_default()).map_err(ConfigError)?;
        let header_read_timeout = Duration::from_secs(self.header_read_timeout_seconds.unwrap_or(10));
        if header_read_timeout.is_zero() || header_read_timeout > Duration::from_secs(300) {
            return Err(ConfigError("header_read_timeout_seconds must be between 1 and 300".into()));
        }
        let request_timeout = Duration::from_secs(self.request_timeout_seconds.unwrap_or(30));
        if request_timeout.is_zero() || request_timeout > Duration::from_secs(3600) {
            return Err(ConfigError("request_timeout_seconds must be between 1 and 3600".into()));
        }
        let stream_caps = crate::connections::StreamCaps {
            per_ip: self.streams_per_ip.unwrap_or(8),
            per_attempt: 4,
            total: self.streams_total.unwrap_or(10_000),
        };
        if stream_caps.per_ip == 0 || stream_caps.total == 0 {
            return Err(ConfigError("streams_per_ip and streams_total must be above 0".into()));
        }
        let positive = |value: Option<u32>, default: u32, key: &str| match value {
            Some(0) => Err(ConfigError(format!("{key} must be above 0"))),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let limits = crate::limits::Limits::new(
            self.qr_create_per_minute.unwrap_or(20),
            self.qr_approve_per_minute.unwrap_or(10),
            events_per_minute,
            (
                positive(self.login_start_per_minute, 120, "login_start_per_minute")?,
                positive(self.login_start_per_identifier, 30, "login_start_per_identifier")?,
            ),
            (
                positive(self.registration_start_per_minute, 30, "registration_start_per_minute")?,
                positive(self.registration_start_per_identifier, 10, "registration_start_per_identifier")?,
            ),
        )
        .with_email_codes(
            positive(self.email_code_per_minute, 10, "email_code_per_minute")?,
            positive(self.email_code_per_identifier, 3, "email_code_per_identifier")?,
        );
        let retention_days = self.retention_days.unwrap_or(90);
        if retention_days == 0 || retention_days > 36_500 {
            return Err(ConfigError("retention_days must be between 1 and 36500".into()));
        }
        let (webhooks, webhook_policy) = crate::webhooks::settings(
            self.webhooks,
            self.webhooks_allow_insecure,
            self.webhook_retry_base_ms,
            self.webhook_retry_window_seconds,
            self.webhook_timeout_seconds,
            self.webhook_failing_after,
        )?;
        Ok(Settings {
            clock: handoff_core::clock::Clock::system(),
            issuer,
            clients: self.clients,
            webhooks,
            webhook_policy,
            session_idle,
            retention: Duration::from_secs(u64::from(retention_days) * 86_400),
            limits,
            stream_caps,
            header_read_timeout,
            request_timeout,
            geoip_database: self.geoip_database,
            trusted_proxies,
            journey_idle,
            events_per_minute,
            rules,
            append,
            qr,
            qr_create_per_minute: self.qr_create_per_minute.unwrap_or(20),
            qr_approve_per_minute: self.qr_approve_per_minute.unwrap_or(10),
            device_ttl,
            mail,
            email_verification,
            listen,
            data_dir,
            database_url,
            rp_id,
            rp_name,
            origins,
            operator_token,
            aaguid_list: self.aaguid_list,
            session_ttl,
            ceremony_ttl,
        })
    }
}

fn parse_origin(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError(format!("origin {raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError(format!("origin {raw:?} must be http(s)://HOST[:PORT]")));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError(format!("origin {raw:?} must not have a path, query or fragment")));
    }
    Ok(url)
}

/// A database URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Settings {
    /// The operator token a running server uses, without making one: the configured one,
    /// or the one `serve` generated into the data directory.
    pub fn known_operator_token(&self) -> Option<String> {
        if let Some(token) = &self.operator_token {
            return Some(token.expose().to_owned());
        }
        let stored = std::fs::read_to_string(self.data_dir.join("operator-token")).ok()?;
        Some(stored.trim().to_owned()).filter(|t| !t.is_empty())
    }

    /// True when cookies must be `Secure` (any configured origin is https).
    pub fn secure_cookies(&self) -> bool {
        self.origins.iter().any(|o| o.scheme() == "https")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = RawConfig::default().into_settings().unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url, "sqlite://data/handoff.db");
        assert_eq!(s.rp_id, "localhost");
        assert_eq!(s.origins[0].as_str(), "http://localhost:8080/");
        assert!(!s.secure_cookies());
    }

    #[test]
    fn bad_values_are_named() {
        let bad = |raw: RawConfig| raw.into_settings().unwrap_err().to_string();
        assert!(bad(RawConfig { listen: Some("nope".into()), ..Default::default() }).contains("listen"));
        assert!(bad(RawConfig { origin: Some(vec!["ftp://x".into()]), ..Default::default() }).contains("origin"));
        assert!(
            bad(RawConfig { origin: Some(vec!["https://x.com/path".into()]), ..Default::default() }).contains("path")
        );
        assert!(
            bad(RawConfig { database_url: Some("mysql://u:pw@h/db".into()), ..Default::default() }).contains("***")
        );
        assert!(
            bad(RawConfig { operator_token: Some("short".into()), ..Default::default() }).contains("operator_token")
        );
        let idle = bad(RawConfig { journey_idle_seconds: Some(60), ..Default::default() });
        assert!(idle.contains("journey_idle_seconds") && idle.contains("qr_ttl_seconds"), "{idle}");
        assert!(bad(RawConfig { events_per_minute: Some(0), ..Default::default() }).contains("events_per_minute"));
    }

    #[test]
    fn origins_accept_comma_lists() {
        let raw: RawConfig =
            serde_json::from_str(r#"{"origin": "https://a.example.com, https://b.example.com"}"#).unwrap();
        assert_eq!(raw.origin.unwrap().len(), 2);
        let s = RawConfig {
            origin: Some(vec!["https://a.example.com".into()]),
            rp_id: Some("example.com".into()),
            ..Default::default()
        };
        assert!(s.into_settings().unwrap().secure_cookies());
    }

    #[test]
    fn decision_rules_come_from_config() {
        let raw: RawConfig = serde_json::from_str(
            r#"{"cross_device_enabled": false, "blocked_providers": "Windows Hello, Chrome on Mac",
                "failures_before_fallback": 3, "cross_device_rollout_os": ["macOS"]}"#,
        )
        .unwrap();
        let s = raw.into_settings().unwrap();
        assert!(!s.rules.cross_device_enabled);
        assert_eq!(s.rules.blocked_providers, vec!["Windows Hello", "Chrome on Mac"]);
        assert_eq!(s.rules.failures_before_fallback, 3);
        assert_eq!(s.rules.cross_device_rollout.os, vec!["macOS"]);
        assert_eq!(s.rules.cross_device_rollout.percent, 100);
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2hunter2hunter2")), "Secret(…)");
    }
}
