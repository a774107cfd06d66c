//! Image rotation jobs (`octavia amphora rotate`): amphora failovers of class Operator that
//! carry a [`Rotation`] marker. Unlike the other jobs they lock nothing while they wait: a
//! queue of rotations must not keep tenants out of their load balancers. The claim holds a
//! queued rotation back while its load balancer is busy (PENDING_*, or any of its jobs
//! RUNNING), while an earlier rotation of the same load balancer is still queued (so the
//! BACKUP queued first is replaced before the MASTER, one amphora at a time), and until the
//! batch's rate allows the next start ([`ROTATION_GATE`]); when it takes one,
//! [`start_rotation`] locks the load balancer as `PUT /amphorae/{id}/failover` would have.

use octavia_model::*;
use uuid::Uuid;

use crate::db::{args, id as sid, Conn};
use crate::resources::shared::insert_job_at;
use crate::{JobRecord, Result, Store};

/// The claim's condition on the QUEUED jobs of the Operator class (`$2` = now): a job
/// that is not a rotation passes; a rotation passes when the batch's rate allows it to start
/// (`not_before`), no job of its load balancer runs, no earlier rotation of its load
/// balancer is still queued, and its load balancer is not PENDING_*.
pub(crate) const ROTATION_GATE: &str = " AND (rotation IS NULL OR (\
     (not_before IS NULL OR not_before <= $2) \
     AND NOT EXISTS (SELECT 1 FROM job o WHERE o.load_balancer_id = job.load_balancer_id \
     AND o.state = 'RUNNING') \
     AND NOT EXISTS (SELECT 1 FROM job o WHERE o.load_balancer_id = job.load_balancer_id \
     AND o.rotation IS NOT NULL AND o.state = 'QUEUED' AND (o.created_at < job.created_at \
     OR (o.created_at = job.created_at AND o.id < job.id))) \
     AND NOT EXISTS (SELECT 1 FROM load_balancer l WHERE l.id = job.load_balancer_id \
     AND l.provisioning_status LIKE 'PENDING%')))";

/// What [`start_rotation`] decided about a claimed rotation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RotationStart {
    /// Its load balancer is locked (PENDING_UPDATE): run it.
    Go,
    /// Its load balancer went PENDING_* since the lookup: leave it queued.
    Wait,
    /// Nothing to rotate any more (the amphora or its load balancer was deleted): the job
    /// is DONE, with the reason in its `error` column.
    Skipped,
}

/// Start the rotation job `job` (`spec`), inside the claim's transaction: lock its load
/// balancer (ACTIVE or ERROR → PENDING_UPDATE, the test-and-set every write does), and push
/// the batch's other queued rotations to `now + spacing` when the batch has a rate.
pub(crate) async fn start_rotation(
    c: &mut Conn<'_>,
    job: &str,
    spec: &JobSpec,
    rotation: Rotation,
    t: Timestamp,
) -> Result<RotationStart> {
    let amphora = spec.amphora_id.map(|a| a.to_string()).unwrap_or_default();
    let status: Option<(String,)> = c
        .fetch_optional(
            "SELECT status FROM amphora WHERE id = $1",
            args![amphora.clone()],
        )
        .await?;
    let mut skip = match status {
        Some((s,)) if s != ProvisioningStatus::Deleted.as_str() => None,
        _ => Some(format!(
            "skipped: amphora {amphora} was deleted before its rotation started"
        )),
    };
    if skip.is_none() {
        if let Some(lb) = spec.locks.load_balancer_id {
            let locked = c
                .execute(
                    "UPDATE load_balancer SET provisioning_status = 'PENDING_UPDATE', \
                     updated_at = $1 WHERE id = $2 AND provisioning_status IN ('ACTIVE', 'ERROR')",
                    args![t, sid(lb)],
                )
                .await?;
            if locked == 0 {
                let lb_status: Option<(String,)> = c
                    .fetch_optional(
                        "SELECT provisioning_status FROM load_balancer WHERE id = $1",
                        args![sid(lb)],
                    )
                    .await?;
                match lb_status {
                    Some((s,)) if s.starts_with("PENDING") => return Ok(RotationStart::Wait),
                    other => {
                        skip = Some(format!(
                            "skipped: load balancer {lb} is {} and amphora {amphora} with it",
                            other.map_or_else(|| "gone".to_string(), |(s,)| s)
                        ))
                    }
                }
            }
        }
    }
    if let Some(reason) = skip {
        c.execute(
            "UPDATE job SET state = 'DONE', error = $1, started_at = $2, finished_at = $2, \
             updated_at = $2 WHERE id = $3",
            args![reason.clone(), t, job],
        )
        .await?;
        tracing::info!(job_id = job, %amphora, reason, "rotation skipped");
        return Ok(RotationStart::Skipped);
    }
    if let Some(spacing) = rotation.spacing() {
        let next = t + chrono::Duration::from_std(spacing).unwrap_or(chrono::Duration::MAX);
        c.execute(
            "UPDATE job SET not_before = $1 WHERE rotation = $2 AND state = 'QUEUED' \
             AND id <> $3 AND (not_before IS NULL OR not_before < $1)",
            args![next, rotation.batch.to_string(), job],
        )
        .await?;
    }
    Ok(RotationStart::Go)
}

