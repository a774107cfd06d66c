//! Listeners: reads, statistics, and the tenant writes (port spaces, default pools).

use octavia_model::*;

use super::shared::{check_expected, check_quota, distinct, lock_lb_for_child, write_tags};
use crate::db::{args, id as sid, opt_id, Arg, Conn};
use crate::read::{ensure_exists, stats};
use crate::rows::{parse, to_json};
use crate::{DbError, ListQuery, Result, Store};

/// What a write reads of a listener first.
pub(crate) struct ListenerHead {
    pub load_balancer_id: LoadBalancerId,
    pub protocol: ListenerProtocol,
    pub default_pool_id: Option<String>,
    pub updated_at: Option<Timestamp>,
}

/// The [`ListenerHead`] of `l`; missing → NotFound.
pub(crate) async fn listener_head(c: &mut Conn<'_>, l: ListenerId) -> Result<ListenerHead> {
    let row: Option<(String, String, Option<String>, Option<Timestamp>)> = c
        .fetch_optional(
            "SELECT load_balancer_id, protocol, default_pool_id, updated_at FROM listener \
             WHERE id = $1",
            args![sid(l)],
        )
        .await?;
    let (lb, p, dp, u) = row.ok_or_else(|| DbError::not_found(ObjectKind::Listener, l))?;
    Ok(ListenerHead {
        load_balancer_id: parse("load balancer id", &lb)?,
        protocol: parse("protocol", &p)?,
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
            args![sid(pool)],
        )
        .await?;
    let missing = || DbError::not_found(ObjectKind::Pool, pool);
    let (plb, pproto) = row.ok_or_else(missing)?;
    if plb != lb.to_string() {
        return Err(missing());
    }
    let pproto: PoolProtocol = parse("pool protocol", &pproto)?;
    if !protocol.allowed_pool_protocols().contains(&pproto) {
        return Err(DbError::Invalid(format!(
            "The pool protocol '{pproto}' is invalid while the listener protocol is '{protocol}'."
        )));
    }
    let used = c
        .count(
            "SELECT COUNT(*) FROM listener WHERE default_pool_id = $1 AND id <> $2",
            args![sid(pool), sid(listener)],
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
            sid(l.id),
        ],
    )
    .await?;
    let lid = l.id.to_string();
    c.execute("DELETE FROM sni WHERE listener_id = $1", args![&lid])
        .await?;
    for (i, s) in distinct(&l.sni_container_refs).into_iter().enumerate() {
        c.execute(
            "INSERT INTO sni (listener_id, tls_container_id, position) VALUES ($1, $2, $3)",
            args![&lid, s, i as i32 + 1],
        )
        .await?;
    }
    c.execute(
        "DELETE FROM listener_cidr WHERE listener_id = $1",
        args![&lid],
    )
    .await?;
    for s in distinct(&l.allowed_cidrs) {
        c.execute(
            "INSERT INTO listener_cidr (listener_id, cidr) VALUES ($1, $2)",
            args![&lid, s],
        )
        .await?;
    }
    write_tags(c, &lid, &l.tags).await
}

/// What a new listener must not clash with on its load balancer: another listener on the
/// same port in the same port space (Conflict), and a default pool that is not on the load
/// balancer, speaks an incompatible protocol or is another listener's (see
/// [`check_default_pool`]).
pub(crate) async fn check_new_listener(c: &mut Conn<'_>, l: &Listener) -> Result<()> {
    let same_port: Vec<(String,)> = c
        .fetch_all(
            "SELECT protocol FROM listener WHERE load_balancer_id = $1 AND protocol_port = $2",
            args![sid(l.load_balancer_id), l.protocol_port],
        )
        .await?;
    for (p,) in same_port {
        let p: ListenerProtocol = parse("protocol", &p)?;
        if p.port_space() == l.protocol.port_space() {
            return Err(DbError::Conflict(format!(
                "Another Listener on this Load Balancer is already using protocol {p} and \
                 protocol_port {}",
                l.protocol_port
            )));
        }
    }
    if let Some(pool) = l.default_pool_id {
        check_default_pool(c, pool, l.load_balancer_id, l.protocol, l.id).await?;
    }
    Ok(())
}

/// Insert `l` (PENDING_CREATE/OFFLINE) with its SNI, CIDR and tag rows.
pub(crate) async fn insert_listener(c: &mut Conn<'_>, l: &Listener) -> Result<()> {
    c.execute(
        "INSERT INTO listener (id, project_id, load_balancer_id, provisioning_status, \
         operating_status, enabled, protocol, protocol_port, connection_limit, \
         timeout_client_data, timeout_member_connect, timeout_member_data, \
         timeout_tcp_inspect, created_at) VALUES ($1, $2, $3, 'PENDING_CREATE', 'OFFLINE', \
         $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        args![
            sid(l.id),
            &l.project_id,
            sid(l.load_balancer_id),
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
    write_listener_columns(c, l).await
}

impl Store {
    pub async fn get_listener(&self, id: ListenerId) -> Result<Option<Listener>> {
        self.get(id).await
    }

    pub async fn list_listeners(&self, q: &ListQuery) -> Result<Vec<Listener>> {
        self.list(q).await
    }

    pub async fn listener_stats(&self, id: ListenerId) -> Result<ListenerStatistics> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        ensure_exists(&mut c, ObjectKind::Listener, id).await?;
        stats(&mut c, "l.id = $1", id).await
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

    /// LB must exist (NotFound) and be ACTIVE (Conflict "Load Balancer ID is immutable and
    /// cannot be updated."); then [`check_new_listener`], quota. LB → PENDING_UPDATE,
    /// listener PENDING_CREATE, job.
    pub async fn create_listener(&self, listener: &Listener) -> Result<(Listener, JobId)> {
        let l = listener;
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        lock_lb_for_child(&mut c, l.load_balancer_id).await?;
        check_new_listener(&mut c, l).await?;
        let kind = ObjectKind::Listener;
        check_quota(&mut c, &self.quota_defaults, &l.project_id, kind, 1).await?;
        insert_listener(&mut c, l).await?;
        let locks = LockSet::load_balancer(l.load_balancer_id);
        tx.created(kind, l.id.uuid(), locks).await
    }

    /// LB and listener → PENDING_UPDATE; new value written; job.
    pub async fn update_listener(
        &self,
        listener: &Listener,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(Listener, JobId)> {
        let l = listener;
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let kind = ObjectKind::Listener;
        let head = listener_head(&mut c, l.id).await?;
        let lb = head.load_balancer_id;
        lock_lb_for_child(&mut c, lb).await?;
        check_expected(kind, l.id, head.updated_at, expected_updated_at)?;
        if let Some(pool) = l.default_pool_id {
            if head.default_pool_id.as_deref() != Some(&pool.to_string()) {
                check_default_pool(&mut c, pool, lb, head.protocol, l.id).await?;
            }
        }
        write_listener_columns(&mut c, l).await?;
        tx.updated(kind, l.id.uuid(), LockSet::load_balancer(lb))
            .await
    }

    /// LB → PENDING_UPDATE, listener → PENDING_DELETE, job.
    pub async fn delete_listener(&self, id: ListenerId) -> Result<JobId> {
        self.delete_object(ObjectKind::Listener, id.uuid()).await
    }
}
