//! Handoff's domain: who the users are, their passkeys and where each one lives, the
//! ceremonies that create and use them, sessions, and the storage traits a backend
//! implements. Nothing here knows about HTTP or SQL: the server crate turns requests into
//! calls on [`passkeys::PasskeyService`], and the store crate implements [`storage`].

pub mod clock;
pub mod decision;
pub mod device;
pub mod domain;
pub mod error;
pub mod geo;
pub mod intelligence;
pub mod observe;
pub mod oidc;
pub mod passkeys;
pub mod provider;
pub mod qr;
pub mod recovery;
pub mod storage;
pub mod webhooks;

pub use error::{DomainError, ErrorCode};
