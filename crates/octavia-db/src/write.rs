//! Tenant writes: status test-and-set (reference §2.3), the object write, quota checks
//! and the job insert, all in one transaction.

use octavia_model::*;

use crate::db::{args, id, opt_id, Arg, Conn, Tx};
use crate::rows::to_json;
use crate::{DbError, MemberBatchChange, QuotaDefaults, Result, Store};

pub(crate) fn not_found(kind: &'static str, id: impl ToString) -> DbError {
    DbError::NotFound {
        kind,
        id: id.to_string(),
    }
}

fn immutable(what: &str, id: impl std::fmt::Display) -> DbError {
    DbError::Conflict(format!("{what} {id} is immutable and cannot be updated."))
}

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
    let row: Option<(String, Option<Timestamp>)> = c.fetch_optional(&sql, args![id(lb)]).await?;
    let (s, u) = row.ok_or_else(|| not_found("Load Balancer", lb))?;
    let s: ProvisioningStatus = crate::rows::parse("provisioning status", &s)?;
    if s == ProvisioningStatus::Deleted {
        return Err(not_found("Load Balancer", lb));
    }
    Ok((s, u))
}

/// Lock the load balancer for a child write: it must be ACTIVE.
pub(crate) async fn lock_lb_for_child(c: &mut Conn<'_>, lb: LoadBalancerId) -> Result<()> {
    let (s, _) = lock_lb(c, lb).await?;
    if !s.is_mutable() {
        return Err(immutable("Load Balancer", lb));
    }
    Ok(())
}

pub(crate) async fn set_status(
    c: &mut Conn<'_>,
    table: &str,
    object_id: &str,
    status: ProvisioningStatus,
) -> Result<u64> {
    c.execute(
        &format!("UPDATE {table} SET provisioning_status = $1, updated_at = $2 WHERE id = $3"),
        args![status.as_str(), now(), object_id],
    )
    .await
}

fn check_expected(
    kind: &str,
    object_id: impl std::fmt::Display,
    stored: Option<Timestamp>,
    expected: Option<Timestamp>,
) -> Result<()> {
    match expected {
        Some(e) if stored != Some(e) => Err(DbError::Conflict(format!(
            "{kind} {object_id} was modified concurrently; retry the update"
        ))),
        _ => Ok(()),
    }
}

/// Insert a QUEUED job inside the caller's transaction.
pub(crate) async fn insert_job(c: &mut Conn<'_>, class: JobClass, spec: &JobSpec) -> Result<JobId> {
    let job_id = JobId::new();
    let t = now();
    let lb = spec
        .locks
        .load_balancer_id
        .map(|l| l.to_string())
        .or_else(|| {
            (spec.target_kind == ObjectKind::LoadBalancer).then(|| spec.target_id.to_string())
        });
    c.execute(
        "INSERT INTO job (id, kind, class, priority, state, spec, load_balancer_id, attempt, \
         completed_steps, reverted_steps, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'QUEUED', $5, $6, 0, '[]', '[]', $7, $7)",
        args![
            id(job_id),
            spec.kind(),
            class.as_str(),
            class.priority(),
            to_json(spec),
            lb,
            t
        ],
    )
    .await?;
    Ok(job_id)
}

fn spec(action: Action, kind: ObjectKind, target: uuid::Uuid, locks: LockSet) -> JobSpec {
    JobSpec {
        action,
        target_kind: kind,
        target_id: target,
        locks,
        cascade: false,
        members: None,
        amphora_id: None,
    }
}

/// Replace the tags of a resource (order kept, duplicates dropped).
pub(crate) async fn write_tags(c: &mut Conn<'_>, resource: &str, tags: &[String]) -> Result<()> {
    c.execute("DELETE FROM tags WHERE resource_id = $1", args![resource])
        .await?;
    insert_tags(c, resource, tags).await?;
    Ok(())
}

/// Insert the tags of a resource that has none yet (order kept, duplicates dropped);
/// returns them as stored.
async fn insert_tags(c: &mut Conn<'_>, resource: &str, tags: &[String]) -> Result<Vec<String>> {
    let mut seen: Vec<String> = Vec::new();
    for t in tags {
        if seen.contains(t) {
            continue;
        }
        seen.push(t.clone());
        c.execute(
            "INSERT INTO tags (resource_id, tag, position) VALUES ($1, $2, $3)",
            args![resource, t, seen.len() as i32],
        )
        .await?;
    }
    Ok(seen)
}

/// Quota resources.
#[derive(Clone, Copy)]
pub(crate) enum Res {
    LoadBalancer,
    Listener,
    Pool,
    HealthMonitor,
    Member,
    L7Policy,
    L7Rule,
}

impl Res {
    fn column(self) -> &'static str {
        match self {
            Res::LoadBalancer => "load_balancer",
            Res::Listener => "listener",
            Res::Pool => "pool",
            Res::HealthMonitor => "health_monitor",
            Res::Member => "member",
            Res::L7Policy => "l7policy",
            Res::L7Rule => "l7rule",
        }
    }
    fn default(self, d: &QuotaDefaults) -> i64 {
        match self {
            Res::LoadBalancer => d.load_balancer,
            Res::Listener => d.listener,
            Res::Pool => d.pool,
            Res::HealthMonitor => d.health_monitor,
            Res::Member => d.member,
            Res::L7Policy => d.l7policy,
            Res::L7Rule => d.l7rule,
        }
    }
    fn count_sql(self) -> &'static str {
        match self {
            Res::LoadBalancer => {
                "SELECT COUNT(*) FROM load_balancer WHERE project_id = $1 \
                 AND provisioning_status <> 'DELETED'"
            }
            Res::Listener => "SELECT COUNT(*) FROM listener WHERE project_id = $1",
            Res::Pool => "SELECT COUNT(*) FROM pool WHERE project_id = $1",
            Res::HealthMonitor => "SELECT COUNT(*) FROM health_monitor WHERE project_id = $1",
            Res::Member => "SELECT COUNT(*) FROM member WHERE project_id = $1",
            Res::L7Policy => "SELECT COUNT(*) FROM l7policy WHERE project_id = $1",
            Res::L7Rule => "SELECT COUNT(*) FROM l7rule WHERE project_id = $1",
        }
    }
}

/// Enforce a project quota inside the write transaction (adding `n` objects).
pub(crate) async fn check_quota(
    c: &mut Conn<'_>,
    defaults: &QuotaDefaults,
    project: &str,
    res: Res,
    n: i64,
) -> Result<()> {
    if n <= 0 {
        return Ok(());
    }
    let stored: Option<(Option<i64>,)> = c
        .fetch_optional(
            &format!("SELECT {} FROM quotas WHERE project_id = $1", res.column()),
            args![project],
        )
        .await?;
    let limit = stored
        .and_then(|r| r.0)
        .unwrap_or_else(|| res.default(defaults));
    if limit < 0 {
        return Ok(());
    }
    if c.engine() == crate::Engine::Postgres {
        // Serialise quota checks of one project (the LB row lock does not cover
        // writes to different load balancers of the same project).
        c.execute(
            "SELECT pg_advisory_xact_lock(hashtext('octavia-quota:' || $1))",
            args![project],
        )
        .await?;
    }
    let used = c.count(res.count_sql(), args![project]).await?;
    if used + n > limit {
        return Err(DbError::QuotaExceeded(res.column().to_string()));
    }
    Ok(())
}

