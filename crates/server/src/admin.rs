//! `handoff clients …`, `handoff keys rotate` and `handoff users recover`: the operator's
//! commands for the identity provider and for accounts. Like `report`, each works on the database `serve` uses (same configuration,
//! so next to a running server it needs no flags; the server sees a new client at once and
//! new keys within 30 s), or on a running server's operator API with `--url`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use handoff_core::clock::Clock;
use handoff_core::oidc::{ClientRegistry, ClientSpec, KeyRing, OidcSettings};
use serde_json::{Value, json};

use crate::config::RawConfig;

/// Where a command acts: the configured database, or a running server.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// TOML configuration file, as for `serve`.
    #[arg(long, value_name = "FILE", env = "HANDOFF_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Data directory, as for `serve`. [env: HANDOFF_DATA_DIR] [default: ./data]
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Database, as for `serve`. [env: HANDOFF_DATABASE_URL]
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) database_url: Option<String>,
    /// Act on a running server's operator API instead of the database.
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) url: Option<url::Url>,
    /// Operator token for --url. [env: HANDOFF_OPERATOR_TOKEN] [default: the configuration's,
    /// or <data dir>/operator-token]
    #[arg(long, value_name = "TOKEN", hide_env_values = true, global = true)]
    pub(crate) operator_token: Option<String>,
}

/// `handoff clients`.
#[derive(Args, Debug)]
pub struct ClientsArgs {
    #[command(subcommand)]
    command: ClientsCommand,
    #[command(flatten)]
    target: Target,
}

#[derive(Subcommand, Debug)]
enum ClientsCommand {
    /// Register an application; prints its client id and secret (the secret is shown
    /// this once and stored as a digest).
    Add(AddArgs),
    /// List the registered applications.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an application with its consents and tokens.
    Remove {
        /// The client id.
        id: String,
    },
}

#[derive(Args, Debug)]
struct AddArgs {
    /// The application's name, shown on the consent page.
    #[arg(long)]
    name: String,
    /// An exact redirect URI (repeat for more).
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return (repeat for more).
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// An origin whose pages may call the API with credentials, for sign-in proofs (repeat).
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// A public client (single-page or native app): no secret, PKCE required.
    #[arg(long)]
    public: bool,
    /// The operator's own application: no consent screen.
    #[arg(long)]
    first_party: bool,
    /// May use the device authorization grant.
    #[arg(long)]
    device: bool,
    /// The ID token's signing algorithm: RS256 or ES256.
    #[arg(long, value_name = "ALG", default_value = "RS256")]
    id_token_alg: String,
    /// Print `{"clientId", "clientSecret"}` as JSON.
    #[arg(long)]
    json: bool,
}

/// `handoff keys`.
#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    #[command(flatten)]
    target: Target,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Add a new signing key per algorithm; the old ones stay published until the tokens
    /// they signed have expired.
    Rotate,
}

pub(crate) fn fail(command: &str, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("handoff {command}: {message}");
    ExitCode::from(2)
}

/// What a command acts on, resolved.
pub(crate) enum Resolved {
    Database(handoff_store::Database, Box<crate::config::Settings>),
    Server(reqwest::Client, url::Url, String),
}

pub(crate) async fn resolve(target: &Target) -> Result<Resolved, String> {
    let overrides = RawConfig {
        data_dir: target.data_dir.clone(),
        database_url: target.database_url.clone(),
        ..RawConfig::default()
    };
    let settings = RawConfig::load(target.config.as_deref(), &overrides)
        .and_then(RawConfig::into_settings)
        .map_err(|e| e.to_string())?;
    if let Some(url) = &target.url {
        let token = target
            .operator_token
            .clone()
            .or_else(|| std::env::var("HANDOFF_OPERATOR_TOKEN").ok())
            .or_else(|| settings.known_operator_token())
            .ok_or("--url needs the operator token: pass --operator-token or set HANDOFF_OPERATOR_TOKEN")?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        return Ok(Resolved::Server(http, url.clone(), token));
    }
    if settings.database_url.starts_with("sqlite:") && !settings.data_dir.exists() && target.database_url.is_none() {
        return Err(format!(
            "no data directory at {} (run it where `handoff serve` runs, or pass --data-dir / --database-url / --url)",
            settings.data_dir.display()
        ));
    }
    let db = handoff_store::Database::connect(&settings.database_url)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    Ok(Resolved::Database(db, Box::new(settings)))
}

/// Calls the operator API; the answer's JSON, or the server's error message.
pub(crate) async fn call(request: reqwest::RequestBuilder, what: &str) -> Result<Value, String> {
    let response = request.send().await.map_err(|e| format!("{what}: {e}"))?;
    let status = response.status();
    let body: Value = if status == reqwest::StatusCode::NO_CONTENT {
        json!({})
    } else {
        response.json().await.unwrap_or(Value::Null)
    };
    if status.is_success() {
        Ok(body)
    } else {
        let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("no message").to_owned();
        Err(format!("{what}: the server answered {status}: {message}"))
    }
}

