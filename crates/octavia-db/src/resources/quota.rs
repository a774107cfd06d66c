//! Quotas: the per-project rows (`GET/PUT/DELETE /quotas/{project}`); the check every
//! create makes is `shared::check_quota`.

use octavia_model::*;

use crate::db::args;
use crate::error::RecordKind;
use crate::list::list_rows;
use crate::rows::{source, QuotaRow, QUOTA_SELECT};
use crate::{DbError, ListQuery, Result, Store};

impl Store {
    /// The stored row (fields `None` where the default applies).
    pub async fn get_quota(&self, project_id: &str) -> Result<Option<Quota>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let row: Option<QuotaRow> = c
            .fetch_optional(
                &format!("SELECT {QUOTA_SELECT} FROM quotas x WHERE x.project_id = $1"),
                args![project_id],
            )
            .await?;
        Ok(row.map(QuotaRow::into_model))
    }

    pub async fn list_quotas(&self, q: &ListQuery) -> Result<Vec<Quota>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let rows: Vec<QuotaRow> = list_rows(&mut c, &source(RecordKind::Quota), q, vec![]).await?;
        Ok(rows.into_iter().map(QuotaRow::into_model).collect())
    }

    /// Upsert; returns the stored row.
    pub async fn set_quota(&self, quota: &Quota) -> Result<Quota> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        c.execute(
            "INSERT INTO quotas (project_id, load_balancer, listener, pool, health_monitor, \
             member, l7policy, l7rule) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (project_id) DO UPDATE SET load_balancer = $2, listener = $3, \
             pool = $4, health_monitor = $5, member = $6, l7policy = $7, l7rule = $8",
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
        let stored = self.get_quota(&quota.project_id).await?;
        stored.ok_or_else(|| DbError::not_found(RecordKind::Quota, &quota.project_id))
    }

    /// Reset to defaults (delete the row). Idempotent: Octavia answers 202 whether there
    /// was a row or not.
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
}
