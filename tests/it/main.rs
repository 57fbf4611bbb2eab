//! Handoff's integration tests: one binary, the real server on port 0 over SQLite and
//! PostgreSQL, passkeys made and used by a software authenticator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod abuse;
mod accuracy;
mod algorithms;
mod bad_input;
mod dashboard;
mod decisions;
mod device;
mod enumeration;
mod events;
mod funnels;
mod journal;
mod journeys;
mod metrics;
mod oidc;
mod passkeys;
mod qr;
mod recovery;
mod retention;
mod sessions;
mod shared_postgres;
mod step_up;
mod storage;
mod upgrade;
mod webhooks;
