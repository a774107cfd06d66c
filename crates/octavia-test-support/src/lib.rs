//! What the workspace's test suites share; a dev-dependency only, nothing ships with it.
//!
//! * [`eventually`] ([`poll`]): wait for a condition with a deadline, by polling;
//! * [`TestStore`] and [`engines`] ([`store`]): migrated throwaway stores on SQLite and, when
//!   `OCTAVIA_TEST_PG_URL` names a server, PostgreSQL, built on octavia-db's public API.
//!
//! Feature `store` (default) brings that module and what it needs; without it only
//! [`eventually`] remains (the agent's tests use it so, with no controller crate).

pub mod poll;

#[cfg(feature = "store")]
pub mod store;

pub use poll::{describe, eventually};
#[cfg(feature = "store")]
pub use store::{engines, TestStore, PG_URL_ENV};
