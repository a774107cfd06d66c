//! Housekeeping (reference §7): purging the rows that are old enough
//! (`octavia_model::housekeeping` computes the cutoffs) and claiming amphorae whose
//! certificate is due for renewal.
//!
//! Any number of housekeepers may run on one database. A renewal is claimed by setting the
//! amphora's `cert_busy` in the transaction that queues its `rotate_certificate_amphora` job;
//! the row is read `FOR UPDATE SKIP LOCKED` on PostgreSQL and the update is conditional on
//! `cert_busy` still being false, so a certificate is renewed once whichever housekeeper sees
//! it first. Settling that job clears `cert_busy`. Purges delete rows chosen `FOR UPDATE SKIP
//! LOCKED` (SQLite: inside the write transaction), so two housekeepers never delete one row
//! twice; each reports what it deleted itself.

use octavia_model::housekeeping::PurgeCutoffs;
use octavia_model::*;

use crate::db::{args, id, Arg, Conn};
use crate::resources::shared::insert_job;
use crate::rows::parse;
use crate::{Result, Store};

/// Rows deleted per statement, so that a large backlog never holds one long transaction.
const PURGE_BATCH: i64 = 500;

/// What one cleanup pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// DELETED amphora rows (with their health and statistics rows).
    pub amphorae: u64,
    /// DELETED load balancer rows (with their VIP and tags).
    pub load_balancers: u64,
    /// DONE and FAILED job rows.
    pub jobs: u64,
}

/// Which amphorae are eligible for a certificate renewal: live and reachable (ALLOCATED, or
/// a READY spare, which may wait weeks to be taken; with a management address), not already
/// being renewed, with an expiry before `$2` or none recorded (built before builds recorded
/// it: a renewal records one). Unknown expiry first, then soonest.
const DUE: &str = "SELECT id FROM amphora WHERE status IN ('ALLOCATED', 'READY') \
     AND cert_busy = $1 \
     AND lb_network_ip IS NOT NULL AND (cert_expiration IS NULL OR cert_expiration < $2) \
     ORDER BY CASE WHEN cert_expiration IS NULL THEN 0 ELSE 1 END, cert_expiration, id \
     LIMIT 1";

async fn ids_of(c: &mut Conn<'_>, sql: &str, a: Vec<Arg>) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = c.fetch_all(sql, a).await?;
    Ok(rows.into_iter().map(|(i,)| i).collect())
}

/// `col IN ($first, $first+1, ...)` for `n` placeholders.
fn in_list(col: &str, first: usize, n: usize) -> String {
    let p: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    format!("{col} IN ({})", p.join(", "))
}

impl Store {
    /// Claim up to `max` amphorae whose certificate expires before `expiring_before` and
    /// queue a `rotate_certificate_amphora` job (class Operator) for each, one transaction
    /// per amphora. Returns the amphorae claimed, with their jobs.
    pub async fn claim_certificate_renewals(
        &self,
        expiring_before: Timestamp,
        max: usize,
    ) -> Result<Vec<(AmphoraId, JobId)>> {
        let mut out = Vec::new();
        while out.len() < max {
            let mut tx = self.pool.begin().await?;
            let mut c = tx.conn();
            let sql = format!("{DUE}{}", c.for_update_skip_locked());
            let Some((amp,)): Option<(String,)> = c
                .fetch_optional(&sql, args![false, expiring_before])
                .await?
            else {
                break;
            };
            let claimed = c
                .execute(
                    "UPDATE amphora SET cert_busy = $1 WHERE id = $2 AND cert_busy = $3",
                    args![true, amp.as_str(), false],
                )
                .await?;
            if claimed != 1 {
                // Another housekeeper claimed it between our read and write (possible only
                // where rows are not locked); look for the next one.
                continue;
            }
            let amphora: AmphoraId = parse("amphora id", &amp)?;
            let spec = JobSpec {
                amphora_id: Some(amphora),
                ..JobSpec::new(
                    Action::RotateCertificate,
                    ObjectKind::Amphora,
                    amphora.uuid(),
                    LockSet::default(),
                )
            };
            let job = insert_job(&mut c, JobClass::Operator, &spec).await?;
            tx.commit().await?;
            out.push((amphora, job));
        }
        Ok(out)
    }

