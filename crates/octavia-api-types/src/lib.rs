//! Pure Octavia v2 wire types (serde) and request validation.
//!
//! Every request body of the v2 API has a `*Post`/`*Put` type here whose `validate`
//! applies the rules of Octavia's API (reference §1.5) and whose conversion builds or
//! patches the `octavia-model` object; every response has a `*Response` type built from
//! the model. This crate does no I/O: the server (`octavia-api`), clients and tests
//! share it.

pub mod amphora;
pub mod availability_zone;
pub mod common;
pub mod error;
pub mod flavor;
pub mod graph;
pub mod health_monitor;
pub mod l7policy;
pub mod l7rule;
pub mod listener;
pub mod load_balancer;
pub mod member;
pub mod pool;
pub mod provider;
pub mod quota;
pub mod stats;
pub mod status;
pub mod version;

pub use common::{decode_body, IdRef, Link, ValidationSettings};
pub use error::TypesError;
