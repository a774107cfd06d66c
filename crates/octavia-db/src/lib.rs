//! The store: the only crate that speaks SQL.
//!
//! One schema (Octavia's table and column names plus our `job` table), two engines
//! (SQLite in WAL mode, the embedded default; PostgreSQL for several control-plane
//! nodes), one repository layer. Every write the API makes moves objects to
//! `PENDING_*` and inserts the job that will settle them in **one transaction**.
//!
//! INTERFACE CONTRACT (filled in by the store implementation):
//! * `Store::connect("sqlite://path" | "sqlite::memory:" | "postgres://...")`, `Store::migrate()`.
//! * Reads: `get_*`, `list_*` with [`ListQuery`] (filters, tags, sort, limit/marker).
//! * Tenant writes (`create_*`, `update_*`, `delete_*`, `batch_update_members`): apply
//!   the change, take the status locks of reference §2.3 and insert the job, atomically.
//!   A locked (non-ACTIVE) load balancer gives [`DbError::Conflict`].
//! * Job queue (`job` module): claim with lease, renew, record step progress, finish.
//! * Settlement: `complete_job` ends a job and settles its objects in one transaction
//!   (what the worker calls); `settle_success` / `settle_failure` settle on their own.
//! * Failovers (`failover_load_balancer`, `failover_amphora`) lock like tenant writes;
//!   `save_listener_statistics` feeds `load_balancer_stats` / `listener_stats`.
//!
//! Layout: `db` (engine dispatch), `connect` (pools, migrations), `list` (list SQL),
//! `rows` (row types, derived fields), `read`, `write` (locking writes), `jobs`, `settle`.

pub mod admin;
mod connect;
mod db;
pub mod error;
pub mod health;
mod jobs;
mod list;
mod pgpool;
pub mod query;
mod read;
mod rows;
mod settle;
pub mod stale;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod write;

pub use error::DbError;
pub use health::{
    AmphoraHealth, FleetMember, HeartbeatOutcome, HeartbeatRecord, ListenerCountMismatch,
};
pub use query::{
    columns, Column, ColumnType, Filter, FilterValue, ListQuery, SortDir, TagFilter, QUOTA_COLUMNS,
};
pub use stale::{StaleSweep, SweepOptions};
pub use store::*;
pub use write::MAX_L7RULES_PER_POLICY;
