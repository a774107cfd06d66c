//! The [`Store`] handle: its options and the types of its interface, and its lifecycle
//! (connect, migrate, engine, job notifier). The repository methods live with their
//! resource (`resources/*`), the job queue (`jobs`), settlement (`settle`), heartbeats
//! (`health`) and the stale sweep (`stale`), each an `impl Store` block.

use std::sync::Arc;

use octavia_model::*;

use crate::db::DbPool;
use crate::DbError;

/// Result alias of the store.
pub type Result<T> = std::result::Result<T, DbError>;

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Configured quota defaults (`[quotas] default_*_quota`); -1 = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDefaults {
    pub load_balancer: i64,
    pub listener: i64,
    pub pool: i64,
    pub health_monitor: i64,
    pub member: i64,
    pub l7policy: i64,
    pub l7rule: i64,
}

impl Default for QuotaDefaults {
    fn default() -> Self {
        Self {
            load_balancer: -1,
            listener: -1,
            pool: -1,
            health_monitor: -1,
            member: -1,
            l7policy: -1,
            l7rule: -1,
        }
    }
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://PATH` (created if missing), `sqlite::memory:`, or `postgres://...`.
    pub url: String,
    /// Pool size (`[database] max_pool_size`).
    pub max_connections: u32,
    /// Quota defaults used when a project has no row.
    pub quota_defaults: QuotaDefaults,
}

/// A load balancer with everything below it (the model's), as the store reads it.
pub use octavia_model::LoadBalancerTree;

/// The members of one batch update, as computed by the API.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberBatchChange {
    /// New members (status PENDING_CREATE).
    pub create: Vec<Member>,
    /// Changed members (full new value; PENDING_UPDATE).
    pub update: Vec<Member>,
    /// Members to remove (PENDING_DELETE).
    pub delete: Vec<MemberId>,
}

/// A job as a worker holds it after claiming.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub id: JobId,
    pub class: JobClass,
    pub spec: JobSpec,
    /// 1 on the first claim, +1 on every resume after a lost lease.
    pub attempt: i32,
    /// Names of steps already completed by earlier attempts, in order.
    pub completed_steps: Vec<String>,
}

/// A job row, for inspection (tests, CLI, metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub class: JobClass,
    pub kind: String,
    pub state: JobState,
    pub spec: JobSpec,
    pub attempt: i32,
    pub completed_steps: Vec<String>,
    pub reverted_steps: Vec<String>,
    pub lease_owner: Option<String>,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// Per-class caps on concurrently RUNNING jobs (across all workers); `None` = no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassCaps {
    pub failover: Option<u32>,
    pub tenant: Option<u32>,
    pub operator: Option<u32>,
    /// Jobs that build amphorae ([`JobSpec::builds_amphorae`]: load balancer create,
    /// failovers) running at once, whatever their class (`[haproxy_amphora]
    /// build_rate_limit`). A free build slot goes to the most urgent waiting build:
    /// automatic failover, then tenant create, then operator failover.
    pub builds: Option<u32>,
}

/// The store: a pool on one of the two engines.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: DbPool,
    pub(crate) notify: Arc<tokio::sync::Notify>,
    pub(crate) quota_defaults: QuotaDefaults,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine())
            .finish()
    }
}

impl Store {
    /// Connect (SQLite: WAL, foreign keys on, busy timeout; creates the file).
    pub async fn connect(opts: StoreOptions) -> Result<Store> {
        let notify = Arc::new(tokio::sync::Notify::new());
        let pool = crate::connect::open(&opts).await?;
        Ok(Store {
            pool,
            notify,
            quota_defaults: opts.quota_defaults,
        })
    }

    /// Notified (in this process) after every commit that inserted a job, so workers
    /// in the same process wake at once instead of waiting for their next poll.
    pub fn job_notifier(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.notify.clone()
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.pool.engine()
    }

    /// Apply pending migrations (idempotent; safe from several processes).
    pub async fn migrate(&self) -> Result<()> {
        crate::connect::migrate(&self.pool).await
    }

    /// The configured quota defaults.
    pub fn quota_defaults(&self) -> QuotaDefaults {
        self.quota_defaults
    }
}
