//! `POST /events`: product events from browsers and phones. Each event is validated on
//! its own; the good ones are stored in one statement before the 202 is sent (so an
//! accepted event survives a crash right after), the bad ones come back by index with the
//! field that is wrong. Batches are capped in size and rate per IP.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use handoff_core::clock::now_ms;
use handoff_core::observe::{Emitter, IngestLimits, checked_sent_at, parse_batch, parse_client_time};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::extract::{ApiJson, ClientContext};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/events", post(ingest))
}

/// A batch of events.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EventBatch {
    /// Up to 100 events: `{eventId?, journeyId, name, ts, device: "desktop"|"mobile", flow?, attrs?}`.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Box<serde_json::value::RawValue>>,
    /// When the client sent the batch, on its clock (ms since the epoch or RFC 3339). With
    /// it the server measures the client's clock offset exactly instead of estimating it.
    #[serde(rename = "sentAt", default)]
    #[schema(value_type = Option<Object>)]
    pub sent_at: Option<Box<serde_json::value::RawValue>>,
}

/// One refused event.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedEvent {
    /// Its index in the batch.
    pub index: usize,
    /// What is wrong.
    pub error: ErrorDetail,
}

/// What happened to a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventBatchResult {
    /// How many events were valid and are stored; a repeat of a stored `eventId` counts
    /// as accepted (it was already kept) and changes nothing.
    pub accepted: usize,
    /// The refused ones.
    pub rejected: Vec<RejectedEvent>,
}

/// Send product events (PRODUCT.md §4.2). Good events are durable when the 202 arrives.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = EventBatch,
    responses((status = 202, description = "stored; refused events listed by index", body = EventBatchResult),
              (status = 400, description = "malformed body or too many events", body = ErrorBody),
              (status = 413, description = "body-too-large", body = ErrorBody),
              (status = 429, description = "rate-limited (Retry-After)", body = ErrorBody)))]
pub async fn ingest(
    State(state): State<AppState>,
    client: ClientContext,
    ApiJson(batch): ApiJson<EventBatch>,
) -> Result<(StatusCode, Json<EventBatchResult>), ApiError> {
    let ip = client.ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok());
    state.rate.check(&state.limits.events, &crate::limits::ip_key(ip)).await?;
    let limits = IngestLimits::default();
    if batch.events.len() > limits.max_batch {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "batch-too-large",
            format!("{} events in one batch; send at most {}", batch.events.len(), limits.max_batch),
        ));
    }
    let given = batch.sent_at.as_deref().filter(|raw| raw.get() != "null");
    let now = now_ms();
    let sent_at = parse_client_time(given);
    if given.is_some() && sent_at.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-sent-at",
            "sentAt must be milliseconds since the epoch or RFC 3339 text",
        ));
    }
    let sent_at = match sent_at {
        Some(sent) => Some(checked_sent_at(sent, &limits, now).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-sent-at",
                "sentAt must be within a day ahead of the server's clock and seven days behind it",
            )
        })?),
        None => None,
    };
    let outcome = parse_batch(&batch.events, &Emitter { device: client.device, sent_at }, &limits, now);
    let valid = outcome.accepted.len();
    state.metrics.events(valid, outcome.rejected.len());
    state.journal.record(outcome.accepted).await?;
    let rejected = outcome
        .rejected
        .into_iter()
        .map(|r| RejectedEvent {
            index: r.index,
            error: ErrorDetail { code: r.code.to_owned(), message: r.message, tries_left: None },
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(EventBatchResult { accepted: valid, rejected })))
}
