//! The `handoff` binary: parse the command line, load configuration, start tracing, build
//! the application, run it until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use handoff_server::config::RawConfig;
use handoff_server::{Application, telemetry};

/// Handoff: a self-hostable passkey login server.
///
/// Configuration comes from built-in defaults, then a TOML file (`--config`, or
/// ./handoff.toml when present), then HANDOFF_* environment variables, then these flags;
/// later sources win. Every flag names its environment variable and TOML key.
#[derive(Parser)]
#[command(name = "handoff", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The configuration keys without flags (TOML keys; HANDOFF_<KEY> in the environment).
const DECISION_KEYS_HELP: &str = "\
More settings (TOML keys; environment: HANDOFF_<KEY IN UPPER CASE>):

Sign-in decisions:
  cross_device_enabled           offer the cross-device (hybrid) flow [true]
  allowed_providers              only these providers, e.g. \"iCloud Keychain, 1Password\"
                                 (enforced: other passkeys neither register nor sign in)
  blocked_providers              never these providers (enforced the same way)
  failures_before_fallback       failures in one browser before falling back [2]
  failure_cooldown_seconds       how long that fallback lasts [900]
  cross_device_rollout_percent   share of users who get cross-device, 0-100 [100]
  cross_device_rollout_os        only these systems, e.g. \"Windows, macOS\"
  cross_device_rollout_browsers  only these browsers, e.g. \"Chrome, Edge\"
  append_max_offers_per_day      passkey-append offers per user per day [2]
  append_max_skips_total         stop offering after this many \"Not now\" [3]
  append_skip_cooldown_seconds   no offer for this long after \"Not now\" [86400]

Handoff QR approval:
  qr_enabled                     offer QR approval with a signed-in phone [true]
  qr_ttl_seconds                 how long an attempt lives, at most 300 [300]
  qr_code_ttl_seconds            how long one displayed code works [60]
  qr_create_per_minute           attempts one IP may start per minute [20]
  qr_approve_per_minute          approvals one account may make per minute [10]
  device_code_ttl_seconds        how long a device sign-in's codes (RFC 8628) live, 30 to
                                 600 [600]
  qr_reauth_after_seconds        a passkey check on this device must be this recent to
                                 approve a QR request, add or delete a passkey or end
                                 another session [120]
  qr_session_may_add_passkey     a desktop signed in by QR approval may save one passkey
                                 without a check, when the phone's approver allows it [false]
  qr_far_apart                   far-apart phone and computer (GeoIP): warn or refuse [warn]
  qr_refuse_wrong_account        refuse a phone signed in to another account than the
                                 identifier typed on the computer [true]
  geoip_database                 MaxMind DB file (GeoLite2 City/Country): the phone sees
                                 where the computer is; far apart is judged by distance

Identity provider (OpenID Connect, PRODUCT §6):
  issuer                         the issuer (iss) of ID tokens and the discovery document
                                 [the first origin]; clients come from `handoff clients`
                                 or [[clients]] tables in the TOML file

Mail (email codes and recovery, PRODUCT §7; off without smtp_url):
  smtp_url                       smtp://user:pass@host:587 (STARTTLS) or smtps://…:465
  smtp_password_file             a file with the SMTP password (instead of one in the URL)
  smtp_allow_plaintext           smtp:// to a loopback server without STARTTLS (tests) [false]
  mail_from                      the sender, e.g. \"Example <login@example.com>\"
  email_verification             mail new accounts with an email identifier a link that
                                 verifies it (ID tokens then say email_verified) [false]
