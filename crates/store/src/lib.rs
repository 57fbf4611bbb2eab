//! SQLite and PostgreSQL storage for Handoff: the storage traits of `handoff_core::storage`
//! implemented once, over one small executor (`sql/`). SQLite (the embedded default, a file
//! in WAL mode) runs on rusqlite only; PostgreSQL (for several instances sharing one
//! database) on sqlx's `PgPool` only. Each module below holds one part of the schema and
//! writes its statements once for both dialects; `sql/mod.rs` says which method runs what
//! where.

mod accounts;
mod ceremonies;
mod db;
mod decisions;
mod device;
mod journeys;
mod oidc;
mod qr;
mod rate;
mod recovery;
mod retention;
mod rollups;
mod security;
mod sessions;
mod sql;
mod webhooks;

pub use db::{Backend, Database, StoreError};
pub use sql::{Listener, Notice};
