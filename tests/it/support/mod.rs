//! Test support: [`TestApp`] starts the real server on port 0 over a temporary SQLite file
//! or a fresh PostgreSQL database and offers one method per endpoint; [`SoftKey`] is a
//! software authenticator (1Password's `passkey` crates) that makes discoverable
//! credentials the way a browser-and-authenticator pair would.

pub mod app;
pub mod receiver;

pub use app::{Backend, TestApp, TestOptions};
pub use handoff_tests::SoftKey;

/// Declares one test per backend from an async body taking a `Backend`.
/// PostgreSQL tests need `HANDOFF_TEST_POSTGRES_URL`; without it they say they were skipped,
/// and fail instead when `HANDOFF_REQUIRE_POSTGRES=1` (as CI sets).
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::support::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::support::app::postgres_url().is_none() {
                    return;
                }
                ($body)($crate::support::Backend::Postgres).await;
            }
        }
    };
}
