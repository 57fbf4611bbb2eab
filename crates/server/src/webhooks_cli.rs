//! `handoff webhooks add|list|remove`: the operator's commands for webhook subscriptions
//! (PRODUCT §6.4). Like `handoff clients`, each works on the database `serve` uses (a
//! running server sees the change within 5 s) or on a running server's operator API with
//! `--server URL` (`--url` is the endpoint's, as PRODUCT §6.4 writes `add`). `add` prints
//! the `whsec_…` secret this once.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use handoff_core::clock::Clock;
use handoff_core::webhooks::{Endpoint, EndpointSpec, Reporter, WebhookService};
use serde_json::{Value, json};

use crate::admin::{Resolved, Target, call, fail, resolve};

/// `handoff webhooks`.
#[derive(Args, Debug)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    command: WebhooksCommand,
    #[command(flatten)]
    target: Where,
}

/// Where the command acts, as [`Target`] with the server named by `--server`.
#[derive(Args, Debug, Clone)]
struct Where {
    /// TOML configuration file, as for `serve`.
    #[arg(long, value_name = "FILE", env = "HANDOFF_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory, as for `serve`. [env: HANDOFF_DATA_DIR] [default: ./data]
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Database, as for `serve`. [env: HANDOFF_DATABASE_URL]
    #[arg(long, value_name = "URL", global = true)]
    database_url: Option<String>,
    /// Act on a running server's operator API (at this URL) instead of the database.
    #[arg(long, value_name = "URL", global = true)]
    server: Option<url::Url>,
    /// Operator token for --server. [env: HANDOFF_OPERATOR_TOKEN] [default: the
    /// configuration's, or <data dir>/operator-token]
    #[arg(long, value_name = "TOKEN", hide_env_values = true, global = true)]
    operator_token: Option<String>,
}

impl From<Where> for Target {
    fn from(w: Where) -> Self {
        Target {
            config: w.config,
            data_dir: w.data_dir,
            database_url: w.database_url,
            url: w.server,
            operator_token: w.operator_token,
        }
    }
}

#[derive(Subcommand, Debug)]
enum WebhooksCommand {
    /// Subscribe an endpoint to events; prints its id and signing secret (shown this once).
    Add {
        /// The endpoint: https://… (http:// only to loopback, with
        /// HANDOFF_WEBHOOKS_ALLOW_INSECURE=true).
        #[arg(long = "url", value_name = "URL")]
        endpoint: String,
        /// Event types, comma-separated: user.created, user.deleted, passkey.created,
        /// passkey.deleted, session.created, session.revoked, signin.failed, qr.approved,
        /// qr.denied.
        #[arg(long, value_name = "TYPES", value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// Print `{"id", "secret"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the subscribed endpoints and their health.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint with its deliveries.
    Remove {
        /// The endpoint id.
        id: String,
    },
}

fn endpoint_json(e: &Endpoint) -> Value {
    json!({
        "id": e.id, "url": e.url, "events": e.events, "source": e.source,
        "consecutiveFailures": e.consecutive_failures,
        "failingSince": e.failing_since.map(handoff_core::clock::rfc3339),
    })
}

fn service(db: &handoff_store::Database, settings: &crate::config::Settings) -> WebhookService {
    WebhookService::new(db.storage().webhooks, Reporter::default(), settings.webhook_policy.clone(), Clock::system())
}

/// Runs `handoff webhooks …`.
pub async fn webhooks(args: WebhooksArgs) -> ExitCode {
    let target = match resolve(&Target::from(args.target)).await {
        Ok(t) => t,
        Err(e) => return fail("webhooks", e),
    };
    match run(args.command, target).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("webhooks", e),
    }
}

async fn run(command: WebhooksCommand, target: Resolved) -> Result<(), String> {
    let api = |url: &url::Url, path: &str| url.join(path).map_err(|e| e.to_string());
    match command {
        WebhooksCommand::Add { endpoint, events, json } => {
            let (id, secret) = match target {
                Resolved::Database(db, settings) => {
                    let added = service(&db, &settings).add(EndpointSpec { url: endpoint, events }).await;
                    db.close().await;
                    let e = added.map_err(|e| e.to_string())?.endpoint;
                    (e.id, e.secret)
                }
                Resolved::Server(http, url, token) => {
                    let body = json!({"url": endpoint, "events": events});
                    let request = http.post(api(&url, "/api/v1/webhooks")?).bearer_auth(token).json(&body);
                    let answer = call(request, "subscribing the endpoint").await?;
                    let field = |k: &str| answer[k].as_str().unwrap_or_default().to_owned();
                    (field("id"), field("secret"))
                }
            };
            if json {
                println!("{}", json!({"id": id, "secret": secret}));
            } else {
                println!("endpoint id: {id}\nsecret:      {secret}\n(shown this once: verify deliveries with it)");
            }
        }
        WebhooksCommand::List { json } => {
            let list: Vec<Value> = match target {
                Resolved::Database(db, settings) => {
                    let endpoints = service(&db, &settings).list().await;
                    db.close().await;
                    endpoints.map_err(|e| e.to_string())?.iter().map(endpoint_json).collect()
                }
                Resolved::Server(http, url, token) => {
                    let request = http.get(api(&url, "/api/v1/webhooks")?).bearer_auth(token);
                    let answer = call(request, "listing webhooks").await?;
                    answer["webhooks"].as_array().cloned().unwrap_or_default()
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&json!({"webhooks": list})).unwrap_or_default());
            } else if list.is_empty() {
                println!("no webhook endpoints (add one with `handoff webhooks add --url … --events …`)");
            } else {
                for e in &list {
                    let events: Vec<&str> =
                        e["events"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                    let health = match e["failingSince"].as_str() {
                        Some(since) => format!("failing since {since}"),
                        None => "healthy".into(),
                    };
                    println!(
                        "{}  {}  {}  [{}]",
                        e["id"].as_str().unwrap_or_default(),
                        e["url"].as_str().unwrap_or_default(),
                        health,
                        events.join(", ")
                    );
                }
            }
        }
        WebhooksCommand::Remove { id } => {
            let removed = match target {
                Resolved::Database(db, settings) => {
                    let removed = service(&db, &settings).remove(&id).await;
                    db.close().await;
                    removed.map_err(|e| e.to_string())?
                }
                Resolved::Server(http, url, token) => {
                    let request = http.delete(api(&url, &format!("/api/v1/webhooks/{id}"))?).bearer_auth(token);
                    call(request, "removing the endpoint").await.map(|_| true)?
                }
            };
            if !removed {
                return Err(format!("no webhook endpoint {id:?}"));
            }
            println!("removed {id}");
        }
    }
    Ok(())
}
