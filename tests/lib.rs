//! The software authenticator shared by the integration tests (`it/`) and the benchmarks
//! (`bench/decision`, `bench/qr`), so there is one copy of the glue around 1Password's
//! `passkey` crates. It is test tooling: a failure to sign is a test failure, so it panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod softkey;

pub use softkey::SoftKey;
