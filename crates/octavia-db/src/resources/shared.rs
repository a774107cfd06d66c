//! What every resource's writes share, written once: the write transaction that ends by
//! queueing a job, the load balancer row lock and the subtree locks of reference §2.3,
//! status and tag writes, quota checks and the job insert.
//!
//! A locking write is: [`Store::begin_job`]; lock (`lock_lb*`, `lock_*_subtree`, which
//! check statuses and return the [`LockSet`]; [`Store::begin_update`] does both for an
//! existing object with [`lock_object`]); write the object; end with [`JobTx::created`],
//! [`JobTx::updated`], [`JobTx::tenant`] or [`JobTx::enqueue`], which move the parents the
//! lock set names to PENDING_UPDATE, insert the job and commit (the first two then read the
//! object back). A delete below a load balancer is all of it: [`Store::delete_object`].
//! Settlement sets the same parents back with [`set_parents`].

use std::fmt::Display;
use std::str::FromStr;

use octavia_model::*;

use crate::db::{args, id as sid, Conn, Serial, Tx};
use crate::read::Load;
use crate::rows::{parse, to_json};
use crate::schema::Table;
use crate::{DbError, QuotaDefaults, Result, Store};

/// A write transaction that ends by queueing the job that will settle what it locked.
pub(crate) struct JobTx<'s> {
    store: &'s Store,
    tx: Tx,
}

impl Store {
    /// Begin a write transaction ([`JobTx`]).
    pub(crate) async fn begin_job(&self) -> Result<JobTx<'_>> {
        Ok(JobTx {
            store: self,
            tx: self.pool.begin().await?,
        })
    }
}

impl JobTx<'_> {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        self.tx.conn()
    }

    /// The end of a locking write: [`queue`] the job, commit, wake in-process workers.
    pub(crate) async fn enqueue(mut self, class: JobClass, spec: &JobSpec) -> Result<JobId> {
        let job = queue(&mut self.tx.conn(), class, spec).await?;
        self.commit().await?;
        Ok(job)
    }

    /// The end of a tenant write: [`JobTx::enqueue`] of a class Tenant job doing `action`
    /// to `target` (of `kind`) and holding `locks`.
    pub(crate) async fn tenant(
        self,
        action: Action,
        kind: ObjectKind,
        target: uuid::Uuid,
        locks: LockSet,
    ) -> Result<JobId> {
        let spec = JobSpec::new(action, kind, target, locks);
        self.enqueue(JobClass::Tenant, &spec).await
    }

    /// The end of a tenant create: [`JobTx::tenant`], then the new object read back.
    pub(crate) async fn created<T: Load>(
        self,
        kind: ObjectKind,
        id: uuid::Uuid,
        locks: LockSet,
    ) -> Result<(T, JobId)> {
        let store = self.store;
        let job = self.tenant(Action::Create, kind, id, locks).await?;
        store.read_back(id, job).await
    }

    /// The end of a tenant update: the object PENDING_UPDATE, [`JobTx::tenant`], then the
    /// object read back.
    pub(crate) async fn updated<T: Load>(
        mut self,
        kind: ObjectKind,
        id: uuid::Uuid,
        locks: LockSet,
    ) -> Result<(T, JobId)> {
        set_status(
            &mut self.conn(),
            kind,
            id,
            ProvisioningStatus::PendingUpdate,
        )
        .await?;
        let store = self.store;
        let job = self.tenant(Action::Update, kind, id, locks).await?;
        store.read_back(id, job).await
    }

    /// Commit a transaction that inserted a job, and wake in-process workers.
    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        self.store.notify.notify_waiters();
        Ok(())
    }
}

/// Inside the caller's transaction: the parents `spec.locks` names go PENDING_UPDATE (the
/// load balancer too, unless it is the target, whose status the write sets itself), then
/// the job is inserted.
pub(crate) async fn queue(c: &mut Conn<'_>, class: JobClass, spec: &JobSpec) -> Result<JobId> {
    let lb_too = spec.target_kind != ObjectKind::LoadBalancer;
    set_parents(c, &spec.locks, ProvisioningStatus::PendingUpdate, lb_too).await?;
    insert_job(c, class, spec).await
}

