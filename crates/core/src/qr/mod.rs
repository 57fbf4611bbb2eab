//! Handoff QR approval: the desktop shows a QR that holds only a URL on our origin with a
//! random token; a phone that is signed in claims it (first scan only), sees who is asking,
//! picks the number the desktop shows and approves with a fresh passkey verification; the
//! desktop, holding the redemption secret in an `HttpOnly; SameSite=Strict` cookie, redeems
//! the approval for a session. Every step is one compare-and-set in storage, so two phones,
//! two approvals or two redemptions can never both win, on any number of instances.

mod model;
mod service;

pub use model::{QrAttempt, QrState, Requester};
pub use service::{ClaimView, FarApartPolicy, NewQr, PhoneSession, QrConfig, QrService};
