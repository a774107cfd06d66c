//! The job queue: insert, claim with a lease, renew, record step progress, finish (and
//! settle, in the same transaction), inspect.

use std::time::Duration;

use octavia_model::*;

use crate::db::{args, corrupt, id, Conn, Serial};
use crate::resources::shared::insert_job;
use crate::rotation::{start_rotation, RotationStart, ROTATION_GATE};
use crate::rows::{parse, to_json};
use crate::{ClaimedJob, ClassCaps, DbError, JobRecord, Result, Store};

fn lease_until(lease: Duration) -> Result<Timestamp> {
    let d = chrono::Duration::from_std(lease)
        .map_err(|_| DbError::Invalid("lease duration out of range".into()))?;
    now()
        .checked_add_signed(d)
        .ok_or_else(|| DbError::Invalid("lease duration out of range".into()))
}

fn steps(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| corrupt("job steps", e))
}

fn spec(s: &str) -> Result<JobSpec> {
    serde_json::from_str(s).map_err(|e| corrupt("job spec", e))
}

/// `'create_load_balancer', ...`: the kinds of the jobs that build amphorae
/// ([`JobSpec::build_kinds`]) as SQL literals (constants, not input).
fn build_kinds_sql() -> String {
    JobSpec::build_kinds()
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns a claim reads, and the queue order (`priority`, `created_at`, `id`).
const CLAIM_COLUMNS: &str = "id, class, spec, attempt, completed_steps, priority, created_at";
type ClaimRow = (String, String, String, i32, String, i32, Timestamp);

fn queue_order(r: &ClaimRow) -> (i32, Timestamp, &str) {
    (r.5, r.6, r.0.as_str())
}

/// The most urgent RUNNING job of the `open` priorities whose lease ended before `$1`.
fn expired_sql(open: &str, nobuild: &str, lock: &str) -> String {
    format!(
        "SELECT {CLAIM_COLUMNS} FROM job WHERE state = 'RUNNING' AND lease_expires_at < $1 \
         AND priority IN ({open}){nobuild} ORDER BY priority, created_at, id LIMIT 1{lock}"
    )
}

/// The oldest QUEUED job of priority `$1` that passes `gate` (empty, or the Operator
/// class's [`ROTATION_GATE`]).
fn head_sql(nobuild: &str, gate: &str, lock: &str) -> String {
    format!(
        "SELECT {CLAIM_COLUMNS} FROM job WHERE state = 'QUEUED' AND priority = $1{nobuild}\
         {gate} ORDER BY created_at, id LIMIT 1{lock}"
    )
}

/// The classes below their cap, most urgent first, and whether the build cap is reached.
async fn open_classes(
    c: &mut Conn<'_>,
    caps: &ClassCaps,
    t: Timestamp,
) -> Result<(Vec<JobClass>, bool)> {
    let cap_of = |k: JobClass| match k {
        JobClass::Failover => caps.failover,
        JobClass::Tenant => caps.tenant,
        JobClass::Operator => caps.operator,
    };
    let mut classes = JobClass::ALL.to_vec();
    classes.sort_by_key(|k| k.priority());
    if classes.iter().all(|k| cap_of(*k).is_none()) && caps.builds.is_none() {
        return Ok((classes, false));
    }
    // Counting and claiming must not interleave between workers, or two could both take
    // the last slot of a class.
    c.serialize(Serial::Claims).await?;
    let running: Vec<(String, i64)> = c
        .fetch_all(
            "SELECT class, COUNT(*) FROM job WHERE state = 'RUNNING' AND \
             lease_expires_at >= $1 GROUP BY class",
            args![t],
        )
        .await?;
    classes.retain(|k| {
        let n = running
            .iter()
            .find(|r| r.0 == k.as_str())
            .map(|r| r.1)
            .unwrap_or(0);
        cap_of(*k).is_none_or(|cap| n < i64::from(cap))
    });
    let mut builds_full = false;
    if let Some(cap) = caps.builds {
        let (n,): (i64,) = c
            .fetch_optional(
                &format!(
                    "SELECT COUNT(*) FROM job WHERE state = 'RUNNING' AND \
                     lease_expires_at >= $1 AND kind IN ({})",
                    build_kinds_sql()
                ),
                args![t],
            )
            .await?
            .unwrap_or((0,));
        builds_full = n >= i64::from(cap);
    }
    Ok((classes, builds_full))
}

/// Owner-checked end of a RUNNING job, inside the caller's transaction; `false` when
/// `worker` no longer owns it.
async fn end_job(
    c: &mut Conn<'_>,
    job: JobId,
    worker: &str,
    state: JobState,
    error: Option<&str>,
) -> Result<bool> {
    let t = now();
    let n = c
        .execute(
            "UPDATE job SET state = $1, error = $2, finished_at = $3, updated_at = $3 \
             WHERE id = $4 AND lease_owner = $5 AND state = 'RUNNING'",
            args![
                state.as_str(),
                error.map(str::to_string),
                t,
                id(job),
                worker
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Append `step` to the step list `column` of a job `worker` owns; `false` otherwise.
async fn record_step(
    store: &Store,
    job: JobId,
    worker: &str,
    step: &str,
    column: &'static str,
) -> Result<bool> {
    let mut tx = store.pool.begin().await?;
    let mut c = tx.conn();
    let sql = format!(
        "SELECT {column} FROM job WHERE id = $1 AND lease_owner = $2 AND state = 'RUNNING'{}",
        c.for_update()
    );
    let row: Option<(String,)> = c.fetch_optional(&sql, args![id(job), worker]).await?;
    let Some((list,)) = row else {
        return Ok(false);
    };
    let mut list = steps(&list)?;
    list.push(step.to_string());
    c.execute(
        &format!("UPDATE job SET {column} = $1, updated_at = $2 WHERE id = $3"),
        args![to_json(&list), now(), id(job)],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

impl Store {
    /// Insert a job outside any object write (health manager, operator commands).
    pub async fn enqueue_job(&self, job: &NewJob) -> Result<JobId> {
        let mut tx = self.begin_job().await?;
        let id = insert_job(&mut tx.conn(), job.class, &job.spec).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Take the most urgent job that may run now: a RUNNING job whose lease expired (its
    /// worker died) or the head of a class's queue, classes at their cap and, when the build
    /// cap is reached, build jobs left out. Every lookup is an index seek (migration 0003), so
    /// the cost does not grow with the backlog.
    ///
    /// The claim: lowest class priority, then oldest; PostgreSQL reads the candidates
    /// `FOR UPDATE SKIP LOCKED`. Sets owner, lease expiry, attempt+1, state RUNNING.
    pub async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        caps: &ClassCaps,
    ) -> Result<Option<ClaimedJob>> {
        let t = now();
        let until = lease_until(lease)?;
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let (open, builds_full) = open_classes(&mut c, caps, t).await?;
        if open.is_empty() {
            return Ok(None);
        }
        // Both filters are inlined constants: the partial index `idx_job_queue_nobuild` is
        // only chosen when the query repeats its predicate.
        let nobuild = if builds_full {
            format!(" AND kind NOT IN ({})", build_kinds_sql())
        } else {
            String::new()
        };
        let lock = c.for_update_skip_locked();
        let open_priorities = open
            .iter()
            .map(|k| k.priority().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        // Expired leases: at most one row per job that was running, whatever the backlog.
        let mut best: Option<ClaimRow> = c
            .fetch_optional(&expired_sql(&open_priorities, &nobuild, lock), args![t])
            .await?;
        // Queue heads, most urgent class first: the first class with a queued job beats every
        // later class, so at most one head is taken.
        for class in &open {
            if best.as_ref().is_some_and(|b| b.5 < class.priority()) {
                break;
            }
            // Rotations wait, without locking anything, until they may start.
            let head: Option<ClaimRow> = if *class == JobClass::Operator {
                c.fetch_optional(
                    &head_sql(&nobuild, ROTATION_GATE, lock),
                    args![class.priority(), t],
                )
                .await?
            } else {
                c.fetch_optional(&head_sql(&nobuild, "", lock), args![class.priority()])
                    .await?
            };
            if let Some(head) = head {
                if best
                    .as_ref()
                    .is_none_or(|b| queue_order(&head) < queue_order(b))
                {
                    best = Some(head);
                }
                break;
            }
        }
        let Some((jid, class, sp, attempt, done, _, _)) = best else {
            return Ok(None);
        };
        let spec = spec(&sp)?;
        // A rotation locks its load balancer when it starts, not when it was queued; an
        // expired lease's job (attempt > 0) locked it already.
        if let Some(rotation) = spec.rotation.filter(|_| attempt == 0) {
            match start_rotation(&mut c, &jid, &spec, rotation, t).await? {
                RotationStart::Go => {}
                RotationStart::Wait => return Ok(None),
                RotationStart::Skipped => {
                    tx.commit().await?;
                    // The queue may hold another job that can run now.
                    self.notify.notify_waiters();
                    return Ok(None);
                }
            }
        }
        c.execute(
            "UPDATE job SET state = 'RUNNING', lease_owner = $1, lease_expires_at = $2, \
             attempt = attempt + 1, started_at = COALESCE(started_at, $3), updated_at = $3 \
             WHERE id = $4",
            args![worker, until, t, &jid],
        )
        .await?;
        tx.commit().await?;
        let job = ClaimedJob {
            id: parse("job id", &jid)?,
            class: parse("job class", &class)?,
            spec,
            attempt: attempt + 1,
            completed_steps: steps(&done)?,
        };
        tracing::debug!(job_id = %job.id, worker, attempt = job.attempt, kind = %job.spec.kind(), "claimed job");
        Ok(Some(job))
    }

    /// Extend the lease; `false` if this worker no longer owns the job.
    pub async fn renew_lease(&self, id: JobId, worker_id: &str, lease: Duration) -> Result<bool> {
        let until = lease_until(lease)?;
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let n = c
            .execute(
                "UPDATE job SET lease_expires_at = $1, updated_at = $2 WHERE id = $3 AND \
                 lease_owner = $4 AND state = 'RUNNING'",
                args![until, now(), crate::db::id(id), worker_id],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Append `step` to the completed steps (owner-checked; `false` = lease lost).
    pub async fn record_step_done(&self, id: JobId, worker_id: &str, step: &str) -> Result<bool> {
        record_step(self, id, worker_id, step, "completed_steps").await
    }

    /// Append `step` to the reverted steps (owner-checked).
    pub async fn record_step_reverted(
        &self,
        id: JobId,
        worker_id: &str,
        step: &str,
    ) -> Result<bool> {
        record_step(self, id, worker_id, step, "reverted_steps").await
    }

    /// Finish: DONE, or FAILED with the error. Owner-checked.
    pub async fn finish_job(
        &self,
        id: JobId,
        worker_id: &str,
        state: JobState,
        error: Option<&str>,
    ) -> Result<bool> {
        if !matches!(state, JobState::Done | JobState::Failed) {
            return Err(DbError::Invalid(format!(
                "a job can only finish as DONE or FAILED, not {}",
                state.as_str()
            )));
        }
        let mut tx = self.pool.begin().await?;
        let ended = end_job(&mut tx.conn(), id, worker_id, state, error).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// End the job the way its flow ended and settle its objects (§2.4) in one
    /// transaction: `error` `None` → DONE and [`Store::settle_success`]; `Some` → FAILED
    /// with the error and [`Store::settle_failure`]. Owner-checked: `false`, with nothing
    /// written, when this worker no longer owns the job (a crash leaves either both
    /// written or neither; the job is then resumed and completes again).
    pub async fn complete_job(
        &self,
        id: JobId,
        worker_id: &str,
        spec: &JobSpec,
        error: Option<&str>,
    ) -> Result<bool> {
        let state = match error {
            None => JobState::Done,
            Some(_) => JobState::Failed,
        };
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        if !end_job(&mut c, id, worker_id, state, error).await? {
            // Another worker owns it now: nothing is written (the transaction rolls back).
            return Ok(false);
        }
        match error {
            None => crate::settle::apply_success(&mut c, spec).await?,
            Some(_) => crate::settle::apply_failure(&mut c, spec).await?,
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let row: Option<JobRow> = c
            .fetch_optional(
                &format!("SELECT {JOB_COLUMNS} FROM job WHERE id = $1"),
                args![crate::db::id(id)],
            )
            .await?;
        row.map(record).transpose()
    }

    /// Jobs that lock `load_balancer` (or every job), oldest first: operators and tests
    /// follow a load balancer's history through them.
    pub async fn list_jobs(&self, load_balancer: Option<LoadBalancerId>) -> Result<Vec<JobRecord>> {
        match load_balancer {
            Some(lb) => {
                self.jobs_where("load_balancer_id = $1", args![id(lb)])
                    .await
            }
            None => self.jobs_where("1 = 1", vec![]).await,
        }
    }

    /// The jobs matching `cond` (SQL of ours, binding `args`), oldest first.
    pub(crate) async fn jobs_where(
        &self,
        cond: &str,
        args: Vec<crate::db::Arg>,
    ) -> Result<Vec<JobRecord>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let rows: Vec<JobRow> = c
            .fetch_all(
                &format!("SELECT {JOB_COLUMNS} FROM job WHERE {cond} ORDER BY created_at, id"),
                args,
            )
            .await?;
        rows.into_iter().map(record).collect()
    }

    /// Count of jobs by (class, state), for metrics.
    pub async fn job_counts(&self) -> Result<Vec<(JobClass, String, JobState, i64)>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let rows: Vec<(String, String, String, i64)> = c
            .fetch_all(
                "SELECT class, kind, state, COUNT(*) FROM job GROUP BY class, kind, state \
                 ORDER BY class, kind, state",
                vec![],
            )
            .await?;
        rows.into_iter()
            .map(|(k, kind, s, n)| Ok((parse("job class", &k)?, kind, parse("job state", &s)?, n)))
            .collect()
    }
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    class: String,
    kind: String,
    state: String,
    spec: String,
    attempt: i32,
    completed_steps: String,
    reverted_steps: String,
    lease_owner: Option<String>,
    error: Option<String>,
    created_at: Timestamp,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
}

const JOB_COLUMNS: &str = "id, class, kind, state, spec, attempt, completed_steps, \
     reverted_steps, lease_owner, error, created_at, started_at, finished_at";

fn record(r: JobRow) -> Result<JobRecord> {
    Ok(JobRecord {
        id: parse("job id", &r.id)?,
        class: parse("job class", &r.class)?,
        kind: r.kind,
        state: parse("job state", &r.state)?,
        spec: spec(&r.spec)?,
        attempt: r.attempt,
        completed_steps: steps(&r.completed_steps)?,
        reverted_steps: steps(&r.reverted_steps)?,
        lease_owner: r.lease_owner,
        error: r.error,
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
    })
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Executor};

    use super::*;

    /// The partial index of migration 0003 (recreated by 0006 when spare builds joined
    /// the builds) names the build kinds in SQL; they must be the kinds the claim leaves
    /// out, written the same way, or the index is never chosen.
    #[test]
    fn nobuild_index_lists_the_build_kinds() {
        let predicate = format!("WHERE kind NOT IN ({})", build_kinds_sql());
        for script in [
            include_str!("../migrations/sqlite/0006_spare_amphora.sql"),
            include_str!("../migrations/postgres/0006_spare_amphora.sql"),
        ] {
            assert!(script.contains(&predicate), "{predicate} not in {script}");
        }
    }

    /// Every claim lookup is an index seek in queue order: no scan, no sort of the backlog.
    #[tokio::test]
    async fn sqlite_claim_lookups_seek_the_queue_indexes() {
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        for (_, _, script) in crate::connect::SQLITE_MIGRATIONS {
            c.execute(sqlx::raw_sql(script)).await.unwrap();
        }
        let nobuild = format!(" AND kind NOT IN ({})", build_kinds_sql());
        for (sql, index) in [
            (head_sql("", "", ""), "idx_job_queue "),
            (head_sql(&nobuild, "", ""), "idx_job_queue_nobuild "),
            (expired_sql("20, 40, 80", "", ""), "idx_job_queue "),
            (expired_sql("40", &nobuild, ""), "idx_job_queue_nobuild "),
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .bind(40)
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            let plan: Vec<String> = plan.into_iter().map(|r| r.3).collect();
            assert!(
                plan.len() == 1 && plan[0].starts_with(&format!("SEARCH job USING INDEX {index}")),
                "{sql}: {plan:?}"
            );
        }
        // The Operator class's head: the same seek, the rotation gate's lookups below it.
        let sql = head_sql("", ROTATION_GATE, "");
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .bind(80)
                .bind(now())
                .fetch_all(&mut c)
                .await
                .unwrap();
        assert!(
            plan[0]
                .3
                .starts_with("SEARCH job USING INDEX idx_job_queue "),
            "{sql}: {plan:?}"
        );
    }
}