/// Insert a QUEUED job inside the caller's transaction (no status change).
pub(crate) async fn insert_job(c: &mut Conn<'_>, class: JobClass, spec: &JobSpec) -> Result<JobId> {
    insert_job_at(c, class, spec, now()).await
}

/// [`insert_job`] created at `t` (queue order is `created_at`, then id: a caller queueing
/// jobs that must start in a given order gives them increasing times).
pub(crate) async fn insert_job_at(
    c: &mut Conn<'_>,
    class: JobClass,
    spec: &JobSpec,
    t: Timestamp,
) -> Result<JobId> {
    let job_id = JobId::new();
    let lb = spec
        .locks
        .load_balancer_id
        .map(|l| l.to_string())
        .or_else(|| {
            (spec.target_kind == ObjectKind::LoadBalancer).then(|| spec.target_id.to_string())
        });
    c.execute(
        "INSERT INTO job (id, kind, class, priority, state, spec, load_balancer_id, attempt, \
         completed_steps, reverted_steps, created_at, updated_at, rotation) \
         VALUES ($1, $2, $3, $4, 'QUEUED', $5, $6, 0, '[]', '[]', $7, $7, $8)",
        args![
            sid(job_id),
            spec.kind(),
            class.as_str(),
            class.priority(),
            to_json(spec),
            lb,
            t,
            spec.rotation.map(|r| r.batch.to_string())
        ],
    )
    .await?;
    Ok(job_id)
}

// ------------------------------------------------------------------ statuses

/// The object `id` of `kind` → `status` (and `updated_at` now).
pub(crate) async fn set_status(
    c: &mut Conn<'_>,
    kind: ObjectKind,
    id: impl Display,
    status: ProvisioningStatus,
) -> Result<u64> {
    c.execute(
        &format!(
            "UPDATE {} SET provisioning_status = $1, updated_at = $2 WHERE id = $3",
            kind.table()
        ),
        args![status.as_str(), now(), sid(id)],
    )
    .await
}

/// The parents a lock set names → `status`: its L7 policy, pool and listeners, and its load
/// balancer when `lb_too`.
pub(crate) async fn set_parents(
    c: &mut Conn<'_>,
    locks: &LockSet,
    status: ProvisioningStatus,
    lb_too: bool,
) -> Result<()> {
    if let Some(p) = locks.l7policy_id {
        set_status(c, ObjectKind::L7Policy, p, status).await?;
    }
    if let Some(p) = locks.pool_id {
        set_status(c, ObjectKind::Pool, p, status).await?;
    }
    for l in &locks.listener_ids {
        set_status(c, ObjectKind::Listener, l, status).await?;
    }
    if lb_too {
        if let Some(lb) = locks.load_balancer_id {
            set_status(c, ObjectKind::LoadBalancer, lb, status).await?;
        }
    }
    Ok(())
}

/// Conflict: `kind` `id` is not ACTIVE.
pub(crate) fn immutable(kind: ObjectKind, id: impl Display) -> DbError {
    DbError::Conflict(format!(
        "{} {id} is immutable and cannot be updated.",
        kind.display_name()
    ))
}

/// Conflict unless the caller's `expected` `updated_at` (if any) is the stored one.
pub(crate) fn check_expected(
    kind: ObjectKind,
    id: impl Display,
    stored: Option<Timestamp>,
    expected: Option<Timestamp>,
) -> Result<()> {
    match expected {
        Some(e) if stored != Some(e) => Err(DbError::Conflict(format!(
            "{} {id} was modified concurrently; retry the update",
            kind.display_name()
        ))),
        _ => Ok(()),
    }
}

// ------------------------------------------------------------------ locks

