//! Handoff's HTTP layer: configuration, the axum routers of the public API v1, the pages
//! and the SDK asset, the operator dashboard, the error mapping, and the application
//! builder that the `handoff` binary and the integration tests both start.

pub mod admin;
pub mod api;
pub mod client_addr;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod device_login;
pub mod error;
pub mod extract;
pub mod geoip;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod oidc;
pub mod openapi;
pub mod pages;
pub mod recovery_link;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod templates;
pub mod webhooks;
pub mod webhooks_cli;

pub use startup::{Application, router};