/// Ids of the listeners using a pool (default pool or L7 redirect target).
pub(crate) async fn listeners_using_pool(c: &mut Conn<'_>, pool: &str) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = c
        .fetch_all(
            "SELECT id FROM listener WHERE default_pool_id = $1 \
             UNION SELECT listener_id FROM l7policy WHERE redirect_pool_id = $1",
            args![pool],
        )
        .await?;
    let mut v: Vec<String> = rows.into_iter().map(|r| r.0).collect();
    v.sort();
    Ok(v)
}

async fn set_listeners_pending(c: &mut Conn<'_>, ids: &[String]) -> Result<Vec<ListenerId>> {
    let mut out = Vec::new();
    for l in ids {
        set_status(c, "listener", l, ProvisioningStatus::PendingUpdate).await?;
        out.push(crate::rows::parse("listener id", l)?);
    }
    Ok(out)
}

pub(crate) async fn commit_job(store: &Store, tx: Tx) -> Result<()> {
    tx.commit().await?;
    store.notify.notify_waiters();
    Ok(())
}

/// The last act of every tenant write: insert the job that will settle what the
/// transaction locked, commit, and wake in-process workers.
async fn enqueue_tenant_job(
    store: &Store,
    mut tx: Tx,
    action: Action,
    kind: ObjectKind,
    target: uuid::Uuid,
    locks: LockSet,
) -> Result<JobId> {
    let job = insert_job(
        &mut tx.conn(),
        JobClass::Tenant,
        &spec(action, kind, target, locks),
    )
    .await?;
    commit_job(store, tx).await?;
    Ok(job)
}

// ------------------------------------------------------------------ load balancer

async fn write_lb_columns(c: &mut Conn<'_>, lb: &LoadBalancer) -> Result<()> {
    c.execute(
        "UPDATE load_balancer SET name = $1, description = $2, enabled = $3, topology = $4, \
         provider = $5, flavor_id = $6, availability_zone = $7 WHERE id = $8",
        args![
            &lb.name,
            &lb.description,
            lb.enabled,
            lb.topology.as_str(),
            &lb.provider,
            &lb.flavor_id,
            &lb.availability_zone,
            id(lb.id)
        ],
    )
    .await?;
    c.execute(
        "UPDATE vip SET ip_address = $1, port_id = $2, subnet_id = $3, network_id = $4, \
         qos_policy_id = $5 WHERE load_balancer_id = $6",
        args![
            &lb.vip.ip_address,
            &lb.vip.port_id,
            &lb.vip.subnet_id,
            &lb.vip.network_id,
            &lb.vip.qos_policy_id,
            id(lb.id)
        ],
    )
    .await?;
    write_tags(c, &lb.id.to_string(), &lb.tags).await
}

/// Insert a new load balancer (PENDING_CREATE/OFFLINE), its VIP and tags and its
/// create job. Returns the load balancer as stored (what a read would give back), so
/// the caller need not read it again.
pub(crate) async fn create_load_balancer(
    store: &Store,
    lb: &LoadBalancer,
) -> Result<(LoadBalancer, JobId)> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    check_quota(
        &mut c,
        &store.quota_defaults,
        &lb.project_id,
        Res::LoadBalancer,
        1,
    )
    .await?;
    let t = now();
    c.execute(
        "INSERT INTO load_balancer (id, project_id, name, description, provisioning_status, \
         operating_status, enabled, topology, provider, flavor_id, availability_zone, created_at) \
         VALUES ($1, $2, $3, $4, 'PENDING_CREATE', 'OFFLINE', $5, $6, $7, $8, $9, $10)",
        args![
            id(lb.id),
            &lb.project_id,
            &lb.name,
            &lb.description,
            lb.enabled,
            lb.topology.as_str(),
            &lb.provider,
            &lb.flavor_id,
            &lb.availability_zone,
            t
        ],
    )
    .await?;
    c.execute(
        "INSERT INTO vip (load_balancer_id, ip_address, port_id, subnet_id, network_id, \
         qos_policy_id) VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            id(lb.id),
            &lb.vip.ip_address,
            &lb.vip.port_id,
            &lb.vip.subnet_id,
            &lb.vip.network_id,
            &lb.vip.qos_policy_id
        ],
    )
    .await?;
    let tags = insert_tags(&mut c, &lb.id.to_string(), &lb.tags).await?;
    let locks = LockSet {
        load_balancer_id: Some(lb.id),
        ..Default::default()
    };
    let job = insert_job(
        &mut c,
        JobClass::Tenant,
        &spec(
            Action::Create,
            ObjectKind::LoadBalancer,
            lb.id.uuid(),
            locks,
        ),
    )
    .await?;
    commit_job(store, tx).await?;
    let stored = LoadBalancer {
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        tags,
        listener_ids: Vec::new(),
        pool_ids: Vec::new(),
        created_at: t,
        updated_at: None,
        ..lb.clone()
    };
    Ok((stored, job))
}