/// Lock the load balancer row (PostgreSQL `FOR UPDATE`; SQLite holds the write lock)
/// and return its status and `updated_at`. Missing or DELETED → NotFound.
pub(crate) async fn lock_lb(
    c: &mut Conn<'_>,
    lb: LoadBalancerId,
) -> Result<(ProvisioningStatus, Option<Timestamp>)> {
    let sql = format!(
        "SELECT provisioning_status, updated_at FROM load_balancer WHERE id = $1{}",
        c.for_update()
    );
    let row: Option<(String, Option<Timestamp>)> = c.fetch_optional(&sql, args![sid(lb)]).await?;
    let (s, u) = row.ok_or_else(|| DbError::not_found(ObjectKind::LoadBalancer, lb))?;
    let s: ProvisioningStatus = parse("provisioning status", &s)?;
    if s == ProvisioningStatus::Deleted {
        return Err(DbError::not_found(ObjectKind::LoadBalancer, lb));
    }
    Ok((s, u))
}

/// Lock the load balancer for a write on the load balancer itself: its status must pass
/// `allowed` (else Conflict "Invalid state X of loadbalancer resource ID"). Returns its
/// `updated_at`.
pub(crate) async fn lock_lb_if(
    c: &mut Conn<'_>,
    lb: LoadBalancerId,
    allowed: fn(&ProvisioningStatus) -> bool,
) -> Result<Option<Timestamp>> {
    let (s, updated) = lock_lb(c, lb).await?;
    if !allowed(&s) {
        return Err(DbError::Conflict(format!(
            "Invalid state {s} of loadbalancer resource {lb}"
        )));
    }
    Ok(updated)
}

/// Lock the load balancer for a child write: it must be ACTIVE.
pub(crate) async fn lock_lb_for_child(c: &mut Conn<'_>, lb: LoadBalancerId) -> Result<()> {
    let (s, _) = lock_lb(c, lb).await?;
    if !s.is_mutable() {
        return Err(immutable(ObjectKind::LoadBalancer, lb));
    }
    Ok(())
}

/// What a child write reads of an object first: its parent, status and `updated_at`.
pub(crate) struct Head<P> {
    pub parent: P,
    pub status: ProvisioningStatus,
    pub updated_at: Option<Timestamp>,
}

