//! Stale amphorae (reference §5.3, §8.4): the health manager's sweep that claims amphorae
//! whose heartbeats stopped and queues their failover, with Octavia's circuit breaker.
//!
//! The claim is the `busy` flag of `amphora_health`, set in the same transaction that moves
//! the load balancer to PENDING_UPDATE and inserts the `failover_amphora` job (class
//! Failover). On PostgreSQL the row is read `FOR UPDATE SKIP LOCKED`, so health managers
//! sweeping at once never claim one amphora twice; on SQLite the write transaction holds the
//! database lock. A claimed amphora stays busy: its failover replaces it (DELETED) or leaves
//! it in ERROR for an operator; it is never claimed again.

use octavia_model::*;

use crate::db::{args, id};
use crate::resources::amphora::failover_amphora_in;
use crate::rows::parse;
use crate::{DbError, Result, Store};

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaleSweep {
    /// Amphorae claimed, with their load balancer and the failover job queued for each.
    pub claimed: Vec<(AmphoraId, Option<LoadBalancerId>, JobId)>,
    /// Stale amphorae whose load balancer is busy with another job (tried again next sweep).
    pub deferred: Vec<(AmphoraId, String)>,
    /// Amphorae moved to FAILOVER_STOPPED by the circuit breaker in this sweep.
    pub stopped: Vec<AmphoraId>,
    /// FAILOVER_STOPPED amphorae whose heartbeats resumed, back to ALLOCATED.
    pub resumed: Vec<AmphoraId>,
    /// Expired amphorae seen (not busy, ALLOCATED or FAILOVER_STOPPED, serving a load
    /// balancer).
    pub stale: usize,
    /// Amphorae held in FAILOVER_STOPPED after this sweep.
    pub failover_stopped: usize,
}

/// Options of [`Store::sweep_stale_amphorae`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepOptions {
    /// Heartbeats older than this are stale.
    pub stale_before: Timestamp,
    /// Heartbeats older than this are suspect: the amphora missed its last heartbeat and goes
    /// stale within one interval (`stale_before + heartbeat_interval`). Suspects count towards
    /// the circuit breaker, so amphorae silenced at one instant — which go stale one by one,
    /// up to a heartbeat interval apart — trip it together, before any is failed over.
    pub suspect_before: Timestamp,
    /// Circuit breaker (`[health_manager] failover_threshold`): when at least this many
    /// amphorae are stale at once, none is failed over and they go FAILOVER_STOPPED.
    pub failover_threshold: Option<usize>,
    /// At most this many claims per sweep.
    pub max_claims: usize,
}

fn ids(rows: Vec<(String,)>) -> Result<Vec<AmphoraId>> {
    rows.into_iter()
        .map(|(a,)| parse("amphora id", &a))
        .collect()
}

/// The expired set: heartbeats older than `before`, not busy, ALLOCATED or already
/// FAILOVER_STOPPED (they still count towards the threshold), with a load balancer.
/// Oldest heartbeat first.
const STALE: &str = "SELECT h.amphora_id, a.status, h.last_update FROM amphora_health h \
     JOIN amphora a ON a.id = h.amphora_id \
     WHERE h.busy = $1 AND h.last_update < $2 \
     AND a.status IN ('ALLOCATED', 'FAILOVER_STOPPED') \
     AND a.load_balancer_id IS NOT NULL ORDER BY h.last_update, h.amphora_id";