fn client_json(c: &handoff_core::oidc::Client) -> Value {
    json!({
        "clientId": c.id, "name": c.name, "redirectUris": c.redirect_uris,
        "postLogoutRedirectUris": c.post_logout_redirect_uris, "allowedOrigins": c.allowed_origins,
        "public": !c.confidential(), "firstParty": c.first_party, "idTokenAlg": c.id_token_alg.as_str(),
        "device": c.device, "source": c.source.as_str(),
    })
}

/// Runs `handoff clients …`.
pub async fn clients(args: ClientsArgs) -> ExitCode {
    let target = match resolve(&args.target).await {
        Ok(t) => t,
        Err(e) => return fail("clients", e),
    };
    let result: Result<(), String> = async {
        match (args.command, target) {
            (ClientsCommand::Add(add), target) => {
                let spec = ClientSpec {
                    name: add.name,
                    redirect_uris: add.redirect_uris,
                    post_logout_redirect_uris: add.post_logout_redirect_uris,
                    allowed_origins: add.allowed_origins,
                    public: add.public,
                    first_party: add.first_party,
                    id_token_alg: Some(add.id_token_alg),
                    device: add.device,
                };
                let (id, secret) = match target {
                    Resolved::Database(db, _) => {
                        let registry = ClientRegistry::new(db.storage().oidc_clients, Clock::system());
                        let registered = registry.add(spec).await.map_err(|e| e.to_string());
                        db.close().await;
                        let registered = registered?;
                        (registered.client.id, registered.secret.map(|s| s.expose().to_owned()))
                    }
                    Resolved::Server(http, url, token) => {
                        let body = serde_json::to_value(SpecBody(&spec)).map_err(|e| e.to_string())?;
                        let answer = call(
                            http.post(url.join("/api/v1/clients").map_err(|e| e.to_string())?)
                                .bearer_auth(token)
                                .json(&body),
                            "registering the client",
                        )
                        .await?;
                        (
                            answer["clientId"].as_str().unwrap_or_default().to_owned(),
                            answer["clientSecret"].as_str().map(str::to_owned),
                        )
                    }
                };
                if add.json {
                    let mut out = json!({"clientId": id});
                    if let Some(secret) = &secret {
                        out["clientSecret"] = json!(secret);
                    }
                    println!("{out}");
                } else {
                    println!("client id:     {id}");
                    match &secret {
                        Some(secret) => {
                            println!("client secret: {secret}\n(shown this once; only its digest is stored)")
                        }
                        None => println!("public client: no secret; it must use PKCE (S256)"),
                    }
                }
                Ok(())
            }
            (ClientsCommand::List { json }, target) => {
                let list: Vec<Value> = match target {
                    Resolved::Database(db, _) => {
                        let registry = ClientRegistry::new(db.storage().oidc_clients, Clock::system());
                        let clients = registry.list().await.map_err(|e| e.to_string());
                        db.close().await;
                        clients?.iter().map(client_json).collect()
                    }
                    Resolved::Server(http, url, token) => {
                        let answer = call(
                            http.get(url.join("/api/v1/clients").map_err(|e| e.to_string())?).bearer_auth(token),
                            "listing clients",
                        )
                        .await?;
                        answer["clients"].as_array().cloned().unwrap_or_default()
                    }
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&json!({"clients": list})).unwrap_or_default());
                } else if list.is_empty() {
                    println!("no clients registered (add one with `handoff clients add --name … --redirect-uri …`)");
                } else {
                    for c in &list {
                        println!(
                            "{}  {}  {}{}  redirect: {}",
                            c["clientId"].as_str().unwrap_or_default(),
                            c["name"].as_str().unwrap_or_default(),
                            if c["public"].as_bool() == Some(true) { "public" } else { "confidential" },
                            if c["firstParty"].as_bool() == Some(true) { ", first-party" } else { "" },
                            c["redirectUris"]
                                .as_array()
                                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
                                .unwrap_or_default(),
                        );
                    }
                }
                Ok(())
            }
            (ClientsCommand::Remove { id }, target) => {
                let removed = match target {
                    Resolved::Database(db, _) => {
                        let registry = ClientRegistry::new(db.storage().oidc_clients, Clock::system());
                        let removed = registry.remove(&id).await.map_err(|e| e.to_string());
                        db.close().await;
                        removed?
                    }
                    Resolved::Server(http, url, token) => {
                        let path = format!(
                            "/api/v1/clients/{}",
                            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
                        );
                        match call(
                            http.delete(url.join(&path).map_err(|e| e.to_string())?).bearer_auth(token),
                            "removing the client",
                        )
                        .await
                        {
                            Ok(_) => true,
                            Err(e) if e.contains("404") => false,
                            Err(e) => return Err(e),
                        }
                    }
                };
                if removed {
                    println!("removed client {id}");
                    Ok(())
                } else {
                    Err(format!("no client is registered as {id:?}"))
                }
            }
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("clients", e),
    }
}