/// The [`Head`] of the object `id` of `kind` (a kind with a parent); missing → NotFound.
pub(crate) async fn head<P>(c: &mut Conn<'_>, kind: ObjectKind, id: impl Display) -> Result<Head<P>>
where
    P: FromStr,
    P::Err: Display,
{
    let parent = kind
        .parent_column()
        .ok_or_else(|| DbError::Internal(format!("{} has no parent", kind.as_str())))?;
    let row: Option<(String, String, Option<Timestamp>)> = c
        .fetch_optional(
            &format!(
                "SELECT {parent}, provisioning_status, updated_at FROM {} WHERE id = $1",
                kind.table()
            ),
            args![sid(&id)],
        )
        .await?;
    let (p, s, updated_at) = row.ok_or_else(|| DbError::not_found(kind, &id))?;
    Ok(Head {
        parent: parse(parent, &p)?,
        status: parse("provisioning status", &s)?,
        updated_at,
    })
}

/// Ids of the listeners using a pool (default pool or L7 redirect target), in id order.
pub(crate) async fn listeners_using_pool(
    c: &mut Conn<'_>,
    pool: PoolId,
) -> Result<Vec<ListenerId>> {
    let rows: Vec<(String,)> = c
        .fetch_all(
            "SELECT id FROM listener WHERE default_pool_id = $1 \
             UNION SELECT listener_id FROM l7policy WHERE redirect_pool_id = $1",
            args![sid(pool)],
        )
        .await?;
    let mut v: Vec<String> = rows.into_iter().map(|r| r.0).collect();
    v.sort();
    v.iter().map(|l| parse("listener id", l)).collect()
}

/// Lock for a write below a pool: LB ACTIVE, pool ACTIVE. The lock set names the pool, the
/// listeners using it and the LB.
pub(crate) async fn lock_pool_subtree(c: &mut Conn<'_>, pool: PoolId) -> Result<LockSet> {
    let lb: LoadBalancerId = head(c, ObjectKind::Pool, pool).await?.parent;
    lock_lb_for_child(c, lb).await?;
    // Re-read the pool status under the LB lock.
    let status = head::<LoadBalancerId>(c, ObjectKind::Pool, pool)
        .await?
        .status;
    if !status.is_mutable() {
        return Err(immutable(ObjectKind::Pool, pool));
    }
    Ok(LockSet {
        load_balancer_id: Some(lb),
        listener_ids: listeners_using_pool(c, pool).await?,
        pool_id: Some(pool),
        l7policy_id: None,
    })
}

/// Lock for a write below a listener: LB ACTIVE. The lock set names the listener and the
/// LB; the LB is returned too.
pub(crate) async fn lock_listener_subtree(
    c: &mut Conn<'_>,
    listener: ListenerId,
) -> Result<(LoadBalancerId, LockSet)> {
    let lb: LoadBalancerId = head(c, ObjectKind::Listener, listener).await?.parent;
    lock_lb_for_child(c, lb).await?;
    let locks = LockSet {
        load_balancer_id: Some(lb),
        listener_ids: vec![listener],
        ..Default::default()
    };
    Ok((lb, locks))
}

/// Lock for a write below an L7 policy: LB ACTIVE, policy ACTIVE. The lock set names the
/// policy, its listener and the LB.
pub(crate) async fn lock_policy_subtree(c: &mut Conn<'_>, policy: L7PolicyId) -> Result<LockSet> {
    let listener: ListenerId = head(c, ObjectKind::L7Policy, policy).await?.parent;
    let (_, mut locks) = lock_listener_subtree(c, listener).await?;
    // Re-read the policy status under the LB lock.
    let status = head::<ListenerId>(c, ObjectKind::L7Policy, policy)
        .await?
        .status;
    if !status.is_mutable() {
        return Err(immutable(ObjectKind::L7Policy, policy));
    }
    locks.l7policy_id = Some(policy);
    Ok(locks)
}

/// Lock what a write on the existing object `id` of `kind` holds (below a load balancer:
/// listener, pool, member, health monitor, L7 policy or rule) and return the lock set its
/// job names. A listener or pool needs its LB ACTIVE (a pool's listeners are locked too);
/// a member or health monitor [`lock_pool_subtree`]; an L7 policy
/// [`lock_listener_subtree`]; an L7 rule [`lock_policy_subtree`]. With `expected`, the
/// object's `updated_at` must be that (else Conflict).
pub(crate) async fn lock_object(
    c: &mut Conn<'_>,
    kind: ObjectKind,
    id: uuid::Uuid,
    expected: Option<Timestamp>,
) -> Result<LockSet> {
    use ObjectKind as K;
    let (locks, updated_at) = match kind {
        K::Listener | K::Pool => {
            let head = head::<LoadBalancerId>(c, kind, id).await?;
            lock_lb_for_child(c, head.parent).await?;
            let listener_ids = match kind {
                K::Pool => listeners_using_pool(c, PoolId::from(id)).await?,
                _ => Vec::new(),
            };
            let locks = LockSet {
                listener_ids,
                ..LockSet::load_balancer(head.parent)
            };
            (locks, head.updated_at)
        }
        K::Member | K::HealthMonitor => {
            let head = head::<PoolId>(c, kind, id).await?;
            (lock_pool_subtree(c, head.parent).await?, head.updated_at)
        }
        K::L7Policy => {
            let head = head::<ListenerId>(c, kind, id).await?;
            (
                lock_listener_subtree(c, head.parent).await?.1,
                head.updated_at,
            )
        }
        K::L7Rule => {
            let head = head::<L7PolicyId>(c, kind, id).await?;
            (lock_policy_subtree(c, head.parent).await?, head.updated_at)
        }
        K::LoadBalancer | K::Amphora => {
            return Err(DbError::Internal(format!(
                "{} is not below a load balancer",
                kind.as_str()
            )))
        }
    };
    check_expected(kind, id, updated_at, expected)?;
    Ok(locks)
}

impl Store {
    /// Begin an update of the object `id` of `kind` below a load balancer: a [`JobTx`] that
    /// holds what [`lock_object`] locked (`expected`: the `updated_at` the caller read).
    pub(crate) async fn begin_update(
        &self,
        kind: ObjectKind,
        id: uuid::Uuid,
        expected: Option<Timestamp>,
    ) -> Result<(JobTx<'_>, LockSet)> {
        let mut tx = self.begin_job().await?;
        let locks = lock_object(&mut tx.conn(), kind, id, expected).await?;
        Ok((tx, locks))
    }

    /// Delete the object `id` of `kind` below a load balancer: [`lock_object`], the object
    /// PENDING_DELETE, its tenant job.
    pub(crate) async fn delete_object(&self, kind: ObjectKind, id: uuid::Uuid) -> Result<JobId> {
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let locks = lock_object(&mut c, kind, id, None).await?;
        set_status(&mut c, kind, id, ProvisioningStatus::PendingDelete).await?;
        tx.tenant(Action::Delete, kind, id, locks).await
    }
}

// ------------------------------------------------------------------ tags

/// Replace the tags of a resource (order kept, duplicates dropped).
pub(crate) async fn write_tags(
    c: &mut Conn<'_>,
    resource: impl Display,
    tags: &[String],
) -> Result<()> {
    let resource = resource.to_string();
    c.execute("DELETE FROM tags WHERE resource_id = $1", args![&resource])
        .await?;
    insert_tags(c, &resource, tags).await?;
    Ok(())
}

/// Insert the tags of a resource that has none yet (order kept, duplicates dropped);
/// returns them as stored.
pub(crate) async fn insert_tags(
    c: &mut Conn<'_>,
    resource: &str,
    tags: &[String],
) -> Result<Vec<String>> {
    let tags = distinct(tags);
    for (i, t) in tags.iter().enumerate() {
        c.execute(
            "INSERT INTO tags (resource_id, tag, position) VALUES ($1, $2, $3)",
            args![resource, *t, i as i32 + 1],
        )
        .await?;
    }
    Ok(tags.into_iter().cloned().collect())
}

/// The values of `v` without repeats, in first-seen order.
pub(crate) fn distinct(v: &[String]) -> Vec<&String> {
    let mut seen: Vec<&String> = Vec::new();
    for x in v {
        if !seen.contains(&x) {
            seen.push(x);
        }
    }
    seen
}

// ------------------------------------------------------------------ quotas

/// The `quotas` column limiting objects of `kind` (amphorae have no quota).
pub(crate) fn quota_column(kind: ObjectKind) -> Option<&'static str> {
    match kind {
        ObjectKind::Amphora => None,
        other => Some(other.table()),
    }
}

