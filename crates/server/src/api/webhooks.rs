//! `/webhooks`: the operator subscribes endpoints to events, sees their deliveries and
//! sends one again (PRODUCT §6.4). The generated `whsec_…` secret is in the subscription's
//! answer only (it is kept to sign, but never listed).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use handoff_core::clock::rfc3339;
use handoff_core::storage::Delivery;
use handoff_core::webhooks::{Endpoint, EndpointSpec, EventType};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Operator};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(add))
        .route("/webhooks/{id}", delete(remove))
        .route("/webhooks/deliveries", get(deliveries))
        .route("/webhooks/deliveries/{id}/redeliver", post(redeliver))
}

/// A subscribed endpoint.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    /// `ep_…` (operator) or `cfg_…` (`[[webhooks]]`).
    pub id: String,
    /// The target URL.
    pub url: String,
    /// The subscribed event types.
    pub events: Vec<EventType>,
    /// `operator` or `config`.
    pub source: String,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// Failed attempts in a row.
    pub consecutive_failures: i64,
    /// Since when it is failing (RFC 3339); absent while healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
}

impl From<Endpoint> for EndpointView {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            events: e.events,
            source: e.source,
            created_at: rfc3339(e.created_at),
            consecutive_failures: e.consecutive_failures,
            failing_since: e.failing_since.map(rfc3339),
        }
    }
}

/// `GET /webhooks`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    /// Oldest first.
    pub webhooks: Vec<EndpointView>,
}

/// `POST /webhooks`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Subscription {
    /// The endpoint's id.
    pub id: String,
    /// `whsec_…`: the signing secret, shown this once.
    pub secret: String,
    /// The endpoint.
    pub endpoint: EndpointView,
}

/// `GET /webhooks/deliveries`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct DeliveryQuery {
    /// Only this endpoint's.
    pub endpoint: Option<String>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<u32>,
}

/// `GET /webhooks/deliveries`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
}

/// The subscribed endpoints.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("operator" = [])),
    responses((status = 200, body = EndpointList), (status = 401, description = "operator-token-required", body = ErrorBody)))]
pub async fn list(_: Operator, State(state): State<AppState>) -> Result<Json<EndpointList>, ApiError> {
    let endpoints = state.webhooks.list().await?;
    Ok(Json(EndpointList { webhooks: endpoints.into_iter().map(EndpointView::from).collect() }))
}

/// Subscribes an endpoint to event types; the answer holds its secret, shown once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("operator" = [])), request_body = EndpointSpec,
    responses((status = 201, body = Subscription),
              (status = 400, description = "invalid-webhook (an unknown event type, or a URL that is not https)", body = ErrorBody),
              (status = 401, description = "operator-token-required", body = ErrorBody)))]
pub async fn add(
    _: Operator,
    State(state): State<AppState>,
    ApiJson(spec): ApiJson<EndpointSpec>,
) -> Result<(StatusCode, Json<Subscription>), ApiError> {
    let endpoint = state.webhooks.add(spec).await?.endpoint;
    Ok((
        StatusCode::CREATED,
        Json(Subscription { id: endpoint.id.clone(), secret: endpoint.secret.clone(), endpoint: endpoint.into() }),
    ))
}

/// Removes an endpoint with its pending and past deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("operator" = [])),
    params(("id" = String, Path, description = "the endpoint id")),
    responses((status = 204, description = "removed"), (status = 404, description = "webhook-not-found", body = ErrorBody)))]
pub async fn remove(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.webhooks.remove(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "webhook-not-found", format!("no webhook endpoint {id:?}")))
    }
}

/// The most recent deliveries (status, attempts, next try, last error), newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/deliveries", tag = "webhooks", security(("operator" = [])),
    params(DeliveryQuery),
    responses((status = 200, body = DeliveryList), (status = 401, description = "operator-token-required", body = ErrorBody)))]
pub async fn deliveries(
    _: Operator,
    State(state): State<AppState>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let deliveries = state.webhooks.deliveries(q.endpoint.as_deref(), q.limit.unwrap_or(50)).await?;
    Ok(Json(DeliveryList { deliveries }))
}

/// Sends a delivery again now, whatever its state (a new 24-hour retry window).
#[utoipa::path(post, path = "/api/v1/webhooks/deliveries/{id}/redeliver", tag = "webhooks", security(("operator" = [])),
    params(("id" = i64, Path, description = "the delivery id")),
    responses((status = 202, description = "queued"), (status = 404, description = "delivery-not-found", body = ErrorBody)))]
pub async fn redeliver(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if state.webhooks.redeliver(id).await? {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "delivery-not-found", format!("no webhook delivery {id}")))
    }
}
