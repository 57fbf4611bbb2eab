//! The floor of a sign-in's server CPU. It serves the four endpoints of Handoff's sign-in
//! benchmark (`/api/v1/passkeys/registration/start|finish`, `/api/v1/login/start|finish`)
//! with the same JSON and the same webauthn-rs calls as Handoff, on the same axum and tokio,
//! and keeps everything in memory: no database, no journal, no decision, no device parsing,
//! no session digest. Whatever it costs per sign-in, HTTP, JSON and verification alone cost;
//! no server that also stores its ceremonies and sessions can go below it. `bench/floor.sh`
//! runs `handoff-loadgen` against it beside Handoff and the peer. Not a server to deploy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, COSEAlgorithm, Credential, PublicKeyCredential,
    RegisterPublicKeyCredential, RegistrationState, UserVerificationPolicy,
};

/// What the floor keeps: accounts by identifier, and pending ceremonies by id.
#[derive(Default)]
struct Memory {
    accounts: HashMap<String, Vec<Credential>>,
    registrations: HashMap<Uuid, (String, RegistrationState)>,
    logins: HashMap<Uuid, (String, AuthenticationState)>,
}

#[derive(Clone)]
struct Floor {
    core: Arc<WebauthnCore>,
    memory: Arc<Mutex<Memory>>,
}

impl Floor {
    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, Json(json!({"error": {"code": "refused", "message": why}}))).into_response()
}

/// A signed-in answer: a random session token in the same cookie Handoff sets.
fn signed_in() -> Response {
    let mut token = [0u8; 32];
    if getrandom::fill(&mut token).is_err() {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    }
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
    let cookie = format!("handoff_session={token}; HttpOnly; SameSite=Lax; Path=/");
    ([(header::SET_COOKIE, cookie)], Json(json!({"ok": true}))).into_response()
}

fn ceremony_of(body: &Value) -> Option<Uuid> {
    body.get("ceremonyId")?.as_str()?.parse().ok()
}

async fn registration_start(State(floor): State<Floor>, Json(body): Json<Value>) -> Response {
    let Some(identifier) = body.get("identifier").and_then(Value::as_str).map(str::to_owned) else {
        return refuse(StatusCode::BAD_REQUEST, "identifier is missing");
    };
    let user = Uuid::new_v4();
    let started = floor
        .core
        .new_challenge_register_builder(user.as_bytes(), &identifier, &identifier)
        .map(|b| {
            b.attestation(AttestationConveyancePreference::None)
                .user_verification_policy(UserVerificationPolicy::Required)
                .require_resident_key(true)
                .credential_algorithms(vec![COSEAlgorithm::ES256, COSEAlgorithm::EDDSA, COSEAlgorithm::RS256])
        })
        .and_then(|b| floor.core.generate_challenge_register(b));
    let Ok((options, state)) = started else { return refuse(StatusCode::BAD_REQUEST, "cannot start") };
    let id = Uuid::now_v7();
    floor.memory().registrations.insert(id, (identifier, state));
    Json(json!({"ceremonyId": id.to_string(), "publicKey": options.public_key})).into_response()
}

async fn registration_finish(State(floor): State<Floor>, Json(mut body): Json<Value>) -> Response {
    let Some((identifier, state)) = ceremony_of(&body).and_then(|id| floor.memory().registrations.remove(&id)) else {
        return refuse(StatusCode::NOT_FOUND, "unknown ceremony");
    };
    let Ok(reg) = serde_json::from_value::<RegisterPublicKeyCredential>(body["credential"].take()) else {
        return refuse(StatusCode::BAD_REQUEST, "malformed credential");
    };
    match floor.core.register_credential(&reg, &state, None) {
        Ok(credential) => {
            floor.memory().accounts.entry(identifier).or_default().push(credential);
            signed_in()
        }
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn login_start(State(floor): State<Floor>, Json(body): Json<Value>) -> Response {
    let Some(identifier) = body.get("identifier").and_then(Value::as_str).map(str::to_owned) else {
        return refuse(StatusCode::BAD_REQUEST, "identifier is missing");
    };
    let Some(credentials) = floor.memory().accounts.get(&identifier).cloned() else {
        return refuse(StatusCode::NOT_FOUND, "unknown identifier");
    };
    let started = floor
        .core
        .new_challenge_authenticate_builder(credentials, Some(UserVerificationPolicy::Required))
        .and_then(|b| floor.core.generate_challenge_authenticate(b));
    let Ok((options, state)) = started else { return refuse(StatusCode::BAD_REQUEST, "cannot start") };
    let id = Uuid::now_v7();
    floor.memory().logins.insert(id, (identifier, state));
    Json(json!({"ceremonyId": id.to_string(), "publicKey": options.public_key})).into_response()
}

async fn login_finish(State(floor): State<Floor>, Json(mut body): Json<Value>) -> Response {
    let Some((identifier, state)) = ceremony_of(&body).and_then(|id| floor.memory().logins.remove(&id)) else {
        return refuse(StatusCode::NOT_FOUND, "unknown ceremony");
    };
    let Ok(response) = serde_json::from_value::<PublicKeyCredential>(body["credential"].take()) else {
        return refuse(StatusCode::BAD_REQUEST, "malformed credential");
    };
    match floor.core.authenticate_credential(&response, &state) {
        Ok(result) => {
            if let Some(credentials) = floor.memory().accounts.get_mut(&identifier) {
                for credential in credentials.iter_mut().filter(|c| &c.cred_id == result.cred_id()) {
                    credential.counter = result.counter();
                    credential.backup_state = result.backup_state();
                }
            }
            signed_in()
        }
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = std::env::var("FLOOR_LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".into()).parse()?;
    let origin: Url =
        std::env::var("FLOOR_ORIGIN").unwrap_or_else(|_| format!("http://localhost:{}", listen.port())).parse()?;
    let rp_id = origin.host_str().ok_or("FLOOR_ORIGIN has no host")?.to_owned();
    let core = WebauthnCore::new_unsafe_experts_only(
        "Handoff floor",
        &rp_id,
        vec![origin],
        Duration::from_secs(300),
        Some(false),
        Some(false),
    );
    let floor = Floor { core: Arc::new(core), memory: Arc::default() };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/passkeys/registration/start", post(registration_start))
        .route("/api/v1/passkeys/registration/finish", post(registration_finish))
        .route("/api/v1/login/start", post(login_start))
        .route("/api/v1/login/finish", post(login_finish))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("handoff-bench-floor listening on {listen}");
    axum::serve(listener, app).await?;
    Ok(())
}