impl QuotaDefaults {
    /// The configured default for `kind` (-1 = unlimited; amphorae are never limited).
    fn of(&self, kind: ObjectKind) -> i64 {
        match kind {
            ObjectKind::LoadBalancer => self.load_balancer,
            ObjectKind::Listener => self.listener,
            ObjectKind::Pool => self.pool,
            ObjectKind::HealthMonitor => self.health_monitor,
            ObjectKind::Member => self.member,
            ObjectKind::L7Policy => self.l7policy,
            ObjectKind::L7Rule => self.l7rule,
            ObjectKind::Amphora => -1,
        }
    }
}

/// Enforce a project quota inside the write transaction (adding `n` objects of `kind`).
pub(crate) async fn check_quota(
    c: &mut Conn<'_>,
    defaults: &QuotaDefaults,
    project: &str,
    kind: ObjectKind,
    n: i64,
) -> Result<()> {
    let Some(column) = quota_column(kind) else {
        return Ok(());
    };
    if n <= 0 {
        return Ok(());
    }
    let stored: Option<(Option<i64>,)> = c
        .fetch_optional(
            &format!("SELECT {column} FROM quotas WHERE project_id = $1"),
            args![project],
        )
        .await?;
    let limit = stored
        .and_then(|r| r.0)
        .unwrap_or_else(|| defaults.of(kind));
    if limit < 0 {
        return Ok(());
    }
    c.serialize(Serial::Quota(project)).await?;
    let live = kind.live().map(|l| format!(" AND {l}")).unwrap_or_default();
    let used = c
        .count(
            &format!(
                "SELECT COUNT(*) FROM {} x WHERE x.project_id = $1{live}",
                kind.table()
            ),
            args![project],
        )
        .await?;
    if used + n > limit {
        return Err(DbError::QuotaExceeded(column.to_string()));
    }
    Ok(())
}
