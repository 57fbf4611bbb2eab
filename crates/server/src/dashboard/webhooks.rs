//! The dashboard's webhooks page: each endpoint's health and its recent deliveries (status,
//! attempts, next try, last error), with a button that sends one again. The button is a
//! form post, refused unless it names this server's origin (as the dashboard's other
//! forms), and it needs the operator's dashboard session like every page.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use handoff_core::clock::rfc3339;
use serde::{Deserialize, Serialize};

use super::{Operator, auth, render};
use crate::state::AppState;

/// Recent deliveries shown per endpoint.
const RECENT: u32 = 25;

#[derive(Serialize)]
struct DeliveryRow {
    id: i64,
    event_type: String,
    message_id: String,
    created_at: String,
    state: String,
    state_class: &'static str,
    last_status: Option<i64>,
    attempts: i64,
    next_attempt_at: Option<String>,
    last_error: Option<String>,
}

#[derive(Serialize)]
struct EndpointRow {
    id: String,
    url: String,
    source: String,
    events: Vec<&'static str>,
    failing_since: Option<String>,
    consecutive_failures: i64,
    deliveries: Vec<DeliveryRow>,
}

#[derive(Serialize)]
struct Page {
    endpoints: Vec<EndpointRow>,
    notice: Option<String>,
}

/// `?redelivered=ID` after a redelivery.
#[derive(Deserialize)]
pub struct Shown {
    redelivered: Option<i64>,
}

/// `GET /dashboard/webhooks`.
pub async fn page(_: Operator, State(state): State<AppState>, Query(shown): Query<Shown>) -> Response {
    let endpoints = match state.webhooks.list().await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "reading webhook endpoints for the dashboard failed");
            return render::message(
                StatusCode::INTERNAL_SERVER_ERROR,
                true,
                "Webhooks",
                "The endpoints could not be read.",
            );
        }
    };
    let mut rows = Vec::with_capacity(endpoints.len());
    for e in endpoints {
        let deliveries = state.webhooks.deliveries(Some(&e.id), RECENT).await.unwrap_or_default();
        rows.push(EndpointRow {
            deliveries: deliveries
                .into_iter()
                .map(|d| DeliveryRow {
                    state_class: match d.state.as_str() {
                        "delivered" => "success",
                        "dead" => "failed",
                        _ => "abandoned",
                    },
                    id: d.id,
                    event_type: d.event_type,
                    message_id: d.message_id,
                    created_at: rfc3339(d.created_at),
                    state: d.state,
                    last_status: d.last_status,
                    attempts: d.attempts,
                    next_attempt_at: d.next_attempt_at.map(rfc3339),
                    last_error: d.last_error,
                })
                .collect(),
            id: e.id,
            url: e.url,
            source: e.source,
            events: e.events.iter().map(|t| t.as_str()).collect(),
            failing_since: e.failing_since.map(rfc3339),
            consecutive_failures: e.consecutive_failures,
        });
    }
    let notice = shown.redelivered.map(|id| format!("Delivery {id} is queued to be sent again now."));
    render::page(StatusCode::OK, "webhooks.html", "Webhooks", true, &Page { endpoints: rows, notice })
}

/// `POST /dashboard/webhooks/deliveries/{id}/redeliver`.
pub async fn redeliver(
    _: Operator,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if !auth::same_origin(&headers, &state.http.origins) {
        return render::message(
            StatusCode::FORBIDDEN,
            true,
            "Redelivery refused",
            "This request came from a page on another site, so it was refused (cross-site request forgery \
             protection). Use the button on the dashboard's webhooks page.",
        );
    }
    match state.webhooks.redeliver(id).await {
        Ok(true) => render::see_other(&format!("/dashboard/webhooks?redelivered={id}")),
        Ok(false) => render::message(StatusCode::NOT_FOUND, true, "Webhooks", "There is no such delivery."),
        Err(e) => {
            tracing::error!(error = %e, "redelivering a webhook failed");
            render::message(StatusCode::INTERNAL_SERVER_ERROR, true, "Webhooks", "The delivery could not be queued.")
        }
    }
}