    /// The soonest recorded certificate expiry among live amphorae (ALLOCATED, READY
    /// spares, FAILOVER_STOPPED); `None` when none has one.
    pub async fn soonest_certificate_expiry(&self) -> Result<Option<Timestamp>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let row: Option<(Option<Timestamp>,)> = c
            .fetch_optional(
                "SELECT MIN(cert_expiration) FROM amphora \
                 WHERE status IN ('ALLOCATED', 'READY', 'FAILOVER_STOPPED')",
                vec![],
            )
            .await?;
        Ok(row.and_then(|(t,)| t))
    }

    /// Claim one amphora for a certificate renewal whatever its expiry (`octavia certs
    /// rotate-ca`: a certificate from the new server CA) and queue its
    /// `rotate_certificate_amphora` job, as [`Store::claim_certificate_renewals`] does.
    /// Eligible: ALLOCATED, a READY spare or FAILOVER_STOPPED, with a management address;
    /// `None` when it is not, or when a renewal of it is already queued or running.
    pub async fn claim_certificate_renewal_of(&self, amphora: AmphoraId) -> Result<Option<JobId>> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let claimed = c
            .execute(
                "UPDATE amphora SET cert_busy = $1 WHERE id = $2 AND cert_busy = $3 \
                 AND status IN ('ALLOCATED', 'READY', 'FAILOVER_STOPPED') \
                 AND lb_network_ip IS NOT NULL",
                args![true, id(amphora), false],
            )
            .await?;
        if claimed != 1 {
            return Ok(None);
        }
        let spec = JobSpec {
            amphora_id: Some(amphora),
            ..JobSpec::new(
                Action::RotateCertificate,
                ObjectKind::Amphora,
                amphora.uuid(),
                LockSet::default(),
            )
        };
        let job = insert_job(&mut c, JobClass::Operator, &spec).await?;
        tx.commit().await?;
        Ok(Some(job))
    }

    /// Record the expiry of the certificate the amphora's agent now serves.
    pub async fn record_cert_expiration(
        &self,
        amphora: AmphoraId,
        expires_at: Timestamp,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        tx.conn()
            .execute(
                "UPDATE amphora SET cert_expiration = $1, updated_at = $2 WHERE id = $3",
                args![expires_at, now(), id(amphora)],
            )
            .await?;
        tx.commit().await
    }

    /// Delete what is old enough (see [`PurgeCutoffs`]): DELETED amphorae updated before
    /// `amphorae_before` that have no heartbeat recorded since (their health and statistics
    /// rows go with them), DELETED load balancers updated before `load_balancers_before`
    /// (their VIP and tags go with them; amphora rows still naming them lose the reference),
    /// and DONE or FAILED jobs finished before `jobs_before`.
    pub async fn purge_expired(&self, cutoffs: PurgeCutoffs) -> Result<PurgeReport> {
        let mut report = PurgeReport::default();
        loop {
            let n = self.purge_amphorae(cutoffs.amphorae_before).await?;
            report.amphorae += n;
            if n < PURGE_BATCH as u64 {
                break;
            }
        }
        loop {
            let n = self
                .purge_load_balancers(cutoffs.load_balancers_before)
                .await?;
            report.load_balancers += n;
            if n < PURGE_BATCH as u64 {
                break;
            }
        }
        loop {
            let n = self.purge_jobs(cutoffs.jobs_before).await?;
            report.jobs += n;
            if n < PURGE_BATCH as u64 {
                break;
            }
        }
        Ok(report)
    }

    /// One batch of [`Store::purge_expired`]'s amphorae; how many were deleted.
    async fn purge_amphorae(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let sql = format!(
            "SELECT a.id FROM amphora a WHERE a.status = 'DELETED' AND a.updated_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM amphora_health h WHERE h.amphora_id = a.id \
             AND h.last_update >= $1) ORDER BY a.id LIMIT $2{}",
            c.for_update_skip_locked()
        );
        let ids = ids_of(&mut c, &sql, args![before, PURGE_BATCH]).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let list = in_list("amphora_id", 1, ids.len());
        let a = || {
            ids.iter()
                .map(|i| Arg::from(i.as_str()))
                .collect::<Vec<_>>()
        };
        c.execute(&format!("DELETE FROM amphora_health WHERE {list}"), a())
            .await?;
        c.execute(
            &format!("DELETE FROM listener_statistics WHERE {list}"),
            a(),
        )
        .await?;
        c.execute(&format!("DELETE FROM spare_amphora WHERE {list}"), a())
            .await?;
        let n = c
            .execute(
                &format!("DELETE FROM amphora WHERE {}", in_list("id", 1, ids.len())),
                a(),
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// One batch of [`Store::purge_expired`]'s load balancers; how many were deleted.
    async fn purge_load_balancers(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let sql = format!(
            "SELECT id FROM load_balancer WHERE provisioning_status = 'DELETED' \
             AND updated_at < $1 ORDER BY id LIMIT $2{}",
            c.for_update_skip_locked()
        );
        let ids = ids_of(&mut c, &sql, args![before, PURGE_BATCH]).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let a = || {
            ids.iter()
                .map(|i| Arg::from(i.as_str()))
                .collect::<Vec<_>>()
        };
        c.execute(
            &format!(
                "DELETE FROM tags WHERE {}",
                in_list("resource_id", 1, ids.len())
            ),
            a(),
        )
        .await?;
        let n = c
            .execute(
                &format!(
                    "DELETE FROM load_balancer WHERE {}",
                    in_list("id", 1, ids.len())
                ),
                a(),
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// One batch of [`Store::purge_expired`]'s jobs; how many were deleted.
    async fn purge_jobs(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let sql = format!(
            "SELECT id FROM job WHERE state IN ('DONE', 'FAILED') AND finished_at < $1 \
             ORDER BY id LIMIT $2{}",
            c.for_update_skip_locked()
        );
        let ids = ids_of(&mut c, &sql, args![before, PURGE_BATCH]).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let a = ids
            .iter()
            .map(|i| Arg::from(i.as_str()))
            .collect::<Vec<_>>();
        let n = c
            .execute(
                &format!("DELETE FROM job WHERE {}", in_list("id", 1, ids.len())),
                a,
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}
