//! SQLite and PostgreSQL storage for Handoff. Both backends go through sqlx `Any` pools
//! (one for reads, one for writes; see [`Database`]), so each query is written once with
//! `$n` parameters (which SQLite accepts too); only the migrations differ per dialect.
//! SQLite is the embedded default (a file, WAL mode); there, the hot point reads and short
//! writes run inline through rusqlite with the same statement text (`inline.rs`,
//! `writer.rs`). PostgreSQL is for several instances sharing one database; there, the short
//! statements of a sign-in run on connections held out of the pool (`held.rs`).

mod accounts;
mod cells;
mod ceremonies;
mod db;
mod decisions;
mod held;
mod inline;
mod journeys;
mod qr;
mod rate;
mod retention;
mod rollups;
mod security;
mod sessions;
mod writer;

pub use db::{Backend, Database, StoreError};
