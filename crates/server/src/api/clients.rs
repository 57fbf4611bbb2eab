//! `/clients` and `/keys/rotate`: the operator registers the applications that sign in
//! through Handoff (PRODUCT §6.1) and rotates the provider's signing keys. The generated
//! client secret is in the registration's answer only; storage keeps its digest.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use handoff_core::clock::rfc3339;
use handoff_core::oidc::{Client, ClientSpec, SigningAlg};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Operator};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clients", get(list).post(add))
        .route("/clients/{client_id}", delete(remove))
        .route("/keys/rotate", post(rotate_keys))
}

/// A registered application.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientView {
    /// `client_id`.
    pub client_id: String,
    /// Shown on the consent page.
    pub name: String,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return.
    pub post_logout_redirect_uris: Vec<String>,
    /// Origins allowed to call the API with credentials.
    pub allowed_origins: Vec<String>,
    /// No secret; PKCE required.
    pub public: bool,
    /// No consent screen.
    pub first_party: bool,
    /// The ID token's algorithm.
    pub id_token_alg: SigningAlg,
    /// May use the device grant.
    pub device: bool,
    /// `operator` (CLI, API) or `config` (`[[clients]]`, replaced at every start).
    pub source: handoff_core::oidc::model::ClientSource,
    /// When it was registered (RFC 3339).
    pub created_at: String,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        Self {
            public: !c.confidential(),
            client_id: c.id,
            name: c.name,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            allowed_origins: c.allowed_origins,
            first_party: c.first_party,
            id_token_alg: c.id_token_alg,
            device: c.device,
            source: c.source,
            created_at: rfc3339(c.created_at),
        }
    }
}

/// `GET /clients`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ClientList {
    /// Oldest first.
    pub clients: Vec<ClientView>,
}

/// `POST /clients`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// The new `client_id`.
    pub client_id: String,
    /// The secret, shown this once (absent for a public client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The registered client.
    pub client: ClientView,
}

/// The registered applications.
#[utoipa::path(get, path = "/api/v1/clients", tag = "provider", security(("operator" = [])),
    responses((status = 200, body = ClientList), (status = 401, description = "operator-token-required", body = ErrorBody)))]
pub async fn list(_: Operator, State(state): State<AppState>) -> Result<Json<ClientList>, ApiError> {
    let clients = state.oidc.clients().list().await?;
    Ok(Json(ClientList { clients: clients.into_iter().map(ClientView::from).collect() }))
}

/// Registers an application; the answer holds its secret, shown once.
#[utoipa::path(post, path = "/api/v1/clients", tag = "provider", security(("operator" = [])), request_body = ClientSpec,
    responses((status = 201, body = Registration), (status = 400, description = "invalid-client (the message names the field)", body = ErrorBody),
              (status = 401, description = "operator-token-required", body = ErrorBody)))]
pub async fn add(
    _: Operator,
    State(state): State<AppState>,
    ApiJson(spec): ApiJson<ClientSpec>,
) -> Result<(StatusCode, Json<Registration>), ApiError> {
    let registered = state.oidc.clients().add(spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(Registration {
            client_id: registered.client.id.clone(),
            client_secret: registered.secret.map(|s| s.expose().to_owned()),
            client: registered.client.into(),
        }),
    ))
}

/// Removes an application with its consents, grants and tokens.
#[utoipa::path(delete, path = "/api/v1/clients/{clientId}", tag = "provider", security(("operator" = [])),
    params(("clientId" = String, Path, description = "the client id")),
    responses((status = 204, description = "removed"), (status = 404, description = "client-not-found", body = ErrorBody)))]
pub async fn remove(
    _: Operator,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.oidc.clients().remove(&client_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "client-not-found",
            format!("no client is registered as {client_id:?}"),
        ))
    }
}

/// `POST /keys/rotate`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Rotated {
    /// The new signing keys' ids (one per algorithm).
    pub kids: Vec<String>,
}

/// Adds a new signing key per algorithm; the old ones stay published until what they
/// signed has expired. Other instances pick the new keys up within 30 s.
#[utoipa::path(post, path = "/api/v1/keys/rotate", tag = "provider", security(("operator" = [])),
    responses((status = 200, body = Rotated), (status = 401, description = "operator-token-required", body = ErrorBody)))]
pub async fn rotate_keys(_: Operator, State(state): State<AppState>) -> Result<Json<Rotated>, ApiError> {
    Ok(Json(Rotated { kids: state.oidc.keys().rotate().await? }))
}
