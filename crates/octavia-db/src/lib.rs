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
//! * Job queue: claim with lease, renew, record step progress, finish.
//! * Settlement: `complete_job` ends a job and settles its objects in one transaction
//!   (what the worker calls); `settle_success` / `settle_failure` settle on their own.
//! * Failovers (`failover_load_balancer`, `failover_amphora`) lock like tenant writes;
//!   `save_listener_statistics` feeds `load_balancer_stats` / `listener_stats`.
//!
//! Layout. `store` is the [`Store`] handle, its options and interface types, and its
//! lifecycle. Every other public method sits in an `impl Store` block next to what it
//! touches: `resources/` holds one module per resource (`load_balancer`, `listener`,
//! `pool`, `member`, `health_monitor`, `l7` for policies and rules, `quota`, `amphora`,
//! and the operator's catalogue: `flavor`, `flavor_profile`, `availability_zone`,
//! `availability_zone_profile`), each with that resource's reads and writes, and `resources/shared` what their writes
//! share (the job transaction, the load balancer and subtree locks, statuses, tags,
//! quota checks, the job insert); `jobs` is the job queue, `settle` settlement, `health`
//! heartbeat batches, `stale` the stale-amphora sweep, `housekeeping` the purges and
//! certificate renewal claims, `heartbeat_key` the heartbeat key ring. Below them: `read` (row loaders and
//! the generic reads), `rows` (row types, derived fields), `list` (list SQL), `schema`
//! (table and parent column of each object kind), `db` (engine dispatch: what differs
//! between the engines is asked of its `Conn`), `connect` (pools, migrations), `pgpool`;
//! `admin` creates and drops whole PostgreSQL databases.

pub mod admin;
mod connect;
mod db;
pub mod error;
pub mod health;
pub mod heartbeat_key;
pub mod housekeeping;
mod jobs;
mod list;
mod pgpool;
pub mod query;
mod read;
mod resources;
mod rotation;
mod rows;
mod schema;
mod settle;
pub mod spares;
pub mod stale;
pub mod store;

pub use error::{DbError, DriverError, RecordKind};
pub use health::{
    AmphoraHealth, FleetMember, HeartbeatOutcome, HeartbeatRecord, ListenerCountMismatch,
};
pub use heartbeat_key::{AmphoraKeyReport, HeartbeatKey, HeartbeatKeyRing, HeartbeatKeyState};
pub use housekeeping::PurgeReport;
pub use query::{
    columns, Column, ColumnType, Filter, FilterValue, ListQuery, SortDir, TagFilter, QUOTA_COLUMNS,
};
pub use resources::l7::MAX_L7RULES_PER_POLICY;
pub use spares::{ReadySpare, SparePass, SparePool, SpareTake};
pub use stale::{StaleSweep, SweepOptions};
pub use store::*;