pub(crate) async fn update_load_balancer(
    store: &Store,
    lb: &LoadBalancer,
    expected: Option<Timestamp>,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (s, updated) = lock_lb(&mut c, lb.id).await?;
    if !s.is_mutable() {
        return Err(DbError::Conflict(format!(
            "Invalid state {s} of loadbalancer resource {}",
            lb.id
        )));
    }
    check_expected("Load Balancer", lb.id, updated, expected)?;
    write_lb_columns(&mut c, lb).await?;
    set_status(
        &mut c,
        "load_balancer",
        &lb.id.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let locks = LockSet {
        load_balancer_id: Some(lb.id),
        ..Default::default()
    };
    let job = insert_job(
        &mut c,
        JobClass::Tenant,
        &spec(
            Action::Update,
            ObjectKind::LoadBalancer,
            lb.id.uuid(),
            locks,
        ),
    )
    .await?;
    commit_job(store, tx).await?;
    Ok(job)
}

/// Statements setting every child of load balancer `$2` to status `$1`.
pub(crate) const LB_CHILDREN_STATUS: [&str; 6] = [
    "UPDATE listener SET provisioning_status = $1 WHERE load_balancer_id = $2",
    "UPDATE pool SET provisioning_status = $1 WHERE load_balancer_id = $2",
    "UPDATE member SET provisioning_status = $1 WHERE pool_id IN \
     (SELECT id FROM pool WHERE load_balancer_id = $2)",
    "UPDATE health_monitor SET provisioning_status = $1 WHERE pool_id IN \
     (SELECT id FROM pool WHERE load_balancer_id = $2)",
    "UPDATE l7policy SET provisioning_status = $1 WHERE listener_id IN \
     (SELECT id FROM listener WHERE load_balancer_id = $2)",
    "UPDATE l7rule SET provisioning_status = $1 WHERE l7policy_id IN (SELECT p.id FROM \
     l7policy p JOIN listener l ON l.id = p.listener_id WHERE l.load_balancer_id = $2)",
];

pub(crate) async fn delete_load_balancer(
    store: &Store,
    lb: LoadBalancerId,
    cascade: bool,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (s, _) = lock_lb(&mut c, lb).await?;
    if !s.is_deletable() {
        return Err(DbError::Conflict(format!(
            "Invalid state {s} of loadbalancer resource {lb}"
        )));
    }
    let children = c
        .count(
            "SELECT (SELECT COUNT(*) FROM listener WHERE load_balancer_id = $1) + \
             (SELECT COUNT(*) FROM pool WHERE load_balancer_id = $1)",
            args![id(lb)],
        )
        .await?;
    if children > 0 && !cascade {
        return Err(DbError::Invalid(format!(
            "Cannot delete Load Balancer {lb} - it has children"
        )));
    }
    set_status(
        &mut c,
        "load_balancer",
        &lb.to_string(),
        ProvisioningStatus::PendingDelete,
    )
    .await?;
    if cascade {
        for sql in LB_CHILDREN_STATUS {
            c.execute(
                sql,
                args![ProvisioningStatus::PendingDelete.as_str(), id(lb)],
            )
            .await?;
        }
    }
    let locks = LockSet {
        load_balancer_id: Some(lb),
        ..Default::default()
    };
    let mut sp = spec(Action::Delete, ObjectKind::LoadBalancer, lb.uuid(), locks);
    sp.cascade = cascade;
    let job = insert_job(&mut c, JobClass::Tenant, &sp).await?;
    commit_job(store, tx).await?;
    Ok(job)
}

// ------------------------------------------------------------------ listener

struct ListenerHead {
    load_balancer_id: LoadBalancerId,
    protocol: ListenerProtocol,
    default_pool_id: Option<String>,
    updated_at: Option<Timestamp>,
}

async fn listener_head(c: &mut Conn<'_>, l: ListenerId) -> Result<ListenerHead> {
    let row: Option<(String, String, Option<String>, Option<Timestamp>)> = c
        .fetch_optional(
            "SELECT load_balancer_id, protocol, default_pool_id, updated_at FROM listener \
             WHERE id = $1",
            args![id(l)],
        )
        .await?;
    let (lb, p, dp, u) = row.ok_or_else(|| not_found("Listener", l))?;
    Ok(ListenerHead {
        load_balancer_id: crate::rows::parse("load balancer id", &lb)?,
        protocol: crate::rows::parse("protocol", &p)?,
        default_pool_id: dp,
        updated_at: u,
    })
}

/// Validate `pool` as the default pool of a listener (`listener` = the listener itself
/// on update, excluded from the "already used" check).
async fn check_default_pool(
    c: &mut Conn<'_>,
    pool: PoolId,
    lb: LoadBalancerId,
    protocol: ListenerProtocol,
    listener: ListenerId,
) -> Result<()> {
    let row: Option<(String, String)> = c
        .fetch_optional(
            "SELECT load_balancer_id, protocol FROM pool WHERE id = $1",
            args![id(pool)],
        )
        .await?;
    let (plb, pproto) = row.ok_or_else(|| not_found("Pool", pool))?;
    if plb != lb.to_string() {
        return Err(not_found("Pool", pool));
    }
    let pproto: PoolProtocol = crate::rows::parse("pool protocol", &pproto)?;
    if !protocol.allowed_pool_protocols().contains(&pproto) {
        return Err(DbError::Invalid(format!(
            "The pool protocol '{pproto}' is invalid while the listener protocol is '{protocol}'."
        )));
    }
    let used = c
        .count(
            "SELECT COUNT(*) FROM listener WHERE default_pool_id = $1 AND id <> $2",
            args![id(pool), id(listener)],
        )
        .await?;
    if used > 0 {
        return Err(DbError::Conflict(format!(
            "Pool {pool} is already in use by another listener"
        )));
    }
    Ok(())
}

async fn write_listener_columns(c: &mut Conn<'_>, l: &Listener) -> Result<()> {
    c.execute(
        "UPDATE listener SET name = $1, description = $2, enabled = $3, connection_limit = $4, \
         default_pool_id = $5, tls_certificate_id = $6, client_ca_tls_certificate_id = $7, \
         client_authentication = $8, client_crl_container_id = $9, timeout_client_data = $10, \
         timeout_member_connect = $11, timeout_member_data = $12, timeout_tcp_inspect = $13, \
         insert_headers = $14, tls_ciphers = $15, tls_versions = $16, alpn_protocols = $17, \
         hsts_max_age = $18, hsts_include_subdomains = $19, hsts_preload = $20 WHERE id = $21",
        vec![
            Arg::from(&l.name),
            Arg::from(&l.description),
            Arg::from(l.enabled),
            Arg::from(l.connection_limit),
            opt_id(l.default_pool_id),
            Arg::from(&l.default_tls_container_ref),
            Arg::from(&l.client_ca_tls_container_ref),
            Arg::from(l.client_authentication.as_str()),
            Arg::from(&l.client_crl_container_ref),
            Arg::from(l.timeout_client_data),
            Arg::from(l.timeout_member_connect),
            Arg::from(l.timeout_member_data),
            Arg::from(l.timeout_tcp_inspect),
            Arg::from(to_json(&l.insert_headers)),
            Arg::from(&l.tls_ciphers),
            Arg::from(to_json(&l.tls_versions)),
            Arg::from(to_json(&l.alpn_protocols)),
            Arg::from(l.hsts_max_age),
            Arg::from(l.hsts_include_subdomains),
            Arg::from(l.hsts_preload),
            id(l.id),
        ],
    )
    .await?;
    let lid = l.id.to_string();
    c.execute("DELETE FROM sni WHERE listener_id = $1", args![&lid])
        .await?;
    let mut seen: Vec<&String> = Vec::new();
    for s in &l.sni_container_refs {
        if seen.contains(&s) {
            continue;
        }
        seen.push(s);
        c.execute(
            "INSERT INTO sni (listener_id, tls_container_id, position) VALUES ($1, $2, $3)",
            args![&lid, s, seen.len() as i32],
        )
        .await?;
    }
    c.execute(
        "DELETE FROM listener_cidr WHERE listener_id = $1",
        args![&lid],
    )
    .await?;
    let mut seen: Vec<&String> = Vec::new();
    for s in &l.allowed_cidrs {
        if seen.contains(&s) {
            continue;
        }
        seen.push(s);
        c.execute(
            "INSERT INTO listener_cidr (listener_id, cidr) VALUES ($1, $2)",
            args![&lid, s],
        )
        .await?;
    }
    write_tags(c, &lid, &l.tags).await
}

pub(crate) async fn create_listener(store: &Store, l: &Listener) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    lock_lb_for_child(&mut c, l.load_balancer_id).await?;
    let same_port: Vec<(String,)> = c
        .fetch_all(
            "SELECT protocol FROM listener WHERE load_balancer_id = $1 AND protocol_port = $2",
            args![id(l.load_balancer_id), l.protocol_port],
        )
        .await?;
    for (p,) in same_port {
        let p: ListenerProtocol = crate::rows::parse("protocol", &p)?;
        if p.port_space() == l.protocol.port_space() {
            return Err(DbError::Conflict(format!(
                "Another Listener on this Load Balancer is already using protocol {p} and \
                 protocol_port {}",
                l.protocol_port
            )));
        }
    }
    if let Some(pool) = l.default_pool_id {
        check_default_pool(&mut c, pool, l.load_balancer_id, l.protocol, l.id).await?;
    }
    check_quota(
        &mut c,
        &store.quota_defaults,
        &l.project_id,
        Res::Listener,
        1,
    )
    .await?;
    c.execute(
        "INSERT INTO listener (id, project_id, load_balancer_id, provisioning_status, \
         operating_status, enabled, protocol, protocol_port, connection_limit, \
         timeout_client_data, timeout_member_connect, timeout_member_data, timeout_tcp_inspect, \
         created_at) VALUES ($1, $2, $3, 'PENDING_CREATE', 'OFFLINE', $4, $5, $6, $7, $8, $9, \
         $10, $11, $12)",
        args![
            id(l.id),
            &l.project_id,
            id(l.load_balancer_id),
            l.enabled,
            l.protocol.as_str(),
            l.protocol_port,
            l.connection_limit,
            l.timeout_client_data,
            l.timeout_member_connect,
            l.timeout_member_data,
            l.timeout_tcp_inspect,
            now()
        ],
    )
    .await?;
    write_listener_columns(&mut c, l).await?;
    set_status(
        &mut c,
        "load_balancer",
        &l.load_balancer_id.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let locks = LockSet {
        load_balancer_id: Some(l.load_balancer_id),
        ..Default::default()
    };
    enqueue_tenant_job(
        store,
        tx,
        Action::Create,
        ObjectKind::Listener,
        l.id.uuid(),
        locks,
    )
    .await
}

pub(crate) async fn update_listener(
    store: &Store,
    l: &Listener,
    expected: Option<Timestamp>,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let head = listener_head(&mut c, l.id).await?;
    lock_lb_for_child(&mut c, head.load_balancer_id).await?;
    check_expected("Listener", l.id, head.updated_at, expected)?;
    if let Some(pool) = l.default_pool_id {
        if head.default_pool_id.as_deref() != Some(&pool.to_string()) {
            check_default_pool(&mut c, pool, head.load_balancer_id, head.protocol, l.id).await?;
        }
    }
    write_listener_columns(&mut c, l).await?;
    set_status(
        &mut c,
        "listener",
        &l.id.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let lb = head.load_balancer_id;
    set_status(
        &mut c,
        "load_balancer",
        &lb.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let locks = LockSet {
        load_balancer_id: Some(lb),
        ..Default::default()
    };
    enqueue_tenant_job(
        store,
        tx,
        Action::Update,
        ObjectKind::Listener,
        l.id.uuid(),
        locks,
    )
    .await
}

pub(crate) async fn delete_listener(store: &Store, l: ListenerId) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let head = listener_head(&mut c, l).await?;
    let lb = head.load_balancer_id;
    lock_lb_for_child(&mut c, lb).await?;
    set_status(
        &mut c,
        "listener",
        &l.to_string(),
        ProvisioningStatus::PendingDelete,
    )
    .await?;
    set_status(
        &mut c,
        "load_balancer",
        &lb.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let locks = LockSet {
        load_balancer_id: Some(lb),
        ..Default::default()
    };
    enqueue_tenant_job(
        store,
        tx,
        Action::Delete,
        ObjectKind::Listener,
        l.uuid(),
        locks,
    )
    .await
}

// ------------------------------------------------------------------ pool

struct PoolHead {
    load_balancer_id: LoadBalancerId,
    status: ProvisioningStatus,
    updated_at: Option<Timestamp>,
}

async fn pool_head(c: &mut Conn<'_>, p: PoolId) -> Result<PoolHead> {
    let row: Option<(String, String, Option<Timestamp>)> = c
        .fetch_optional(
            "SELECT load_balancer_id, provisioning_status, updated_at FROM pool WHERE id = $1",
            args![id(p)],
        )
        .await?;
    let (lb, s, u) = row.ok_or_else(|| not_found("Pool", p))?;
    Ok(PoolHead {
        load_balancer_id: crate::rows::parse("load balancer id", &lb)?,
        status: crate::rows::parse("provisioning status", &s)?,
        updated_at: u,
    })
}

async fn write_pool_columns(c: &mut Conn<'_>, p: &Pool) -> Result<()> {
    c.execute(
        "UPDATE pool SET name = $1, description = $2, enabled = $3, lb_algorithm = $4, \
         tls_enabled = $5, tls_certificate_id = $6, ca_tls_certificate_id = $7, \
         crl_container_id = $8, tls_ciphers = $9, tls_versions = $10, alpn_protocols = $11 \
         WHERE id = $12",
        args![
            &p.name,
            &p.description,
            p.enabled,
            p.lb_algorithm.as_str(),
            p.tls_enabled,
            &p.tls_certificate_id,
            &p.ca_tls_certificate_id,
            &p.crl_container_id,
            &p.tls_ciphers,
            to_json(&p.tls_versions),
            to_json(&p.alpn_protocols),
            id(p.id)
        ],
    )
    .await?;
    let pid = p.id.to_string();
    c.execute(
        "DELETE FROM session_persistence WHERE pool_id = $1",
        args![&pid],
    )
    .await?;
    if let Some(sp) = &p.session_persistence {
        c.execute(
            "INSERT INTO session_persistence (pool_id, type, cookie_name, persistence_timeout, \
             persistence_granularity) VALUES ($1, $2, $3, $4, $5)",
            args![
                &pid,
                sp.persistence_type.as_str(),
                &sp.cookie_name,
                sp.persistence_timeout,
                &sp.persistence_granularity
            ],
        )
        .await?;
    }
    write_tags(c, &pid, &p.tags).await
}

pub(crate) async fn create_pool(
    store: &Store,
    p: &Pool,
    listener: Option<ListenerId>,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    lock_lb_for_child(&mut c, p.load_balancer_id).await?;
    let mut locked_listeners = Vec::new();
    if let Some(l) = listener {
        let head = listener_head(&mut c, l).await?;
        if head.load_balancer_id != p.load_balancer_id {
            return Err(DbError::Invalid(format!(
                "Listener {l} is not on load balancer {}",
                p.load_balancer_id
            )));
        }
        if head.default_pool_id.is_some() {
            return Err(DbError::Conflict(
                "This listener already has a default pool".into(),
            ));
        }
        if !head.protocol.allowed_pool_protocols().contains(&p.protocol) {
            return Err(DbError::Invalid(format!(
                "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
                p.protocol, head.protocol
            )));
        }
        locked_listeners.push(l.to_string());
    }
    check_quota(&mut c, &store.quota_defaults, &p.project_id, Res::Pool, 1).await?;
    c.execute(
        "INSERT INTO pool (id, project_id, load_balancer_id, provisioning_status, \
         operating_status, enabled, protocol, lb_algorithm, created_at) \
         VALUES ($1, $2, $3, 'PENDING_CREATE', 'OFFLINE', $4, $5, $6, $7)",
        args![
            id(p.id),
            &p.project_id,
            id(p.load_balancer_id),
            p.enabled,
            p.protocol.as_str(),
            p.lb_algorithm.as_str(),
            now()
        ],
    )
    .await?;
    write_pool_columns(&mut c, p).await?;
    if let Some(l) = listener {
        c.execute(
            "UPDATE listener SET default_pool_id = $1 WHERE id = $2",
            args![id(p.id), id(l)],
        )
        .await?;
    }
    let listener_ids = set_listeners_pending(&mut c, &locked_listeners).await?;
    let lb = p.load_balancer_id;
    set_status(
        &mut c,
        "load_balancer",
        &lb.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let locks = LockSet {
        load_balancer_id: Some(lb),
        listener_ids,
        ..Default::default()
    };
    enqueue_tenant_job(
        store,
        tx,
        Action::Create,
        ObjectKind::Pool,
        p.id.uuid(),
        locks,
    )
    .await
}

pub(crate) async fn update_pool(
    store: &Store,
    p: &Pool,
    expected: Option<Timestamp>,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let head = pool_head(&mut c, p.id).await?;
    let lb = head.load_balancer_id;
    lock_lb_for_child(&mut c, lb).await?;
    check_expected("Pool", p.id, head.updated_at, expected)?;
    write_pool_columns(&mut c, p).await?;
    set_status(
        &mut c,
        "pool",
        &p.id.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let ls = listeners_using_pool(&mut c, &p.id.to_string()).await?;
    let listener_ids = set_listeners_pending(&mut c, &ls).await?;
    set_status(
        &mut c,
        "load_balancer",
        &lb.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let locks = LockSet {
        load_balancer_id: Some(lb),
        listener_ids,
        ..Default::default()
    };
    enqueue_tenant_job(
        store,
        tx,
        Action::Update,
        ObjectKind::Pool,
        p.id.uuid(),
        locks,
    )
    .await
}

pub(crate) async fn delete_pool(store: &Store, p: PoolId) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let head = pool_head(&mut c, p).await?;
    let lb = head.load_balancer_id;
    lock_lb_for_child(&mut c, lb).await?;
    let policy: Option<(String,)> = c
        .fetch_optional(
            "SELECT id FROM l7policy WHERE redirect_pool_id = $1 ORDER BY id LIMIT 1",
            args![id(p)],
        )
        .await?;
    if let Some((pid,)) = policy {
        return Err(DbError::Conflict(format!(
            "Pool {p} is in use by L7 policy {pid}"
        )));
    }
    set_status(
        &mut c,
        "pool",
        &p.to_string(),
        ProvisioningStatus::PendingDelete,
    )
    .await?;
    let ls = listeners_using_pool(&mut c, &p.to_string()).await?;
    let listener_ids = set_listeners_pending(&mut c, &ls).await?;
    set_status(
        &mut c,
        "load_balancer",
        &lb.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let locks = LockSet {
        load_balancer_id: Some(lb),
        listener_ids,
        ..Default::default()
    };
    enqueue_tenant_job(store, tx, Action::Delete, ObjectKind::Pool, p.uuid(), locks).await
}

// ------------------------------------------------------------------ members and HMs

/// Lock for a write below a pool: LB ACTIVE, pool ACTIVE; pool, its listeners and the
/// LB go PENDING_UPDATE. Returns the lock set.
async fn lock_pool_subtree(c: &mut Conn<'_>, pool: PoolId) -> Result<LockSet> {
    let head = pool_head(c, pool).await?;
    let lb = head.load_balancer_id;
    lock_lb_for_child(c, lb).await?;
    // Re-read the pool status under the LB lock.
    let head = pool_head(c, pool).await?;
    if !head.status.is_mutable() {
        return Err(immutable("Pool", pool));
    }
    set_status(
        c,
        "pool",
        &pool.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let ls = listeners_using_pool(c, &pool.to_string()).await?;
    let listener_ids = set_listeners_pending(c, &ls).await?;
    set_status(
        c,
        "load_balancer",
        &lb.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    Ok(LockSet {
        load_balancer_id: Some(lb),
        listener_ids,
        pool_id: Some(pool),
        l7policy_id: None,
    })
}

async fn member_head(c: &mut Conn<'_>, m: MemberId) -> Result<(PoolId, Option<Timestamp>)> {
    let row: Option<(String, Option<Timestamp>)> = c
        .fetch_optional(
            "SELECT pool_id, updated_at FROM member WHERE id = $1",
            args![id(m)],
        )
        .await?;
    let (p, u) = row.ok_or_else(|| not_found("Member", m))?;
    Ok((crate::rows::parse("pool id", &p)?, u))
}

async fn insert_member(c: &mut Conn<'_>, m: &Member, has_hm: bool) -> Result<()> {
    let dup = c
        .count(
            "SELECT COUNT(*) FROM member WHERE pool_id = $1 AND ip_address = $2 AND \
             protocol_port = $3",
            args![id(m.pool_id), &m.ip_address, m.protocol_port],
        )
        .await?;
    if dup > 0 {
        return Err(DbError::Conflict(format!(
            "Another member on this pool is already using ip {} on protocol_port {}",
            m.ip_address, m.protocol_port
        )));
    }
    let op = if has_hm {
        OperatingStatus::Offline
    } else {
        OperatingStatus::NoMonitor
    };
    c.execute(
        "INSERT INTO member (id, project_id, pool_id, name, provisioning_status, \
         operating_status, enabled, ip_address, protocol_port, weight, backup, subnet_id, \
         monitor_address, monitor_port, vnic_type, created_at) VALUES ($1, $2, $3, $4, \
         'PENDING_CREATE', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        args![
            id(m.id),
            &m.project_id,
            id(m.pool_id),
            &m.name,
            op.as_str(),
            m.enabled,
            &m.ip_address,
            m.protocol_port,
            m.weight,
            m.backup,
            &m.subnet_id,
            &m.monitor_address,
            m.monitor_port,
            &m.vnic_type,
            now()
        ],
    )
    .await?;
    write_tags(c, &m.id.to_string(), &m.tags).await
}

async fn update_member_row(c: &mut Conn<'_>, m: &Member) -> Result<()> {
    c.execute(
        "UPDATE member SET name = $1, enabled = $2, weight = $3, backup = $4, subnet_id = $5, \
         monitor_address = $6, monitor_port = $7, vnic_type = $8, \
         provisioning_status = 'PENDING_UPDATE', updated_at = $9 WHERE id = $10",
        args![
            &m.name,
            m.enabled,
            m.weight,
            m.backup,
            &m.subnet_id,
            &m.monitor_address,
            m.monitor_port,
            &m.vnic_type,
            now(),
            id(m.id)
        ],
    )
    .await?;
    write_tags(c, &m.id.to_string(), &m.tags).await
}

async fn pool_has_hm(c: &mut Conn<'_>, pool: PoolId) -> Result<bool> {
    Ok(c.count(
        "SELECT COUNT(*) FROM health_monitor WHERE pool_id = $1",
        args![id(pool)],
    )
    .await?
        > 0)
}

async fn pool_project(c: &mut Conn<'_>, pool: PoolId) -> Result<String> {
    let row: Option<(String,)> = c
        .fetch_optional("SELECT project_id FROM pool WHERE id = $1", args![id(pool)])
        .await?;
    row.map(|r| r.0).ok_or_else(|| not_found("Pool", pool))
}

pub(crate) async fn create_member(store: &Store, m: &Member) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let locks = lock_pool_subtree(&mut c, m.pool_id).await?;
    check_quota(&mut c, &store.quota_defaults, &m.project_id, Res::Member, 1).await?;
    let has_hm = pool_has_hm(&mut c, m.pool_id).await?;
    insert_member(&mut c, m, has_hm).await?;
    enqueue_tenant_job(
        store,
        tx,
        Action::Create,
        ObjectKind::Member,
        m.id.uuid(),
        locks,
    )
    .await
}

pub(crate) async fn update_member(
    store: &Store,
    m: &Member,
    expected: Option<Timestamp>,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (pool, updated) = member_head(&mut c, m.id).await?;
    let locks = lock_pool_subtree(&mut c, pool).await?;
    check_expected("Member", m.id, updated, expected)?;
    update_member_row(&mut c, m).await?;
    enqueue_tenant_job(
        store,
        tx,
        Action::Update,
        ObjectKind::Member,
        m.id.uuid(),
        locks,
    )
    .await
}

pub(crate) async fn delete_member(store: &Store, m: MemberId) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (pool, _) = member_head(&mut c, m).await?;
    let locks = lock_pool_subtree(&mut c, pool).await?;
    set_status(
        &mut c,
        "member",
        &m.to_string(),
        ProvisioningStatus::PendingDelete,
    )
    .await?;
    enqueue_tenant_job(
        store,
        tx,
        Action::Delete,
        ObjectKind::Member,
        m.uuid(),
        locks,
    )
    .await
}

pub(crate) async fn batch_update_members(
    store: &Store,
    pool: PoolId,
    change: &MemberBatchChange,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let locks = lock_pool_subtree(&mut c, pool).await?;
    let project = pool_project(&mut c, pool).await?;
    check_quota(
        &mut c,
        &store.quota_defaults,
        &project,
        Res::Member,
        change.create.len() as i64 - change.delete.len() as i64,
    )
    .await?;
    for mid in &change.delete {
        let (p, _) = member_head(&mut c, *mid).await?;
        if p != pool {
            return Err(not_found("Member", mid));
        }
        set_status(
            &mut c,
            "member",
            &mid.to_string(),
            ProvisioningStatus::PendingDelete,
        )
        .await?;
    }
    for m in &change.update {
        let (p, _) = member_head(&mut c, m.id).await?;
        if p != pool {
            return Err(not_found("Member", m.id));
        }
        update_member_row(&mut c, m).await?;
    }
    let has_hm = pool_has_hm(&mut c, pool).await?;
    for m in &change.create {
        let mut m = m.clone();
        m.pool_id = pool;
        insert_member(&mut c, &m, has_hm).await?;
    }
    let mut sp = spec(Action::BatchUpdate, ObjectKind::Pool, pool.uuid(), locks);
    sp.members = Some(MemberBatch {
        created: change.create.iter().map(|m| m.id).collect(),
        updated: change.update.iter().map(|m| m.id).collect(),
        deleted: change.delete.clone(),
    });
    let job = insert_job(&mut c, JobClass::Tenant, &sp).await?;
    commit_job(store, tx).await?;
    Ok(job)
}

async fn write_hm_columns(c: &mut Conn<'_>, h: &HealthMonitor) -> Result<()> {
    c.execute(
        "UPDATE health_monitor SET name = $1, enabled = $2, delay = $3, timeout = $4, \
         fall_threshold = $5, rise_threshold = $6, http_method = $7, url_path = $8, \
         expected_codes = $9, http_version = $10, domain_name = $11 WHERE id = $12",
        args![
            &h.name,
            h.enabled,
            h.delay,
            h.timeout,
            h.fall_threshold,
            h.rise_threshold,
            h.http_method.map(|m| m.as_str().to_string()),
            &h.url_path,
            &h.expected_codes,
            h.http_version,
            &h.domain_name,
            id(h.id)
        ],
    )
    .await?;
    write_tags(c, &h.id.to_string(), &h.tags).await
}

async fn hm_head(c: &mut Conn<'_>, h: HealthMonitorId) -> Result<(PoolId, Option<Timestamp>)> {
    let row: Option<(String, Option<Timestamp>)> = c
        .fetch_optional(
            "SELECT pool_id, updated_at FROM health_monitor WHERE id = $1",
            args![id(h)],
        )
        .await?;
    let (p, u) = row.ok_or_else(|| not_found("Health Monitor", h))?;
    Ok((crate::rows::parse("pool id", &p)?, u))
}

pub(crate) async fn create_health_monitor(store: &Store, h: &HealthMonitor) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let locks = lock_pool_subtree(&mut c, h.pool_id).await?;
    if pool_has_hm(&mut c, h.pool_id).await? {
        return Err(DbError::Conflict(format!(
            "Pool {} already has a health monitor",
            h.pool_id
        )));
    }
    check_quota(
        &mut c,
        &store.quota_defaults,
        &h.project_id,
        Res::HealthMonitor,
        1,
    )
    .await?;
    c.execute(
        "INSERT INTO health_monitor (id, project_id, pool_id, provisioning_status, \
         operating_status, enabled, type, delay, timeout, fall_threshold, rise_threshold, \
         created_at) VALUES ($1, $2, $3, 'PENDING_CREATE', 'OFFLINE', $4, $5, $6, $7, $8, $9, $10)",
        args![
            id(h.id),
            &h.project_id,
            id(h.pool_id),
            h.enabled,
            h.monitor_type.as_str(),
            h.delay,
            h.timeout,
            h.fall_threshold,
            h.rise_threshold,
            now()
        ],
    )
    .await?;
    write_hm_columns(&mut c, h).await?;
    let job = insert_job(
        &mut c,
        JobClass::Tenant,
        &spec(
            Action::Create,
            ObjectKind::HealthMonitor,
            h.id.uuid(),
            locks,
        ),
    )
    .await?;
    commit_job(store, tx).await?;
    Ok(job)
}

pub(crate) async fn update_health_monitor(
    store: &Store,
    h: &HealthMonitor,
    expected: Option<Timestamp>,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (pool, updated) = hm_head(&mut c, h.id).await?;
    let locks = lock_pool_subtree(&mut c, pool).await?;
    check_expected("Health Monitor", h.id, updated, expected)?;
    write_hm_columns(&mut c, h).await?;
    set_status(
        &mut c,
        "health_monitor",
        &h.id.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let job = insert_job(
        &mut c,
        JobClass::Tenant,
        &spec(
            Action::Update,
            ObjectKind::HealthMonitor,
            h.id.uuid(),
            locks,
        ),
    )
    .await?;
    commit_job(store, tx).await?;
    Ok(job)
}

pub(crate) async fn delete_health_monitor(store: &Store, h: HealthMonitorId) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (pool, _) = hm_head(&mut c, h).await?;
    let locks = lock_pool_subtree(&mut c, pool).await?;
    set_status(
        &mut c,
        "health_monitor",
        &h.to_string(),
        ProvisioningStatus::PendingDelete,
    )
    .await?;
    enqueue_tenant_job(
        store,
        tx,
        Action::Delete,
        ObjectKind::HealthMonitor,
        h.uuid(),
        locks,
    )
    .await
}

// ------------------------------------------------------------------ L7 policies and rules

/// Renumber the policies of a listener 1..n, placing `moving` (if given) at `position`
/// (out of range = last).
pub(crate) async fn renumber_policies(
    c: &mut Conn<'_>,
    listener: &str,
    moving: Option<(&str, i32)>,
) -> Result<()> {
    let rows: Vec<(String,)> = c
        .fetch_all(
            "SELECT id FROM l7policy WHERE listener_id = $1 ORDER BY position, created_at, id",
            args![listener],
        )
        .await?;
    let mut ids: Vec<String> = rows.into_iter().map(|r| r.0).collect();
    if let Some((m, pos)) = moving {
        ids.retain(|i| i != m);
        let idx = if pos >= 1 && (pos as usize) <= ids.len() {
            pos as usize - 1
        } else {
            ids.len()
        };
        ids.insert(idx, m.to_string());
    }
    for (i, pid) in ids.iter().enumerate() {
        c.execute(
            "UPDATE l7policy SET position = $1 WHERE id = $2 AND position <> $1",
            args![i as i32 + 1, pid],
        )
        .await?;
    }
    Ok(())
}

async fn check_redirect_pool(c: &mut Conn<'_>, p: &L7Policy, lb: LoadBalancerId) -> Result<()> {
    if let Some(pool) = p.redirect_pool_id {
        let head = pool_head(c, pool).await?;
        if head.load_balancer_id != lb {
            return Err(not_found("Pool", pool));
        }
    }
    Ok(())
}

async fn write_policy_columns(c: &mut Conn<'_>, p: &L7Policy) -> Result<()> {
    c.execute(
        "UPDATE l7policy SET name = $1, description = $2, enabled = $3, action = $4, \
         redirect_pool_id = $5, redirect_url = $6, redirect_prefix = $7, \
         redirect_http_code = $8 WHERE id = $9",
        vec![
            Arg::from(&p.name),
            Arg::from(&p.description),
            Arg::from(p.enabled),
            Arg::from(p.action.as_str()),
            opt_id(p.redirect_pool_id),
            Arg::from(&p.redirect_url),
            Arg::from(&p.redirect_prefix),
            Arg::from(p.redirect_http_code),
            id(p.id),
        ],
    )
    .await?;
    write_tags(c, &p.id.to_string(), &p.tags).await
}

async fn policy_head(
    c: &mut Conn<'_>,
    p: L7PolicyId,
) -> Result<(ListenerId, ProvisioningStatus, Option<Timestamp>)> {
    let row: Option<(String, String, Option<Timestamp>)> = c
        .fetch_optional(
            "SELECT listener_id, provisioning_status, updated_at FROM l7policy WHERE id = $1",
            args![id(p)],
        )
        .await?;
    let (l, s, u) = row.ok_or_else(|| not_found("L7 Policy", p))?;
    Ok((
        crate::rows::parse("listener id", &l)?,
        crate::rows::parse("provisioning status", &s)?,
        u,
    ))
}

/// LB ACTIVE; listener and LB → PENDING_UPDATE.
async fn lock_listener_subtree(
    c: &mut Conn<'_>,
    l: ListenerId,
) -> Result<(LoadBalancerId, LockSet)> {
    let head = listener_head(c, l).await?;
    let lb = head.load_balancer_id;
    lock_lb_for_child(c, lb).await?;
    set_status(
        c,
        "listener",
        &l.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    set_status(
        c,
        "load_balancer",
        &lb.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    Ok((
        lb,
        LockSet {
            load_balancer_id: Some(lb),
            listener_ids: vec![l],
            ..Default::default()
        },
    ))
}

pub(crate) async fn create_l7policy(store: &Store, p: &L7Policy) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (lb, locks) = lock_listener_subtree(&mut c, p.listener_id).await?;
    check_redirect_pool(&mut c, p, lb).await?;
    check_quota(
        &mut c,
        &store.quota_defaults,
        &p.project_id,
        Res::L7Policy,
        1,
    )
    .await?;
    c.execute(
        "INSERT INTO l7policy (id, project_id, listener_id, provisioning_status, \
         operating_status, enabled, action, position, created_at) \
         VALUES ($1, $2, $3, 'PENDING_CREATE', 'OFFLINE', $4, $5, 2147483647, $6)",
        args![
            id(p.id),
            &p.project_id,
            id(p.listener_id),
            p.enabled,
            p.action.as_str(),
            now()
        ],
    )
    .await?;
    write_policy_columns(&mut c, p).await?;
    let pid = p.id.to_string();
    renumber_policies(&mut c, &p.listener_id.to_string(), Some((&pid, p.position))).await?;
    enqueue_tenant_job(
        store,
        tx,
        Action::Create,
        ObjectKind::L7Policy,
        p.id.uuid(),
        locks,
    )
    .await
}

pub(crate) async fn update_l7policy(
    store: &Store,
    p: &L7Policy,
    expected: Option<Timestamp>,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (listener, _, updated) = policy_head(&mut c, p.id).await?;
    let (lb, locks) = lock_listener_subtree(&mut c, listener).await?;
    check_expected("L7 Policy", p.id, updated, expected)?;
    check_redirect_pool(&mut c, p, lb).await?;
    write_policy_columns(&mut c, p).await?;
    let pid = p.id.to_string();
    renumber_policies(&mut c, &listener.to_string(), Some((&pid, p.position))).await?;
    set_status(&mut c, "l7policy", &pid, ProvisioningStatus::PendingUpdate).await?;
    enqueue_tenant_job(
        store,
        tx,
        Action::Update,
        ObjectKind::L7Policy,
        p.id.uuid(),
        locks,
    )
    .await
}

pub(crate) async fn delete_l7policy(store: &Store, p: L7PolicyId) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (listener, _, _) = policy_head(&mut c, p).await?;
    let (_, locks) = lock_listener_subtree(&mut c, listener).await?;
    set_status(
        &mut c,
        "l7policy",
        &p.to_string(),
        ProvisioningStatus::PendingDelete,
    )
    .await?;
    enqueue_tenant_job(
        store,
        tx,
        Action::Delete,
        ObjectKind::L7Policy,
        p.uuid(),
        locks,
    )
    .await
}

/// LB ACTIVE, policy ACTIVE; policy, listener and LB → PENDING_UPDATE.
async fn lock_policy_subtree(c: &mut Conn<'_>, p: L7PolicyId) -> Result<LockSet> {
    let (listener, _, _) = policy_head(c, p).await?;
    let head = listener_head(c, listener).await?;
    lock_lb_for_child(c, head.load_balancer_id).await?;
    let (_, status, _) = policy_head(c, p).await?;
    if !status.is_mutable() {
        return Err(immutable("L7 Policy", p));
    }
    let (_, mut locks) = lock_listener_subtree(c, listener).await?;
    set_status(
        c,
        "l7policy",
        &p.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    locks.l7policy_id = Some(p);
    Ok(locks)
}

async fn rule_head(c: &mut Conn<'_>, r: L7RuleId) -> Result<(L7PolicyId, Option<Timestamp>)> {
    let row: Option<(String, Option<Timestamp>)> = c
        .fetch_optional(
            "SELECT l7policy_id, updated_at FROM l7rule WHERE id = $1",
            args![id(r)],
        )
        .await?;
    let (p, u) = row.ok_or_else(|| not_found("L7 Rule", r))?;
    Ok((crate::rows::parse("l7policy id", &p)?, u))
}

/// Most rules one policy may hold.
pub const MAX_L7RULES_PER_POLICY: i64 = 50;

async fn write_rule_columns(c: &mut Conn<'_>, r: &L7Rule) -> Result<()> {
    c.execute(
        "UPDATE l7rule SET enabled = $1, type = $2, compare_type = $3, key = $4, value = $5, \
         invert = $6 WHERE id = $7",
        args![
            r.enabled,
            r.rule_type.as_str(),
            r.compare_type.as_str(),
            &r.key,
            &r.value,
            r.invert,
            id(r.id)
        ],
    )
    .await?;
    write_tags(c, &r.id.to_string(), &r.tags).await
}

pub(crate) async fn create_l7rule(store: &Store, r: &L7Rule) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let locks = lock_policy_subtree(&mut c, r.l7policy_id).await?;
    let n = c
        .count(
            "SELECT COUNT(*) FROM l7rule WHERE l7policy_id = $1",
            args![id(r.l7policy_id)],
        )
        .await?;
    if n >= MAX_L7RULES_PER_POLICY {
        return Err(DbError::Conflict(format!(
            "Too many rules on L7 policy {}",
            r.l7policy_id
        )));
    }
    check_quota(&mut c, &store.quota_defaults, &r.project_id, Res::L7Rule, 1).await?;
    c.execute(
        "INSERT INTO l7rule (id, project_id, l7policy_id, provisioning_status, operating_status, \
         enabled, type, compare_type, value, created_at) \
         VALUES ($1, $2, $3, 'PENDING_CREATE', 'OFFLINE', $4, $5, $6, $7, $8)",
        args![
            id(r.id),
            &r.project_id,
            id(r.l7policy_id),
            r.enabled,
            r.rule_type.as_str(),
            r.compare_type.as_str(),
            &r.value,
            now()
        ],
    )
    .await?;
    write_rule_columns(&mut c, r).await?;
    enqueue_tenant_job(
        store,
        tx,
        Action::Create,
        ObjectKind::L7Rule,
        r.id.uuid(),
        locks,
    )
    .await
}

pub(crate) async fn update_l7rule(
    store: &Store,
    r: &L7Rule,
    expected: Option<Timestamp>,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (policy, updated) = rule_head(&mut c, r.id).await?;
    let locks = lock_policy_subtree(&mut c, policy).await?;
    check_expected("L7 Rule", r.id, updated, expected)?;
    write_rule_columns(&mut c, r).await?;
    set_status(
        &mut c,
        "l7rule",
        &r.id.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    enqueue_tenant_job(
        store,
        tx,
        Action::Update,
        ObjectKind::L7Rule,
        r.id.uuid(),
        locks,
    )
    .await
}

pub(crate) async fn delete_l7rule(store: &Store, r: L7RuleId) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (policy, _) = rule_head(&mut c, r).await?;
    let locks = lock_policy_subtree(&mut c, policy).await?;
    set_status(
        &mut c,
        "l7rule",
        &r.to_string(),
        ProvisioningStatus::PendingDelete,
    )
    .await?;
    enqueue_tenant_job(
        store,
        tx,
        Action::Delete,
        ObjectKind::L7Rule,
        r.uuid(),
        locks,
    )
    .await
}

// ------------------------------------------------------------------ failovers

pub(crate) async fn failover_load_balancer(
    store: &Store,
    lb: LoadBalancerId,
    class: JobClass,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let (s, _) = lock_lb(&mut c, lb).await?;
    if !s.is_deletable() {
        return Err(DbError::Conflict(format!(
            "Invalid state {s} of loadbalancer resource {lb}"
        )));
    }
    set_status(
        &mut c,
        "load_balancer",
        &lb.to_string(),
        ProvisioningStatus::PendingUpdate,
    )
    .await?;
    let locks = LockSet {
        load_balancer_id: Some(lb),
        ..Default::default()
    };
    let job = insert_job(
        &mut c,
        class,
        &spec(Action::Failover, ObjectKind::LoadBalancer, lb.uuid(), locks),
    )
    .await?;
    commit_job(store, tx).await?;
    Ok(job)
}

pub(crate) async fn failover_amphora(
    store: &Store,
    amphora: AmphoraId,
    class: JobClass,
) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let job = failover_amphora_in(&mut tx.conn(), amphora, class).await?;
    commit_job(store, tx).await?;
    Ok(job)
}

/// Lock the amphora's load balancer (it must be ACTIVE or ERROR: failover is also the
/// repair of a broken one), move it to PENDING_UPDATE and insert the `failover_amphora`
/// job, inside the caller's transaction.
pub(crate) async fn failover_amphora_in(
    c: &mut Conn<'_>,
    amphora: AmphoraId,
    class: JobClass,
) -> Result<JobId> {
    let row: Option<(Option<String>, String)> = c
        .fetch_optional(
            "SELECT load_balancer_id, status FROM amphora WHERE id = $1",
            args![id(amphora)],
        )
        .await?;
    let (lb, status) = row.ok_or_else(|| not_found("Amphora", amphora))?;
    if status == ProvisioningStatus::Deleted.as_str() {
        return Err(not_found("Amphora", amphora));
    }
    let mut locks = LockSet::default();
    if let Some(lb) = lb {
        let lb: LoadBalancerId = crate::rows::parse("load balancer id", &lb)?;
        let (s, _) = lock_lb(c, lb).await?;
        if !s.is_deletable() {
            return Err(DbError::Conflict(format!(
                "Invalid state {s} of loadbalancer resource {lb}"
            )));
        }
        set_status(
            c,
            "load_balancer",
            &lb.to_string(),
            ProvisioningStatus::PendingUpdate,
        )
        .await?;
        locks.load_balancer_id = Some(lb);
    }
    let mut sp = spec(Action::Failover, ObjectKind::Amphora, amphora.uuid(), locks);
    sp.amphora_id = Some(amphora);
    insert_job(c, class, &sp).await
}

/// `DELETE /amphorae/{id}`: only an ERROR amphora (else Conflict); it goes PENDING_DELETE and
/// a `delete_amphora` job (class Operator) is queued in the same transaction.
pub(crate) async fn delete_amphora(store: &Store, amphora: AmphoraId) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let sql = format!("SELECT status FROM amphora WHERE id = $1{}", c.for_update());
    let row: Option<(String,)> = c.fetch_optional(&sql, args![id(amphora)]).await?;
    let (status,) = row.ok_or_else(|| not_found("Amphora", amphora))?;
    if status == ProvisioningStatus::Deleted.as_str() {
        return Err(not_found("Amphora", amphora));
    }
    if status != ProvisioningStatus::Error.as_str() {
        return Err(DbError::Conflict(format!(
            "Invalid state {status} of amphora resource {amphora}: only ERROR amphorae can be deleted"
        )));
    }
    c.execute(
        "UPDATE amphora SET status = 'PENDING_DELETE', updated_at = $1 WHERE id = $2",
        args![now(), id(amphora)],
    )
    .await?;
    let mut sp = spec(
        Action::Delete,
        ObjectKind::Amphora,
        amphora.uuid(),
        LockSet::default(),
    );
    sp.amphora_id = Some(amphora);
    let job = insert_job(&mut c, JobClass::Operator, &sp).await?;
    commit_job(store, tx).await?;
    Ok(job)
}

/// `PUT /amphorae/{id}/config`: queue an `update_amphora` job (class Operator) that pushes
/// the regenerated agent configuration. Unknown or DELETED → NotFound. No load balancer
/// lock: the configuration of the agent is not the load balancer's.
pub(crate) async fn update_amphora_config(store: &Store, amphora: AmphoraId) -> Result<JobId> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let row: Option<(String,)> = c
        .fetch_optional(
            "SELECT status FROM amphora WHERE id = $1",
            args![id(amphora)],
        )
        .await?;
    let (status,) = row.ok_or_else(|| not_found("Amphora", amphora))?;
    if status == ProvisioningStatus::Deleted.as_str() {
        return Err(not_found("Amphora", amphora));
    }
    let mut sp = spec(
        Action::Update,
        ObjectKind::Amphora,
        amphora.uuid(),
        LockSet::default(),
    );
    sp.amphora_id = Some(amphora);
    let job = insert_job(&mut c, JobClass::Operator, &sp).await?;
    commit_job(store, tx).await?;
    Ok(job)
}