impl Store {
    /// Queue the rotation of `amphorae`, in this order, as one batch (`rotation`): one
    /// `failover_amphora` job of class Operator each, marked with `rotation`, naming the
    /// amphora's load balancer but not locking it (see the module). Every amphora must be
    /// live and serve a load balancer (NotFound, Conflict); then all are queued or none.
    pub async fn queue_rotations(
        &self,
        rotation: Rotation,
        amphorae: &[AmphoraId],
    ) -> Result<Vec<JobId>> {
        let mut tx = self.begin_job().await?;
        let t0 = now();
        let mut jobs = Vec::with_capacity(amphorae.len());
        for (i, amphora) in amphorae.iter().enumerate() {
            let mut c = tx.conn();
            let row: Option<(Option<String>, String)> = c
                .fetch_optional(
                    "SELECT load_balancer_id, status FROM amphora WHERE id = $1",
                    args![sid(amphora)],
                )
                .await?;
            let missing = || crate::DbError::not_found(ObjectKind::Amphora, amphora);
            let (lb, status) = row.ok_or_else(missing)?;
            if status == ProvisioningStatus::Deleted.as_str() {
                return Err(missing());
            }
            let lb: LoadBalancerId = lb
                .ok_or_else(|| {
                    crate::DbError::Conflict(format!(
                        "amphora {amphora} serves no load balancer; there is nothing to rotate"
                    ))
                })
                .and_then(|l| crate::rows::parse("load balancer id", &l))?;
            let spec = JobSpec {
                amphora_id: Some(*amphora),
                rotation: Some(rotation),
                ..JobSpec::new(
                    Action::Failover,
                    ObjectKind::Amphora,
                    amphora.uuid(),
                    LockSet::load_balancer(lb),
                )
            };
            // One microsecond apart: the queue (and the hold-back of later rotations of
            // the same load balancer) keeps the order the operator's plan gave.
            let at = t0 + chrono::Duration::microseconds(i as i64);
            jobs.push(insert_job_at(&mut c, JobClass::Operator, &spec, at).await?);
        }
        tx.commit().await?;
        Ok(jobs)
    }

    /// Withdraw the rotations that have not started (QUEUED) — of `batch`, or of every
    /// batch. They locked nothing, so deleting their rows is all there is to it; running
    /// ones finish. Returns how many were withdrawn.
    pub async fn cancel_rotations(&self, batch: Option<Uuid>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let n = match batch {
            Some(b) => {
                c.execute(
                    "DELETE FROM job WHERE rotation = $1 AND state = 'QUEUED'",
                    args![b.to_string()],
                )
                .await?
            }
            None => {
                c.execute(
                    "DELETE FROM job WHERE rotation IS NOT NULL AND state = 'QUEUED'",
                    vec![],
                )
                .await?
            }
        };
        tx.commit().await?;
        Ok(n)
    }

    /// The rotation jobs of `batch` (or of every batch), in queue order: what the progress
    /// of `octavia amphora rotate` is computed from.
    pub async fn rotation_jobs(&self, batch: Option<Uuid>) -> Result<Vec<JobRecord>> {
        let (cond, a) = match batch {
            Some(b) => ("rotation = $1", args![b.to_string()]),
            None => ("rotation IS NOT NULL", vec![]),
        };
        self.jobs_where(cond, a).await
    }
}
