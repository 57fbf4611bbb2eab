//! Observability: product events from browsers, phones and the server, the raw material
//! of journeys. This module validates what clients send, one event at a time, so that a
//! bad event is reported by its field and never costs the good ones beside it.

mod ingest;

pub use ingest::{BatchOutcome, Emitter, EventRejection, IngestLimits, parse_batch};
