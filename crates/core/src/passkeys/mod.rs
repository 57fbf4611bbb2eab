//! Passkeys: registering them, signing in with them, and the record of where each one
//! lives. [`PasskeyService`] runs the WebAuthn ceremonies with `webauthn-rs-core` (its
//! lower-level builders, because the high-level API cannot require discoverable
//! credentials or send `hints`), keeps ceremony state in storage so any instance can finish
//! what another started, and turns every verification failure into a stable code.

mod authdata;
mod decoy;
mod login;
mod model;
mod registration;
mod service;
mod sessions;
mod verify;

pub use authdata::RegistrationFacts;
pub use login::{AppendOffer, LoginFailure, LoginFinish, LoginFinished, LoginStart, LoginStarted};
pub use model::{Account, PasskeyRecord, PasskeySummary, PasskeyUse, SessionMethod, SessionUser};
pub use registration::{RegistrationFinish, RegistrationFinished, RegistrationStart, RegistrationStarted};
pub use service::{AppendPolicy, PasskeyConfig, PasskeyService};
pub use sessions::{NewSession, SessionService};
