//! The OpenAPI document, generated from the handlers' annotations and the DTO types, so
//! it cannot drift from the code. Served at `/api/v1/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use handoff_core::observe::views;
use utoipa::OpenApi;

use crate::api::{
    clients, device, dto, events, funnels, insights, journeys, login, passkeys, qr, recovery, session, webhooks,
};
use crate::error::{ErrorBody, ErrorDetail};
use crate::state::AppState;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Handoff API", version = "1",
         description = "Passkey sign-in with cross-device handoff and journey observability. Errors are {\"error\": {\"code\", \"message\"}}."),
    paths(passkeys::start, passkeys::finish, passkeys::list, passkeys::remove, passkeys::skip_append,
          login::start, login::finish, login::failure, session::current, session::sign_out, session::list, session::end, session::end_all,
          qr::create, qr::status, qr::events, qr::redeem, qr::rotate, qr::cancel, qr::claim, qr::approve, qr::deny, device::claim, device::approve, device::deny, recovery::email_start, recovery::email_finish, recovery::email_delivery, recovery::make_codes, recovery::codes_left, recovery::redeem_code, recovery::make_link, events::ingest,
          journeys::one, journeys::search, funnels::funnel, insights::insights,
          session::proof, session::verify_proof, clients::list, clients::add, clients::remove, clients::rotate_keys,
          webhooks::list, webhooks::add, webhooks::remove, webhooks::deliveries, webhooks::redeliver),
    components(schemas(ErrorBody, ErrorDetail, dto::RegistrationStartRequest, dto::CeremonyResponse, dto::FinishRequest,
        dto::RegistrationFinishResponse, dto::ProviderView, dto::ClientEnvironment, dto::LoginStartRequest,
        dto::LoginStartResponse, dto::LoginFinishResponse, dto::LoginFailureRequest, dto::UserAgentData,
        handoff_core::passkeys::AppendOffer, qr::QrCreateRequest, qr::QrCodeResponse, qr::QrStatusResponse,
        session::SessionView, session::SessionList, session::EndedSessions, handoff_core::passkeys::SessionMethod, events::EventBatch, events::EventBatchResult, events::RejectedEvent, qr::QrTokenRequest, qr::QrClaimResponse, qr::RequesterView, qr::AccountView, handoff_core::qr::QrState, dto::PasskeyView, dto::PasskeyList, dto::SessionResponse,
        views::JourneyView, views::JourneyPage, views::EventView, views::Segments, views::SegmentView,
        handoff_core::observe::Phase, handoff_core::observe::RootCause, handoff_core::observe::Outcome,
        handoff_core::observe::Basis, handoff_core::observe::CauseClass,
        views::FunnelResponse, views::FunnelStep, views::DropOff, views::SegmentFunnel,
        views::InsightList, handoff_core::observe::insights::Insight,
        session::ProofRequest, session::ProofResponse, session::VerifyProofRequest, session::VerifiedProof,
        clients::ClientView, clients::ClientList, clients::Registration, clients::Rotated, handoff_core::oidc::ClientSpec,
        handoff_core::oidc::SigningAlg, handoff_core::oidc::model::ClientSource,
        device::DeviceCodeRequest, device::DeviceClaimResponse, device::DeviceRequesterView, device::DeviceClientView,
        device::DeviceStateResponse, handoff_core::oidc::device_model::DeviceState,
        recovery::EmailCodeStart, recovery::EmailCodeStarted, recovery::EmailDelivery, recovery::EmailCodeFinish, recovery::RecoverySignedIn,
        recovery::RecoveryCodes, recovery::CodesLeft, recovery::RedeemCode, recovery::MakeLink, recovery::LinkMade,
        webhooks::EndpointView, webhooks::EndpointList, webhooks::Subscription, webhooks::DeliveryList,
        handoff_core::webhooks::EndpointSpec, handoff_core::webhooks::EventType, handoff_core::storage::Delivery)),
    modifiers(&OperatorAuth),
    tags((name = "passkeys", description = "Registration and the passkey record"),
         (name = "login", description = "Sign-in ceremonies and the method decision"),
         (name = "session", description = "The signed-in user"),
         (name = "qr", description = "Handoff QR approval: a signed-in phone approves a desktop sign-in"),
         (name = "device", description = "Device sign-in (RFC 8628): a signed-in browser confirms the code a TV or terminal shows; the device's own endpoints are in the OIDC discovery document"),
         (name = "recovery", description = "Nobody locked out: email codes, recovery codes and operator recovery links make recovery sessions"),
         (name = "events", description = "Product events from browsers and phones"),
         (name = "journeys", description = "Sign-in journeys with their diagnosis (operator token)"),
         (name = "provider", description = "The identity provider's clients and keys (operator token); the OIDC endpoints themselves are in /.well-known/openid-configuration"),
         (name = "webhooks", description = "Standard Webhooks subscriptions and their deliveries (operator token)"))
)]
pub struct ApiDoc;

/// The operator token as a bearer security scheme named `operator`.
struct OperatorAuth;

impl utoipa::Modify for OperatorAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("operator", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// `GET /openapi.json` (nested under `/api/v1`).
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