impl Store {
    /// A round trip to the database (the health manager's check that it is back).
    pub async fn ping(&self) -> Result<()> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let _: Option<(i32,)> = c.fetch_optional("SELECT 1", vec![]).await?;
        Ok(())
    }

    /// One sweep of the health manager (see the module documentation): resume
    /// FAILOVER_STOPPED amphorae that heartbeat again, then either trip the circuit breaker
    /// or claim each stale amphora and queue its failover.
    pub async fn sweep_stale_amphorae(&self, opts: SweepOptions) -> Result<StaleSweep> {
        let mut out = StaleSweep::default();
        let before = opts.stale_before;

        // Resumed heartbeats end FAILOVER_STOPPED; health rows of deleted amphorae go.
        {
            let mut tx = self.pool.begin().await?;
            let mut c = tx.conn();
            let rows: Vec<(String,)> = c
                .fetch_all(
                    "UPDATE amphora SET status = 'ALLOCATED', updated_at = $1 \
                     WHERE status = 'FAILOVER_STOPPED' AND id IN \
                     (SELECT amphora_id FROM amphora_health WHERE last_update >= $2) \
                     RETURNING id",
                    args![now(), before],
                )
                .await?;
            out.resumed = ids(rows)?;
            c.execute(
                "DELETE FROM amphora_health WHERE amphora_id IN \
                 (SELECT id FROM amphora WHERE status = 'DELETED')",
                vec![],
            )
            .await?;
            tx.commit().await?;
        }

        // Suspects (which include the stale) count towards the breaker; only the stale are
        // stopped or claimed.
        let suspects: Vec<(String, String, Timestamp)> = {
            let mut h = self.pool.acquire().await?;
            let mut c = h.conn();
            let suspect_before = opts.suspect_before.max(before);
            c.fetch_all(STALE, args![false, suspect_before]).await?
        };
        let stale: Vec<(String, String)> = suspects
            .iter()
            .filter(|(_, _, at)| *at < before)
            .map(|(a, s, _)| (a.clone(), s.clone()))
            .collect();
        out.stale = stale.len();

        let mut tripped = false;
        if let Some(threshold) = opts.failover_threshold {
            if threshold > 0 && suspects.len() >= threshold {
                tripped = true;
                let mut tx = self.pool.begin().await?;
                let mut c = tx.conn();
                for (amp, _) in &stale {
                    let n = c
                        .execute(
                            "UPDATE amphora SET status = 'FAILOVER_STOPPED', updated_at = $1 \
                             WHERE id = $2 AND status = 'ALLOCATED'",
                            args![now(), amp.as_str()],
                        )
                        .await?;
                    if n == 1 {
                        out.stopped.push(parse("amphora id", amp)?);
                    }
                }
                tx.commit().await?;
            }
        }

        if !tripped {
            let allocated = stale.iter().filter(|(_, s)| s == "ALLOCATED");
            for (amp, _) in allocated.take(opts.max_claims) {
                let amp: AmphoraId = parse("amphora id", amp)?;
                match self.claim_one(amp, before).await {
                    Ok(Some(claim)) => out.claimed.push(claim),
                    Ok(None) => {}
                    Err(DbError::Conflict(why)) => out.deferred.push((amp, why)),
                    Err(e) => return Err(e),
                }
            }
        }

        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let (n,): (i64,) = c
            .fetch_optional(
                "SELECT COUNT(*) FROM amphora WHERE status = 'FAILOVER_STOPPED'",
                vec![],
            )
            .await?
            .unwrap_or((0,));
        out.failover_stopped = usize::try_from(n).unwrap_or(0);
        Ok(out)
    }

    /// Claim one stale amphora and queue its failover, in one transaction. `None` when
    /// another health manager claimed it first or its heartbeats resumed meanwhile.
    async fn claim_one(
        &self,
        amphora: AmphoraId,
        before: Timestamp,
    ) -> Result<Option<(AmphoraId, Option<LoadBalancerId>, JobId)>> {
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let sql = format!(
            "SELECT amphora_id FROM amphora_health \
             WHERE amphora_id = $1 AND busy = $2 AND last_update < $3{}",
            c.for_update_skip_locked()
        );
        let row: Option<(String,)> = c
            .fetch_optional(&sql, args![id(amphora), false, before])
            .await?;
        if row.is_none() {
            return Ok(None);
        }
        c.execute(
            "UPDATE amphora_health SET busy = $1 WHERE amphora_id = $2",
            args![true, id(amphora)],
        )
        .await?;
        let (lb, job) = failover_amphora_in(&mut c, amphora, JobClass::Failover).await?;
        tx.commit().await?;
        Ok(Some((amphora, lb, job)))
    }
}
