//! The [`Store`] handle and its repository methods (signatures fixed; see each doc).

use std::sync::Arc;
use std::time::Duration;

use octavia_model::*;

use crate::db::{args, id as sid, DbPool};
use crate::{jobs, read, rows, settle, write};
use crate::{DbError, ListQuery};

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

/// A load balancer with everything below it, for the status tree and flows.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancerTree {
    pub load_balancer: LoadBalancer,
    pub listeners: Vec<Listener>,
    pub pools: Vec<Pool>,
    pub members: Vec<Member>,
    pub health_monitors: Vec<HealthMonitor>,
    pub l7policies: Vec<L7Policy>,
    pub l7rules: Vec<L7Rule>,
}

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
    /// Jobs that build amphorae (load balancer create, failovers) running at once, whatever
    /// their class (`[haproxy_amphora] build_rate_limit`). A free build slot goes to the most
    /// urgent waiting build: automatic failover, then tenant create, then operator failover.
    pub builds: Option<u32>,
}

/// Job kinds that build amphorae (counted against [`ClassCaps::builds`]).
pub const BUILD_JOB_KINDS: [&str; 3] = [
    "create_load_balancer",
    "failover_load_balancer",
    "failover_amphora",
];

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
    fn must<T>(&self, v: Option<T>, kind: &'static str, id: impl ToString) -> Result<T> {
        v.ok_or_else(|| write::not_found(kind, id))
    }

    // ---------------------------------------------------------------- lifecycle

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

    // ---------------------------------------------------------------- load balancers

    pub async fn get_load_balancer(&self, id: LoadBalancerId) -> Result<Option<LoadBalancer>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let v = read::lbs(
            &mut c,
            "x.id = $1 AND x.provisioning_status <> 'DELETED'",
            args![sid(id)],
        )
        .await?;
        Ok(v.into_iter().next())
    }
    /// Excludes DELETED load balancers.
    pub async fn list_load_balancers(&self, q: &ListQuery) -> Result<Vec<LoadBalancer>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        read::list_lbs(&mut c, q, vec![]).await
    }
    /// Insert `lb` (PENDING_CREATE/OFFLINE) and its `create_load_balancer` job (class
    /// Tenant). Quota checked. Returns the stored object (derived fields filled).
    pub async fn create_load_balancer(&self, lb: &LoadBalancer) -> Result<(LoadBalancer, JobId)> {
        write::create_load_balancer(self, lb).await
    }
    /// Write the new value of `lb` and move it ACTIVE → PENDING_UPDATE (else Conflict
    /// "Invalid state X of loadbalancer resource ID"), insert the job. `expected_updated_at`
    /// is the `updated_at` the caller read; a different value → Conflict.
    pub async fn update_load_balancer(
        &self,
        lb: &LoadBalancer,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(LoadBalancer, JobId)> {
        let job = write::update_load_balancer(self, lb, expected_updated_at).await?;
        Ok((
            self.must(self.get_load_balancer(lb.id).await?, "Load Balancer", lb.id)?,
            job,
        ))
    }
    /// ACTIVE/ERROR → PENDING_DELETE and the delete job. Children without `cascade` →
    /// `DbError::Invalid`; with `cascade` every child goes PENDING_DELETE too.
    pub async fn delete_load_balancer(&self, id: LoadBalancerId, cascade: bool) -> Result<JobId> {
        write::delete_load_balancer(self, id, cascade).await
    }
    /// The load balancer and everything below it (excluding nothing; flows filter).
    pub async fn load_balancer_tree(&self, id: LoadBalancerId) -> Result<Option<LoadBalancerTree>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        read::tree(&mut c, id).await
    }
    /// Sum of listener statistics over the LB's listeners (active connections only from
    /// ALLOCATED amphorae).
    pub async fn load_balancer_stats(&self, id: LoadBalancerId) -> Result<ListenerStatistics> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let n = c
            .count(
                "SELECT COUNT(*) FROM load_balancer WHERE id = $1 AND provisioning_status <> 'DELETED'",
                args![sid(id)],
            )
            .await?;
        if n == 0 {
            return Err(write::not_found("Load Balancer", id));
        }
        read::stats(&mut c, "l.load_balancer_id = $1", id).await
    }

    // ---------------------------------------------------------------- listeners

    pub async fn get_listener(&self, id: ListenerId) -> Result<Option<Listener>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        Ok(read::listeners(&mut c, "x.id = $1", args![sid(id)])
            .await?
            .into_iter()
            .next())
    }
    pub async fn list_listeners(&self, q: &ListQuery) -> Result<Vec<Listener>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        read::list_listeners(&mut c, q, vec![]).await
    }
    /// LB must exist (NotFound) and be ACTIVE (Conflict "Load Balancer ID is immutable and
    /// cannot be updated."); port conflict in the same port space → Conflict; default
    /// pool must exist on the same LB, be compatible, and not be another listener's default
    /// (Conflict). LB → PENDING_UPDATE, listener PENDING_CREATE, job.
    pub async fn create_listener(&self, listener: &Listener) -> Result<(Listener, JobId)> {
        let job = write::create_listener(self, listener).await?;
        Ok((
            self.must(
                self.get_listener(listener.id).await?,
                "Listener",
                listener.id,
            )?,
            job,
        ))
    }
    /// LB and listener → PENDING_UPDATE; new value written; job.
    pub async fn update_listener(
        &self,
        listener: &Listener,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(Listener, JobId)> {
        let job = write::update_listener(self, listener, expected_updated_at).await?;
        Ok((
            self.must(
                self.get_listener(listener.id).await?,
                "Listener",
                listener.id,
            )?,
            job,
        ))
    }
    /// LB → PENDING_UPDATE, listener → PENDING_DELETE, job.
    pub async fn delete_listener(&self, id: ListenerId) -> Result<JobId> {
        write::delete_listener(self, id).await
    }
    pub async fn listener_stats(&self, id: ListenerId) -> Result<ListenerStatistics> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let n = c
            .count(
                "SELECT COUNT(*) FROM listener WHERE id = $1",
                args![sid(id)],
            )
            .await?;
        if n == 0 {
            return Err(write::not_found("Listener", id));
        }
        read::stats(&mut c, "l.id = $1", id).await
    }

    // ---------------------------------------------------------------- pools

    pub async fn get_pool(&self, id: PoolId) -> Result<Option<Pool>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        Ok(read::pools(&mut c, "x.id = $1", args![sid(id)])
            .await?
            .into_iter()
            .next())
    }
    pub async fn list_pools(&self, q: &ListQuery) -> Result<Vec<Pool>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        read::list_pools(&mut c, q, vec![]).await
    }
    /// `listener_id`: also becomes that listener's default pool (Conflict if it has one).
    /// LB + affected listeners → PENDING_UPDATE, pool PENDING_CREATE, job.
    pub async fn create_pool(
        &self,
        pool: &Pool,
        listener_id: Option<ListenerId>,
    ) -> Result<(Pool, JobId)> {
        let job = write::create_pool(self, pool, listener_id).await?;
        Ok((
            self.must(self.get_pool(pool.id).await?, "Pool", pool.id)?,
            job,
        ))
    }
    pub async fn update_pool(
        &self,
        pool: &Pool,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(Pool, JobId)> {
        let job = write::update_pool(self, pool, expected_updated_at).await?;
        Ok((
            self.must(self.get_pool(pool.id).await?, "Pool", pool.id)?,
            job,
        ))
    }
    /// Referenced by an L7 policy → Conflict.
    pub async fn delete_pool(&self, id: PoolId) -> Result<JobId> {
        write::delete_pool(self, id).await
    }

    // ---------------------------------------------------------------- members

    pub async fn get_member(&self, id: MemberId) -> Result<Option<Member>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        Ok(read::members(&mut c, "x.id = $1", args![sid(id)])
            .await?
            .into_iter()
            .next())
    }
    pub async fn list_members(&self, pool_id: PoolId, q: &ListQuery) -> Result<Vec<Member>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        if c.count(
            "SELECT COUNT(*) FROM pool WHERE id = $1",
            args![sid(pool_id)],
        )
        .await?
            == 0
        {
            return Err(write::not_found("Pool", pool_id));
        }
        read::list_members(&mut c, q, vec![("x.pool_id", sid(pool_id))]).await
    }
    /// Pool must be ACTIVE (Conflict) → PENDING_UPDATE with LB and listeners; duplicate
    /// (pool, address, port) → Conflict; quota. Member PENDING_CREATE, job.
    pub async fn create_member(&self, member: &Member) -> Result<(Member, JobId)> {
        let job = write::create_member(self, member).await?;
        Ok((
            self.must(self.get_member(member.id).await?, "Member", member.id)?,
            job,
        ))
    }
    pub async fn update_member(
        &self,
        member: &Member,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(Member, JobId)> {
        let job = write::update_member(self, member, expected_updated_at).await?;
        Ok((
            self.must(self.get_member(member.id).await?, "Member", member.id)?,
            job,
        ))
    }
    pub async fn delete_member(&self, id: MemberId) -> Result<JobId> {
        write::delete_member(self, id).await
    }
    /// One transaction and one `batch_update_member` job for the whole batch.
    pub async fn batch_update_members(
        &self,
        pool_id: PoolId,
        change: &MemberBatchChange,
    ) -> Result<JobId> {
        write::batch_update_members(self, pool_id, change).await
    }

    // ---------------------------------------------------------------- health monitors

    pub async fn get_health_monitor(&self, id: HealthMonitorId) -> Result<Option<HealthMonitor>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        Ok(read::hms(&mut c, "x.id = $1", args![sid(id)])
            .await?
            .into_iter()
            .next())
    }
    pub async fn list_health_monitors(&self, q: &ListQuery) -> Result<Vec<HealthMonitor>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        read::list_hms(&mut c, q, vec![]).await
    }
    /// One per pool (Conflict). Pool ACTIVE → PENDING_UPDATE with LB and listeners.
    pub async fn create_health_monitor(
        &self,
        hm: &HealthMonitor,
    ) -> Result<(HealthMonitor, JobId)> {
        let job = write::create_health_monitor(self, hm).await?;
        Ok((
            self.must(
                self.get_health_monitor(hm.id).await?,
                "Health Monitor",
                hm.id,
            )?,
            job,
        ))
    }
    pub async fn update_health_monitor(
        &self,
        hm: &HealthMonitor,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(HealthMonitor, JobId)> {
        let job = write::update_health_monitor(self, hm, expected_updated_at).await?;
        Ok((
            self.must(
                self.get_health_monitor(hm.id).await?,
                "Health Monitor",
                hm.id,
            )?,
            job,
        ))
    }
    pub async fn delete_health_monitor(&self, id: HealthMonitorId) -> Result<JobId> {
        write::delete_health_monitor(self, id).await
    }

    // ---------------------------------------------------------------- L7 policies and rules

    pub async fn get_l7policy(&self, id: L7PolicyId) -> Result<Option<L7Policy>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        Ok(read::l7policies(&mut c, "x.id = $1", args![sid(id)])
            .await?
            .into_iter()
            .next())
    }
    pub async fn list_l7policies(&self, q: &ListQuery) -> Result<Vec<L7Policy>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        read::list_l7policies(&mut c, q, vec![]).await
    }
    /// Position: `None` or beyond the end = append; positions renumbered 1..n contiguously.
    pub async fn create_l7policy(&self, policy: &L7Policy) -> Result<(L7Policy, JobId)> {
        let job = write::create_l7policy(self, policy).await?;
        Ok((
            self.must(self.get_l7policy(policy.id).await?, "L7 Policy", policy.id)?,
            job,
        ))
    }
    pub async fn update_l7policy(
        &self,
        policy: &L7Policy,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(L7Policy, JobId)> {
        let job = write::update_l7policy(self, policy, expected_updated_at).await?;
        Ok((
            self.must(self.get_l7policy(policy.id).await?, "L7 Policy", policy.id)?,
            job,
        ))
    }
    pub async fn delete_l7policy(&self, id: L7PolicyId) -> Result<JobId> {
        write::delete_l7policy(self, id).await
    }
    pub async fn get_l7rule(&self, id: L7RuleId) -> Result<Option<L7Rule>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        Ok(read::l7rules(&mut c, "x.id = $1", args![sid(id)])
            .await?
            .into_iter()
            .next())
    }
    pub async fn list_l7rules(&self, policy_id: L7PolicyId, q: &ListQuery) -> Result<Vec<L7Rule>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        if c.count(
            "SELECT COUNT(*) FROM l7policy WHERE id = $1",
            args![sid(policy_id)],
        )
        .await?
            == 0
        {
            return Err(write::not_found("L7 Policy", policy_id));
        }
        read::list_l7rules(&mut c, q, vec![("x.l7policy_id", sid(policy_id))]).await
    }
    /// Policy must be ACTIVE (Conflict); at most 50 rules per policy (Conflict).
    pub async fn create_l7rule(&self, rule: &L7Rule) -> Result<(L7Rule, JobId)> {
        let job = write::create_l7rule(self, rule).await?;
        Ok((
            self.must(self.get_l7rule(rule.id).await?, "L7 Rule", rule.id)?,
            job,
        ))
    }
    pub async fn update_l7rule(
        &self,
        rule: &L7Rule,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(L7Rule, JobId)> {
        let job = write::update_l7rule(self, rule, expected_updated_at).await?;
        Ok((
            self.must(self.get_l7rule(rule.id).await?, "L7 Rule", rule.id)?,
            job,
        ))
    }
    pub async fn delete_l7rule(&self, id: L7RuleId) -> Result<JobId> {
        write::delete_l7rule(self, id).await
    }

    // ---------------------------------------------------------------- quotas

    /// The stored row (fields `None` where the default applies).
    pub async fn get_quota(&self, project_id: &str) -> Result<Option<Quota>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let row: Option<rows::QuotaRow> = c
            .fetch_optional(
                &format!(
                    "SELECT {} FROM quotas x WHERE x.project_id = $1",
                    rows::QUOTA_SELECT
                ),
                args![project_id],
            )
            .await?;
        Ok(row.map(rows::QuotaRow::into_model))
    }
    pub async fn list_quotas(&self, q: &ListQuery) -> Result<Vec<Quota>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let rows: Vec<rows::QuotaRow> =
            crate::list::list_rows(&mut c, &rows::source(None), q, vec![]).await?;
        Ok(rows.into_iter().map(rows::QuotaRow::into_model).collect())
    }
    /// Upsert; returns the stored row.
    pub async fn set_quota(&self, quota: &Quota) -> Result<Quota> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        c.execute(
            "INSERT INTO quotas (project_id, load_balancer, listener, pool, health_monitor, member, \
             l7policy, l7rule) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (project_id) \
             DO UPDATE SET load_balancer = $2, listener = $3, pool = $4, health_monitor = $5, \
             member = $6, l7policy = $7, l7rule = $8",
            args![
                &quota.project_id,
                quota.load_balancer,
                quota.listener,
                quota.pool,
                quota.health_monitor,
                quota.member,
                quota.l7policy,
                quota.l7rule
            ],
        )
        .await?;
        tx.commit().await?;
        let q = self.get_quota(&quota.project_id).await?;
        q.ok_or_else(|| write::not_found("Quota", &quota.project_id))
    }
    /// Reset to defaults (delete the row). NotFound if there was none? No: Octavia
    /// answers 202 either way, so this is idempotent.
    pub async fn delete_quota(&self, project_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        c.execute(
            "DELETE FROM quotas WHERE project_id = $1",
            args![project_id],
        )
        .await?;
        tx.commit().await
    }
    /// The configured defaults.
    pub fn quota_defaults(&self) -> QuotaDefaults {
        self.quota_defaults
    }

    // ---------------------------------------------------------------- amphorae

    pub async fn get_amphora(&self, id: AmphoraId) -> Result<Option<Amphora>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        Ok(read::amphorae(
            &mut c,
            "x.id = $1 AND x.status <> 'DELETED'",
            args![sid(id)],
        )
        .await?
        .into_iter()
        .next())
    }
    /// Delete an ERROR amphora (`DELETE /amphorae/{id}`): PENDING_DELETE and a
    /// `delete_amphora` job (class Operator) in one transaction. Missing/DELETED → NotFound;
    /// any other status → Conflict. Settlement: success → DELETED (health row removed);
    /// failure → ERROR again.
    pub async fn delete_amphora(&self, id: AmphoraId) -> Result<JobId> {
        write::delete_amphora(self, id).await
    }
    /// Push a regenerated agent configuration to an amphora (`PUT /amphorae/{id}/config`):
    /// an `update_amphora` job of class Operator. Missing/DELETED → NotFound. Settlement
    /// changes no status either way (a failed push is logged by the worker).
    pub async fn update_amphora_config(&self, id: AmphoraId) -> Result<JobId> {
        write::update_amphora_config(self, id).await
    }
    /// The amphora row whatever its status, DELETED included (zombie checks).
    pub async fn get_amphora_any(&self, id: AmphoraId) -> Result<Option<Amphora>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        Ok(read::amphorae(&mut c, "x.id = $1", args![sid(id)])
            .await?
            .into_iter()
            .next())
    }
    /// `project_id` in the query filters via the owning load balancer.
    pub async fn list_amphorae(&self, q: &ListQuery) -> Result<Vec<Amphora>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        read::list_amphorae(&mut c, q, vec![]).await
    }
    /// Insert or replace an amphora row (worker/drivers).
    pub async fn save_amphora(&self, amphora: &Amphora) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        read::save_amphora(&mut c, amphora).await?;
        tx.commit().await
    }

    /// Record the VIP the network driver allocated for a load balancer (worker). Touches
    /// no status: the job that allocated it holds the load balancer's lock.
    pub async fn set_load_balancer_vip(&self, id: LoadBalancerId, vip: &Vip) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let n = c
            .execute(
                "UPDATE vip SET ip_address = $1, port_id = $2, subnet_id = $3, network_id = $4, \
                 qos_policy_id = $5 WHERE load_balancer_id = $6",
                args![
                    &vip.ip_address,
                    &vip.port_id,
                    &vip.subnet_id,
                    &vip.network_id,
                    &vip.qos_policy_id,
                    sid(id)
                ],
            )
            .await?;
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "Load Balancer",
                id: id.to_string(),
            });
        }
        tx.commit().await
    }

    /// Fail over a load balancer (`PUT /loadbalancers/{id}/failover`): ACTIVE/ERROR →
    /// PENDING_UPDATE (else Conflict "Invalid state X of loadbalancer resource ID") and a
    /// `failover_load_balancer` job of `class`, in one transaction. Settlement: success →
    /// LB and sub-objects ACTIVE; failure → LB ERROR.
    pub async fn failover_load_balancer(
        &self,
        id: LoadBalancerId,
        class: JobClass,
    ) -> Result<JobId> {
        write::failover_load_balancer(self, id, class).await
    }

    /// Fail over an amphora (`PUT /amphorae/{id}/failover`, health manager): its load
    /// balancer (if any) must be ACTIVE or ERROR (else Conflict "Invalid state X of
    /// loadbalancer resource ID") and goes PENDING_UPDATE; a `failover_amphora` job of `class`
    /// (`spec.amphora_id` set) in the same transaction. Missing/DELETED amphora → NotFound.
    /// Settlement: success → LB ACTIVE; failure → amphora ERROR, LB ACTIVE.
    pub async fn failover_amphora(&self, id: AmphoraId, class: JobClass) -> Result<JobId> {
        write::failover_amphora(self, id, class).await
    }

    /// Upsert the counters of one listener on one amphora (health manager stats).
    pub async fn save_listener_statistics(
        &self,
        listener_id: ListenerId,
        amphora_id: AmphoraId,
        stats: &ListenerStatistics,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        c.execute(
            "INSERT INTO listener_statistics (listener_id, amphora_id, bytes_in, bytes_out, \
             active_connections, total_connections, request_errors) VALUES ($1, $2, $3, $4, $5, \
             $6, $7) ON CONFLICT (listener_id, amphora_id) DO UPDATE SET bytes_in = $3, \
             bytes_out = $4, active_connections = $5, total_connections = $6, request_errors = $7",
            args![
                sid(listener_id),
                sid(amphora_id),
                stats.bytes_in,
                stats.bytes_out,
                stats.active_connections,
                stats.total_connections,
                stats.request_errors
            ],
        )
        .await?;
        tx.commit().await
    }

    // ---------------------------------------------------------------- job queue

    /// Claim the most urgent job (lowest class priority, then oldest) that is QUEUED or
    /// RUNNING with an expired lease, skipping classes at their cap. PostgreSQL uses
    /// `FOR UPDATE SKIP LOCKED`. Sets owner, lease expiry, attempt+1, state RUNNING.
    pub async fn claim_job(
        &self,
        worker_id: &str,
        lease: Duration,
        caps: &ClassCaps,
    ) -> Result<Option<ClaimedJob>> {
        jobs::claim(self, worker_id, lease, caps).await
    }
    /// Extend the lease; `false` if this worker no longer owns the job.
    pub async fn renew_lease(&self, id: JobId, worker_id: &str, lease: Duration) -> Result<bool> {
        jobs::renew(self, id, worker_id, lease).await
    }
    /// Append `step` to the completed steps (owner-checked; `false` = lease lost).
    pub async fn record_step_done(&self, id: JobId, worker_id: &str, step: &str) -> Result<bool> {
        jobs::record_step(self, id, worker_id, step, "completed_steps").await
    }
    /// Append `step` to the reverted steps (owner-checked).
    pub async fn record_step_reverted(
        &self,
        id: JobId,
        worker_id: &str,
        step: &str,
    ) -> Result<bool> {
        jobs::record_step(self, id, worker_id, step, "reverted_steps").await
    }
    /// Finish: DONE, or FAILED with the error. Owner-checked.
    pub async fn finish_job(
        &self,
        id: JobId,
        worker_id: &str,
        state: JobState,
        error: Option<&str>,
    ) -> Result<bool> {
        jobs::finish(self, id, worker_id, state, error).await
    }
    /// End the job the way its flow ended and settle its objects (§2.4) in one
    /// transaction: `error` `None` → DONE and [`Store::settle_success`]; `Some` → FAILED
    /// with the error and [`Store::settle_failure`]. Owner-checked: `false`, with nothing
    /// written, when this worker no longer owns the job.
    pub async fn complete_job(
        &self,
        id: JobId,
        worker_id: &str,
        spec: &JobSpec,
        error: Option<&str>,
    ) -> Result<bool> {
        jobs::complete(self, id, worker_id, spec, error).await
    }
    pub async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>> {
        jobs::get(self, id).await
    }
    /// Jobs that lock `load_balancer` (or every job), oldest first: operators and tests
    /// follow a load balancer's history through them.
    pub async fn list_jobs(&self, load_balancer: Option<LoadBalancerId>) -> Result<Vec<JobRecord>> {
        jobs::list(self, load_balancer).await
    }
    /// Insert a job outside any object write (health manager, operator commands).
    pub async fn enqueue_job(&self, job: &NewJob) -> Result<JobId> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let id = write::insert_job(&mut c, job.class, &job.spec).await?;
        tx.commit().await?;
        self.notify.notify_waiters();
        Ok(id)
    }
    /// Count of jobs by (class, state), for metrics.
    pub async fn job_counts(&self) -> Result<Vec<(JobClass, String, JobState, i64)>> {
        jobs::counts(self).await
    }

    // ---------------------------------------------------------------- settlement (worker)

    /// A job succeeded (reference §2.4): create/update → target ACTIVE (HM, L7 policy and
    /// rule also operating ONLINE if enabled else OFFLINE); delete → children hard-deleted,
    /// LB soft-deleted (DELETED, cascade removes children); parents in `spec.locks` → ACTIVE.
    /// LB create also marks its sub-objects ACTIVE. HM delete resets members to NO_MONITOR.
    pub async fn settle_success(&self, spec: &JobSpec) -> Result<()> {
        settle::success(self, spec).await
    }
    /// A job failed after reverting: target → ERROR; parents → ACTIVE; for LB-level jobs
    /// (target kind LoadBalancer) the LB → ERROR.
    pub async fn settle_failure(&self, spec: &JobSpec) -> Result<()> {
        settle::failure(self, spec).await
    }
}
