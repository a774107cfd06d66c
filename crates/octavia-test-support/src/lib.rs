//! What the workspace's test suites share; a dev-dependency only, nothing ships with it.
//!
//! * [`TestStore`] and [`engines`] ([`store`]): migrated throwaway stores on SQLite and, when
//!   `OCTAVIA_TEST_PG_URL` names a server, PostgreSQL, built on octavia-db's public API.

pub mod store;

pub use store::{engines, TestStore, PG_URL_ENV};