/// The API's JSON shape of a spec.
struct SpecBody<'a>(&'a ClientSpec);

impl serde::Serialize for SpecBody<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        json!({
            "name": c.name, "redirectUris": c.redirect_uris, "postLogoutRedirectUris": c.post_logout_redirect_uris,
            "allowedOrigins": c.allowed_origins, "public": c.public, "firstParty": c.first_party,
            "idTokenAlg": c.id_token_alg, "device": c.device,
        })
        .serialize(s)
    }
}

/// Runs `handoff keys …`.
pub async fn keys(args: KeysArgs) -> ExitCode {
    let KeysCommand::Rotate = args.command;
    let kids: Result<Vec<String>, String> = match resolve(&args.target).await {
        Err(e) => Err(e),
        Ok(Resolved::Database(db, settings)) => {
            let oidc = OidcSettings::new(settings.issuer.clone());
            let ring = KeyRing::new(db.storage().signing_keys, Clock::system(), oidc.longest_signed());
            eprintln!("generating new RS256 and ES256 signing keys…");
            let kids = ring.rotate().await.map_err(|e| e.to_string());
            db.close().await;
            kids
        }
        Ok(Resolved::Server(http, url, token)) => match url.join("/api/v1/keys/rotate") {
            Err(e) => Err(e.to_string()),
            Ok(endpoint) => call(http.post(endpoint).bearer_auth(token), "rotating keys").await.map(|answer| {
                answer["kids"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default()
            }),
        },
    };
    match kids {
        Ok(kids) => {
            println!("new signing keys: {}", kids.join(", "));
            println!("the previous keys stay in the JWKS until the tokens they signed have expired");
            ExitCode::SUCCESS
        }
        Err(e) => fail("keys", e),
    }
}

/// `handoff users`.
#[derive(Args, Debug)]
pub struct UsersArgs {
    #[command(subcommand)]
    command: UsersCommand,
    #[command(flatten)]
    target: Target,
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Make a single-use sign-in link for an account, valid 15 minutes (PRODUCT §7): for
    /// someone who lost every passkey and has no other way in. Give it to them over a
    /// channel you trust; it signs in once and offers to create a passkey.
    Recover {
        /// The account's identifier.
        identifier: String,
        /// Print `{"url", "expiresAt"}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `handoff users …`.
pub async fn users(args: UsersArgs) -> ExitCode {
    let UsersCommand::Recover { identifier, json: as_json } = args.command;
    let made: Result<(String, String), String> = match resolve(&args.target).await {
        Err(e) => Err(e),
        Ok(Resolved::Database(db, settings)) => {
            use handoff_core::recovery::{RecoveryService, RecoverySettings};
            let origin = settings.origins.first().map(|o| o.origin().ascii_serialization()).unwrap_or_default();
            let recovery_settings = RecoverySettings::new(settings.rp_name.clone(), origin, false);
            // Links need no email key: they are digests of their own random token.
            let service = RecoveryService::new(db.storage(), recovery_settings, Vec::new(), Clock::system());
            let result = match handoff_core::domain::Identifier::parse(&identifier) {
                Ok(id) => service
                    .make_recovery_link(&id)
                    .await
                    .map(|(url, at)| (url, handoff_core::clock::rfc3339(at)))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            db.close().await;
            result
        }
        Ok(Resolved::Server(http, url, token)) => match url.join("/api/v1/recovery-links") {
            Err(e) => Err(e.to_string()),
            Ok(endpoint) => {
                let request = http.post(endpoint).bearer_auth(token).json(&json!({"identifier": identifier}));
                call(request, "making a recovery link").await.map(|answer| {
                    let text = |k: &str| answer[k].as_str().unwrap_or_default().to_owned();
                    (text("url"), text("expiresAt"))
                })
            }
        },
    };
    match made {
        Ok((url, expires_at)) if as_json => {
            println!("{}", json!({"url": url, "expiresAt": expires_at}));
            ExitCode::SUCCESS
        }
        Ok((url, expires_at)) => {
            println!("{url}");
            eprintln!("signs in once, until {expires_at}; give it only to the account's owner");
            ExitCode::SUCCESS
        }
        Err(e) => fail("users recover", e),
    }
}
