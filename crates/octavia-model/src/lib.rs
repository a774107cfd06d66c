//! Pure domain model of octavia-rs: ids, entities, enums and status rules.
//!
//! This crate does no I/O. Every other crate speaks in these types; the wire
//! format lives in `octavia-api-types`, the SQL in `octavia-db`.

pub mod entity;
pub mod enums;
pub mod graph;
pub mod health;
pub mod housekeeping;
pub mod id;
pub mod job;
pub mod metadata;

pub use entity::*;
pub use enums::*;
pub use graph::*;
pub use id::*;
pub use job::*;
pub use metadata::{AvailabilityZoneMetadata, FlavorMetadata, MetadataError};

/// Timestamps are UTC without a zone, as Octavia stores them.
pub type Timestamp = chrono::NaiveDateTime;

/// The current time, truncated to microseconds so it round-trips through both engines.
pub fn now() -> Timestamp {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}
