//! What the workspace's test suites share; a dev-dependency only, nothing ships with it.
//!
//! * [`eventually`] ([`poll`]): wait for a condition with a deadline, by polling;
//! * [`require`]: tests that need root, HAProxy, iproute2...: skipped where a piece is
//!   missing, failed under `CI=true`;
//! * [`fixtures`]: model objects as a tenant creates them, for the store, flow and worker
//!   suites to adjust where a test needs other values;
//! * [`rbac`]: Octavia's default policy as persona × route → allowed or denied;
//! * [`TestStore`] and [`engines`] ([`store`]): migrated throwaway stores on SQLite and, when
//!   `OCTAVIA_TEST_PG_URL` names a server, PostgreSQL, built on octavia-db's public API;
//! * [`keystone`]: an admin client of the run's real Keystone (projects, users, roles, tokens,
//!   catalog endpoints), for the tests of token validation.
//!
//! Features `fixtures`, `store`, `rbac` and `keystone` (all default) bring those modules and
//! what they need; without them only [`eventually`] remains (the agent's tests use it so, with
//! no controller crate; the render golden tests take `fixtures` alone, with no database).

pub mod poll;
pub mod require;

#[cfg(feature = "fixtures")]
pub mod fixtures;
#[cfg(feature = "keystone")]
pub mod keystone;
#[cfg(feature = "rbac")]
pub mod rbac;
#[cfg(feature = "store")]
pub mod store;

pub use poll::{describe, eventually};
#[cfg(feature = "store")]
pub use store::{engines, TestStore, PG_URL_ENV};
