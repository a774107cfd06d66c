//! Health monitors: reads and the tenant writes (one per pool).

use octavia_model::*;

use super::member::pool_has_hm;
use super::shared::{check_quota, lock_pool_subtree, write_tags};
use crate::db::{args, id as sid, Conn};
use crate::{DbError, ListQuery, Result, Store};

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
            sid(h.id)
        ],
    )
    .await?;
    write_tags(c, h.id, &h.tags).await
}

/// Insert `h` (PENDING_CREATE/OFFLINE) with its tags.
pub(crate) async fn insert_health_monitor(c: &mut Conn<'_>, h: &HealthMonitor) -> Result<()> {
    c.execute(
        "INSERT INTO health_monitor (id, project_id, pool_id, provisioning_status, \
         operating_status, enabled, type, delay, timeout, fall_threshold, rise_threshold, \
         created_at) VALUES ($1, $2, $3, 'PENDING_CREATE', 'OFFLINE', $4, $5, $6, $7, $8, \
         $9, $10)",
        args![
            sid(h.id),
            &h.project_id,
            sid(h.pool_id),
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
    write_hm_columns(c, h).await
}

impl Store {
    pub async fn get_health_monitor(&self, id: HealthMonitorId) -> Result<Option<HealthMonitor>> {
        self.get(id).await
    }

    pub async fn list_health_monitors(&self, q: &ListQuery) -> Result<Vec<HealthMonitor>> {
        self.list(q).await
    }

    /// One per pool (Conflict). Pool ACTIVE → PENDING_UPDATE with LB and listeners.
    pub async fn create_health_monitor(
        &self,
        hm: &HealthMonitor,
    ) -> Result<(HealthMonitor, JobId)> {
        let h = hm;
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let kind = ObjectKind::HealthMonitor;
        let locks = lock_pool_subtree(&mut c, h.pool_id).await?;
        if pool_has_hm(&mut c, h.pool_id).await? {
            return Err(DbError::Conflict(format!(
                "Pool {} already has a health monitor",
                h.pool_id
            )));
        }
        check_quota(&mut c, &self.quota_defaults, &h.project_id, kind, 1).await?;
        insert_health_monitor(&mut c, h).await?;
        tx.created(kind, h.id.uuid(), locks).await
    }

    pub async fn update_health_monitor(
        &self,
        hm: &HealthMonitor,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(HealthMonitor, JobId)> {
        let (kind, id) = (ObjectKind::HealthMonitor, hm.id.uuid());
        let (mut tx, locks) = self.begin_update(kind, id, expected_updated_at).await?;
        write_hm_columns(&mut tx.conn(), hm).await?;
        tx.updated(kind, id, locks).await
    }

    pub async fn delete_health_monitor(&self, id: HealthMonitorId) -> Result<JobId> {
        self.delete_object(ObjectKind::HealthMonitor, id.uuid())
            .await
    }
}
