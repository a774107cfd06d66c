//! Pools: reads and the tenant writes (default pool of a listener, session persistence).

use octavia_model::*;

use super::listener::listener_head;
use super::shared::{check_quota, lock_lb_for_child, lock_object, set_status, write_tags};
use crate::db::{args, id as sid, Conn};
use crate::rows::to_json;
use crate::{DbError, ListQuery, Result, Store};

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
            sid(p.id)
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

/// Insert `p` (PENDING_CREATE/OFFLINE) with its session persistence and tag rows.
pub(crate) async fn insert_pool(c: &mut Conn<'_>, p: &Pool) -> Result<()> {
    c.execute(
        "INSERT INTO pool (id, project_id, load_balancer_id, provisioning_status, \
         operating_status, enabled, protocol, lb_algorithm, created_at) \
         VALUES ($1, $2, $3, 'PENDING_CREATE', 'OFFLINE', $4, $5, $6, $7)",
        args![
            sid(p.id),
            &p.project_id,
            sid(p.load_balancer_id),
            p.enabled,
            p.protocol.as_str(),
            p.lb_algorithm.as_str(),
            now()
        ],
    )
    .await?;
    write_pool_columns(c, p).await
}

/// The listener `l` a new pool becomes the default pool of: on the pool's load balancer,
/// without a default pool yet, with a compatible protocol.
async fn check_listener_for_new_pool(c: &mut Conn<'_>, l: ListenerId, p: &Pool) -> Result<()> {
    let head = listener_head(c, l).await?;
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
    Ok(())
}

impl Store {
    pub async fn get_pool(&self, id: PoolId) -> Result<Option<Pool>> {
        self.get(id).await
    }

    pub async fn list_pools(&self, q: &ListQuery) -> Result<Vec<Pool>> {
        self.list(q).await
    }

    /// `listener_id`: also becomes that listener's default pool (Conflict if it has one).
    /// LB + affected listeners → PENDING_UPDATE, pool PENDING_CREATE, job.
    pub async fn create_pool(
        &self,
        pool: &Pool,
        listener_id: Option<ListenerId>,
    ) -> Result<(Pool, JobId)> {
        let p = pool;
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let kind = ObjectKind::Pool;
        lock_lb_for_child(&mut c, p.load_balancer_id).await?;
        if let Some(l) = listener_id {
            check_listener_for_new_pool(&mut c, l, p).await?;
        }
        check_quota(&mut c, &self.quota_defaults, &p.project_id, kind, 1).await?;
        insert_pool(&mut c, p).await?;
        if let Some(l) = listener_id {
            c.execute(
                "UPDATE listener SET default_pool_id = $1 WHERE id = $2",
                args![sid(p.id), sid(l)],
            )
            .await?;
        }
        let locks = LockSet {
            listener_ids: listener_id.into_iter().collect(),
            ..LockSet::load_balancer(p.load_balancer_id)
        };
        tx.created(kind, p.id.uuid(), locks).await
    }

    pub async fn update_pool(
        &self,
        pool: &Pool,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(Pool, JobId)> {
        let (kind, id) = (ObjectKind::Pool, pool.id.uuid());
        let (mut tx, locks) = self.begin_update(kind, id, expected_updated_at).await?;
        write_pool_columns(&mut tx.conn(), pool).await?;
        tx.updated(kind, id, locks).await
    }

    /// Referenced by an L7 policy → Conflict.
    pub async fn delete_pool(&self, id: PoolId) -> Result<JobId> {
        let kind = ObjectKind::Pool;
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let locks = lock_object(&mut c, kind, id.uuid(), None).await?;
        let policy: Option<(String,)> = c
            .fetch_optional(
                "SELECT id FROM l7policy WHERE redirect_pool_id = $1 ORDER BY id LIMIT 1",
                args![sid(id)],
            )
            .await?;
        if let Some((policy,)) = policy {
            return Err(DbError::Conflict(format!(
                "Pool {id} is in use by L7 policy {policy}"
            )));
        }
        set_status(&mut c, kind, id, ProvisioningStatus::PendingDelete).await?;
        tx.tenant(Action::Delete, kind, id.uuid(), locks).await
    }
}