Webhooks (PRODUCT §6.4; endpoints come from `handoff webhooks` or [[webhooks]] tables in
the TOML file: url, events, secret or secret_file):
  webhooks_allow_insecure        accept http:// targets on a loopback address (development)
                                 [false: https:// only]
  webhook_retry_base_ms          first retry delay, doubling per attempt with jitter up to
                                 6 h [5000]
  webhook_retry_window_seconds   a delivery still failing this long is dead [86400]
  webhook_timeout_seconds        one attempt's timeout; redirects are not followed [10]
  webhook_failing_after          failed attempts in a row that mark an endpoint failing [5]

Sessions:
  session_idle                   a session unused this long ends, in seconds [259200]

Connections:
  header_read_timeout_seconds    time a client has to send a request's headers [10]
  request_timeout_seconds        time any request but a stream or long-poll may take [30]
  streams_per_ip                 event streams and long-polls open per client [8]
  streams_total                  event streams and long-polls open on the server [10000]

Behind a reverse proxy:
  trusted_proxies                proxies (IPs or CIDRs) whose X-Forwarded-For names the
                                 client, e.g. \"10.0.0.0/8, 127.0.0.1\" [none]

Journeys and events:
  journey_idle_seconds           a journey with no event for this long is finished [600]
  events_per_minute              event batches one IP may send per minute [600]
  retention_days                 events, journeys, QR attempts and security events older
                                 than this are deleted; rollups keep the counts [90]

Rate limits (per minute; a client is an IPv4 address or an IPv6 /64; on PostgreSQL
every instance counts against the same limit):
  login_start_per_minute         sign-in starts per client [120]
  login_start_per_identifier     sign-in starts per identifier [30]
  email_code_per_minute          email codes one client may ask for per minute [10]
  email_code_per_identifier      email codes asked for one identifier per minute [3]
  registration_start_per_minute  sign-up starts per client [30]
  registration_start_per_identifier  sign-up starts per identifier [10]";

#[derive(Subcommand)]
enum Command {
    /// Run the server: the API under /api/v1, the demo page at /, the SDK at /sdk/handoff.js.
    #[command(after_long_help = DECISION_KEYS_HELP)]
    Serve(ServeArgs),
    /// Print the top insights and the funnel of each flow (steps, conversion, time to
    /// session) and why the journeys that did not sign in failed, from the database `serve`
    /// uses (same configuration: next to a running server it needs no flags).
    Report(ReportArgs),
    /// Play realistic traffic against a running server through its HTTP API: people on
    /// Windows, macOS and Linux desktops with iPhones and Android phones sign up and sign
    /// in on every flow, with failures planted from published per-segment figures. Writes
    /// the ground truth; `--score` checks the server's diagnosis against it; `--demo` fills
    /// a fresh instance for the dashboard.
    Simulate(handoff_server::simulate::SimulateArgs),
    /// The applications that sign in through Handoff (OpenID Connect clients): add, list,
    /// remove. Works on the configured database, or a running server with --url.
    Clients(handoff_server::admin::ClientsArgs),
    /// The provider's signing keys: `rotate` adds new ones and keeps the old ones published
    /// until what they signed has expired.
    Keys(handoff_server::admin::KeysArgs),
    /// Play a TV or terminal signing in with the device authorization grant (RFC 8628):
    /// prints a QR and a code, waits while a signed-in phone approves, then prints the ID
    /// token's claims (checked against the server's keys) on stdout.
    DeviceLogin(handoff_server::device_login::DeviceLoginArgs),
    /// Accounts: `recover IDENTIFIER` makes a single-use sign-in link (15 minutes) for
    /// someone locked out. Works on the configured database, or a running server with --url.
    Users(handoff_server::admin::UsersArgs),
    /// Webhook subscriptions (Standard Webhooks): add, list, remove. Works on the configured
    /// database, or a running server with --url.
    Webhooks(handoff_server::webhooks_cli::WebhooksArgs),
}

#[derive(Args)]
struct ReportArgs {
    /// TOML configuration file, as for `serve`.
    #[arg(long, value_name = "FILE", env = "HANDOFF_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory, as for `serve`. [env: HANDOFF_DATA_DIR] [default: ./data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database, as for `serve`. [env: HANDOFF_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Only this flow: passkey-local, cross-device, qr-approval, fallback or device-grant. [default: every flow with journeys]
    #[arg(long, value_name = "FLOW")]
    flow: Option<String>,
    /// Journeys started at or after this time (RFC 3339, or e.g. 24h, 7d for "that long ago").
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Journeys started before this time (RFC 3339, or e.g. 1h for "that long ago").
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Break each funnel down by os, browser, formFactor, appVersion, mobileOs, mobileBrowser or client.
    #[arg(long, value_name = "SEGMENT")]
    by: Option<String>,
    /// Print JSON (`{funnels: [the /api/v1/funnels answers], insights: [...]}`) instead of text.
    #[arg(long)]
    json: bool,
    /// Read a running server's API instead of the database (needs the operator token).
    #[arg(long, value_name = "URL")]
    url: Option<url::Url>,
    /// Operator token for --url. [env: HANDOFF_OPERATOR_TOKEN] [default: the
    /// configuration's, or <data dir>/operator-token]
    #[arg(long, value_name = "TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
}

/// RFC 3339, milliseconds since the epoch, or an age like `90m`, `24h`, `7d`.
fn parse_when(s: &str) -> Option<i64> {
    handoff_core::clock::parse_time_or_age(s, handoff_core::clock::now_ms())
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (keys as in the flags below, e.g. rp_id = "example.com").
    #[arg(long, value_name = "FILE", env = "HANDOFF_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on. [env: HANDOFF_LISTEN] [toml: listen] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Directory for the SQLite database and the generated operator token.
    /// [env: HANDOFF_DATA_DIR] [toml: data_dir] [default: ./data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database: sqlite://PATH, or postgres://USER@HOST/DB to share one database between
    /// several instances. [env: HANDOFF_DATABASE_URL] [toml: database_url]
    /// [default: sqlite://<data dir>/handoff.db]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// WebAuthn relying-party ID: your site's registrable domain.
    /// [env: HANDOFF_RP_ID] [toml: rp_id] [default: localhost]
    #[arg(long, value_name = "DOMAIN")]
    rp_id: Option<String>,
    /// Relying-party name that authenticators show. [env: HANDOFF_RP_NAME] [toml: rp_name]
    /// [default: Handoff]
    #[arg(long, value_name = "NAME")]
    rp_name: Option<String>,
    /// Origin allowed to run passkey ceremonies; repeat the flag (or use commas in the
    /// variable) for several. Each must be on the RP ID.
    /// [env: HANDOFF_ORIGIN] [toml: origin] [default: http://localhost:8080]
    #[arg(long = "origin", value_name = "URL")]
    origins: Vec<String>,
    /// Bearer token for operator endpoints (at least 16 characters). When unset, one is
    /// generated at first start into <data dir>/operator-token.
    /// [env: HANDOFF_OPERATOR_TOKEN] [toml: operator_token]
    #[arg(long, value_name = "TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
    /// Community AAGUID list (passkey-authenticator-aaguids JSON) to name more passkey
    /// providers and show their icons. [env: HANDOFF_AAGUID_LIST] [toml: aaguid_list]
    #[arg(long, value_name = "FILE")]
    aaguid_list: Option<PathBuf>,
    /// How long a session lasts, in seconds. [env: HANDOFF_SESSION_TTL_SECONDS]
    /// [toml: session_ttl_seconds] [default: 604800]
    #[arg(long, value_name = "SECONDS")]
    session_ttl_seconds: Option<u64>,
    /// How long a passkey ceremony may take, in seconds (1–600).
    /// [env: HANDOFF_CEREMONY_TTL_SECONDS] [toml: ceremony_ttl_seconds] [default: 300]
    #[arg(long, value_name = "SECONDS")]
    ceremony_ttl_seconds: Option<u64>,
}

impl ServeArgs {
    fn overrides(&self) -> RawConfig {
        RawConfig {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            rp_id: self.rp_id.clone(),
            rp_name: self.rp_name.clone(),
            origin: (!self.origins.is_empty()).then(|| self.origins.clone()),
            operator_token: self.operator_token.clone(),
            aaguid_list: self.aaguid_list.clone(),
            session_ttl_seconds: self.session_ttl_seconds,
            ceremony_ttl_seconds: self.ceremony_ttl_seconds,
            ..RawConfig::default()
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Report(args) => report(args).await,
        Command::Simulate(args) => handoff_server::simulate::run(args).await,
        Command::Clients(args) => handoff_server::admin::clients(args).await,
        Command::Keys(args) => handoff_server::admin::keys(args).await,
        Command::DeviceLogin(args) => handoff_server::device_login::run(args).await,
        Command::Users(args) => handoff_server::admin::users(args).await,
        Command::Webhooks(args) => handoff_server::webhooks_cli::webhooks(args).await,
    }
}

async fn report(args: ReportArgs) -> ExitCode {
    let fail = |message: String| {
        eprintln!("handoff report: {message}");
        ExitCode::from(2)
    };
    let overrides =
        RawConfig { data_dir: args.data_dir.clone(), database_url: args.database_url.clone(), ..RawConfig::default() };
    let settings = match RawConfig::load(args.config.as_deref(), &overrides).and_then(RawConfig::into_settings) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let when = |name: &str, v: &Option<String>| match v {
        None => Ok(None),
        Some(v) => parse_when(v).map(Some).ok_or(format!("--{name} {v:?} is not RFC 3339 or an age like 24h or 7d")),
    };
    let (from, to) = match (when("from", &args.from), when("to", &args.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    if let Some(flow) = &args.flow
        && !handoff_core::observe::FLOWS.contains(&flow.as_str())
    {
        return fail(format!("--flow must be one of {}", handoff_core::observe::FLOWS.join(", ")));
    }
    let by = match &args.by {
        None => None,
        Some(b) => match handoff_core::observe::views::parse_segment(b) {
            Some(s) => Some(s),
            None => {
                return fail(
                    "--by must be os, browser, formFactor, appVersion, mobileOs, mobileBrowser or client".into(),
                );
            }
        },
    };
    let request = handoff_server::report::ReportRequest { flow: args.flow.clone(), from, to, by };
    if let Some(url) = &args.url {
        let Some(token) = args.operator_token.clone().or_else(|| settings.known_operator_token()) else {
            return fail("--url needs the operator token: pass --operator-token or set HANDOFF_OPERATOR_TOKEN".into());
        };
        return match handoff_server::report::remote(url, &token, &request).await {
            Ok((funnels, insights)) => print_report(&request, &funnels, &insights, args.json),
            Err(e) => fail(e),
        };
    }
    if settings.database_url.starts_with("sqlite:") && !settings.data_dir.exists() && args.database_url.is_none() {
        return fail(format!(
            "no data directory at {} (run it where `handoff serve` runs, or pass --data-dir / --database-url)",
            settings.data_dir.display()
        ));
    }
    let db = match handoff_store::Database::connect(&settings.database_url).await {
        Ok(db) => db,
        Err(e) => return fail(format!("cannot open the database: {e}")),
    };
    let storage = db.storage();
    let result = match handoff_server::report::funnels(storage.journeys.as_ref(), &request).await {
        Ok(f) => handoff_server::report::insights(storage.journeys.as_ref(), &request).await.map(|i| (f, i)),
        Err(e) => Err(e),
    };
    db.close().await;
    match result {
        Ok((funnels, insights)) => print_report(&request, &funnels, &insights, args.json),
        Err(e) => fail(format!("reading journeys failed: {e}")),
    }
}

fn print_report(
    request: &handoff_server::report::ReportRequest,
    funnels: &[handoff_core::observe::views::FunnelResponse],
    insights: &[handoff_core::observe::insights::Insight],
    json: bool,
) -> ExitCode {
    if json {
        let out = serde_json::json!({"funnels": funnels, "insights": insights});
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print!("{}", handoff_server::report::render(request, funnels, insights));
    }
    ExitCode::SUCCESS
}

async fn serve(args: ServeArgs) -> ExitCode {
    let settings = match RawConfig::load(args.config.as_deref(), &args.overrides()).and_then(RawConfig::into_settings) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("handoff: {e}");
            return ExitCode::from(2);
        }
    };
    let origins: Vec<String> = settings.origins.iter().map(|o| o.origin().ascii_serialization()).collect();
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("handoff: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = app.local_addr();
    tracing::info!(%addr, origins = ?origins, "handoff listening on http://{addr}");
    eprintln!("handoff listening on http://{addr} (origins: {})", origins.join(", "));
    match app.run_until(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("handoff: server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn help_explains_every_configuration_key() {
        let mut cmd = Cli::command();
        let serve = cmd.find_subcommand_mut("serve").expect("serve");
        let help = serve.render_long_help().to_string();
        for key in handoff_server::config::KEYS {
            let flag = format!("--{}", key.replace('_', "-"));
            assert!(help.contains(&flag) || help.contains(key), "`handoff serve --help` does not mention {key}");
        }
    }
}
