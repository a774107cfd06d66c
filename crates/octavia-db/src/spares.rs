//! The spare pool (`[house_keeping] spare_amphora_pool_size`): amphorae built ahead of need,
//! READY and without a load balancer, that a load balancer create or failover takes instead
//! of building (migration 0006, table `spare_amphora`).
//!
//! * The housekeeper keeps each pool (one per compute zone, or one) at its size:
//!   [`Store::keep_spare_pools`] counts the spares of each pool and, in the same
//!   transaction, inserts the amphora rows of the missing ones with their `create_amphora`
//!   jobs, or moves the surplus to PENDING_DELETE with their `delete_amphora` jobs. The
//!   transaction is serialised ([`Serial::SparePool`]), so two housekeepers never build the
//!   same spare twice.
//! * A build takes a spare with [`Store::take_spare`]: one conditional update of both rows,
//!   so two jobs never take the same spare; the job and role are recorded, so a resumed job
//!   finds the spare it took ([`Store::spares_taken_by`]).
//! * A spare that stops heartbeating is replaced, never failed over onto a load balancer:
//!   the health manager's sweep queues its delete ([`Store::retire_silent_spares`]) and the
//!   housekeeper's next pass builds another.

use octavia_model::*;

use crate::db::{args, id as sid, Arg, Conn, Serial};
use crate::read::Load;
use crate::resources::shared::insert_job;
use crate::rows::parse;
use crate::{Result, Store};

/// A spare that is waiting to be taken, as a build judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadySpare {
    /// The amphora row (READY, no load balancer).
    pub amphora: Amphora,
    /// The pool it was built for (`None`: the pool of no zone).
    pub pool: Option<String>,
    /// When the health manager last recorded a heartbeat from it.
    pub last_heartbeat: Option<Timestamp>,
}

/// One pool's count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparePool {
    /// The zone the pool's spares are built in (`None`: no zone).
    pub zone: Option<String>,
    /// READY spares.
    pub ready: usize,
    /// Spares still being built (PENDING_CREATE, BOOTING).
    pub building: usize,
}

/// What one [`Store::keep_spare_pools`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparePass {
    /// Spares queued for building, with their pool and job.
    pub queued: Vec<(AmphoraId, Option<String>, JobId)>,
    /// Surplus spares queued for deletion (pool smaller, or zone no longer served).
    pub retired: Vec<(AmphoraId, JobId)>,
    /// The pools after the pass (queued builds counted as building).
    pub pools: Vec<SparePool>,
}

/// How a job takes a spare: the load balancer and role it gets, with the role's VRRP
/// settings (as a build would give them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpareTake {
    pub job: JobId,
    pub load_balancer: LoadBalancerId,
    pub role: AmphoraRole,
    pub vrrp_priority: Option<i32>,
    pub vrrp_id: Option<i32>,
}

/// Untaken spares that are live (built, being built, or READY), with their pool and status.
const LIVE_SPARES: &str = "SELECT s.amphora_id, s.zone, a.status FROM spare_amphora s \
     JOIN amphora a ON a.id = s.amphora_id WHERE s.taken_by_job IS NULL \
     AND a.load_balancer_id IS NULL \
     AND a.status IN ('PENDING_CREATE', 'BOOTING', 'READY') \
     ORDER BY s.created_at, s.amphora_id";

type LiveRow = (String, Option<String>, String);

fn pools_of(rows: &[LiveRow]) -> Result<Vec<SparePool>> {
    let mut pools: Vec<SparePool> = Vec::new();
    for (_, zone, status) in rows {
        let status: ProvisioningStatus = parse("amphora status", status)?;
        let i = match pools.iter().position(|p| &p.zone == zone) {
            Some(i) => i,
            None => {
                pools.push(SparePool {
                    zone: zone.clone(),
                    ..SparePool::default()
                });
                pools.len() - 1
            }
        };
        if status == ProvisioningStatus::Ready {
            pools[i].ready += 1;
        } else {
            pools[i].building += 1;
        }
    }
    pools.sort_by(|a, b| a.zone.cmp(&b.zone));
    Ok(pools)
}

/// The delete of a spare, inside the caller's transaction: PENDING_DELETE (only from
/// `from`) and a `delete_amphora` job of class Operator. `None` when its status moved.
async fn retire_in(
    c: &mut Conn<'_>,
    amphora: AmphoraId,
    from: ProvisioningStatus,
) -> Result<Option<JobId>> {
    let n = c
        .execute(
            "UPDATE amphora SET status = 'PENDING_DELETE', updated_at = $1 \
             WHERE id = $2 AND status = $3 AND load_balancer_id IS NULL",
            args![now(), sid(amphora), from.as_str()],
        )
        .await?;
    if n != 1 {
        return Ok(None);
    }
    let spec = JobSpec {
        amphora_id: Some(amphora),
        ..JobSpec::new(
            Action::Delete,
            ObjectKind::Amphora,
            amphora.uuid(),
            LockSet::default(),
        )
    };
    Ok(Some(insert_job(c, JobClass::Operator, &spec).await?))
}

impl Store {
    /// Bring every pool to `size` spares: one pool per entry of `zones` (`None`: the pool
    /// of no zone). Missing spares get an amphora row (PENDING_CREATE, no load balancer,
    /// `cached_zone` the pool's zone) and a `create_amphora` job (class Operator, so tenant
    /// builds and failovers come first); a pool over its size, or of a zone not in `zones`,
    /// gives up its READY surplus (newest first) to `delete_amphora` jobs. Spares still
    /// being built count as present and are never cut short.
    pub async fn keep_spare_pools(
        &self,
        zones: &[Option<String>],
        size: usize,
    ) -> Result<SparePass> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        c.serialize(Serial::SparePool).await?;
        let rows: Vec<LiveRow> = c.fetch_all(LIVE_SPARES, vec![]).await?;
        let mut pass = SparePass::default();
        for zone in zones {
            let present = rows.iter().filter(|(_, z, _)| z == zone).count();
            for _ in present..size {
                let amphora = AmphoraId::new();
                let t = now();
                let mut row = Amphora::new(amphora, None, ProvisioningStatus::PendingCreate, t);
                row.cached_zone = zone.clone();
                insert_spare_row(&mut c, &row).await?;
                c.execute(
                    "INSERT INTO spare_amphora (amphora_id, zone, created_at) \
                     VALUES ($1, $2, $3)",
                    args![sid(amphora), zone.clone(), t],
                )
                .await?;
                let spec = JobSpec {
                    amphora_id: Some(amphora),
                    ..JobSpec::new(
                        Action::Create,
                        ObjectKind::Amphora,
                        amphora.uuid(),
                        LockSet::default(),
                    )
                };
                let job = insert_job(&mut c, JobClass::Operator, &spec).await?;
                pass.queued.push((amphora, zone.clone(), job));
            }
        }
        // Surplus: of each pool's READY spares, those beyond its size once the spares
        // being built are counted (the oldest stay); a zone no longer served keeps none.
        let mut surplus: Vec<AmphoraId> = Vec::new();
        let mut seen: Vec<&Option<String>> = Vec::new();
        for (_, zone, _) in &rows {
            if seen.contains(&zone) {
                continue;
            }
            seen.push(zone);
            let wanted = if zones.contains(zone) { size } else { 0 };
            let of_pool = rows.iter().filter(|(_, z, _)| z == zone);
            let building = of_pool.clone().filter(|(_, _, s)| s != "READY").count();
            let keep = wanted.saturating_sub(building);
            for (amp, _, _) in of_pool.filter(|(_, _, s)| s == "READY").skip(keep) {
                surplus.push(parse("amphora id", amp)?);
            }
        }
        for amp in surplus {
            if let Some(job) = retire_in(&mut c, amp, ProvisioningStatus::Ready).await? {
                pass.retired.push((amp, job));
            }
        }
        let after: Vec<LiveRow> = c.fetch_all(LIVE_SPARES, vec![]).await?;
        pass.pools = pools_of(&after)?;
        tx.commit().await?;
        if !pass.queued.is_empty() || !pass.retired.is_empty() {
            self.notify.notify_waiters();
        }
        Ok(pass)
    }

    /// The pools as they stand (untaken spares, READY or being built), by zone.
    pub async fn spare_pools(&self) -> Result<Vec<SparePool>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let rows: Vec<LiveRow> = c.fetch_all(LIVE_SPARES, vec![]).await?;
        pools_of(&rows)
    }

    /// READY spares nobody has taken, oldest first, with their pool and last heartbeat.
    pub async fn ready_spares(&self) -> Result<Vec<ReadySpare>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let amps = Amphora::load(
            &mut c,
            "x.status = 'READY' AND x.load_balancer_id IS NULL AND x.id IN \
             (SELECT amphora_id FROM spare_amphora WHERE taken_by_job IS NULL)",
            vec![],
        )
        .await?;
        let extra: Vec<(String, Option<String>, Option<Timestamp>, Timestamp)> = c
            .fetch_all(
                "SELECT s.amphora_id, s.zone, h.last_update, s.created_at FROM spare_amphora s \
                 LEFT JOIN amphora_health h ON h.amphora_id = s.amphora_id \
                 WHERE s.taken_by_job IS NULL",
                vec![],
            )
            .await?;
        let mut out: Vec<(Timestamp, ReadySpare)> = amps
            .into_iter()
            .filter_map(|amphora| {
                let id = amphora.id.to_string();
                let (_, pool, last_heartbeat, created) =
                    extra.iter().find(|(a, ..)| *a == id)?.clone();
                Some((
                    created,
                    ReadySpare {
                        amphora,
                        pool,
                        last_heartbeat,
                    },
                ))
            })
            .collect();
        out.sort_by_key(|a| (a.0, a.1.amphora.id));
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    /// Take `spare` for a job: the spare row records the job and role, the amphora row
    /// gets the load balancer, the role and its VRRP settings and goes ALLOCATED — both only
    /// if the spare is still READY and untaken (another job may have taken it first: then
    /// `false`, and nothing changed).
    pub async fn take_spare(&self, spare: AmphoraId, take: SpareTake) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let marked = c
            .execute(
                "UPDATE spare_amphora SET taken_by_job = $1, taken_role = $2 \
                 WHERE amphora_id = $3 AND taken_by_job IS NULL",
                args![take.job.to_string(), take.role.as_str(), sid(spare)],
            )
            .await?;
        if marked != 1 {
            return Ok(false);
        }
        let moved = c
            .execute(
                "UPDATE amphora SET load_balancer_id = $1, role = $2, vrrp_priority = $3, \
                 vrrp_id = $4, status = 'ALLOCATED', updated_at = $5 \
                 WHERE id = $6 AND status = 'READY' AND load_balancer_id IS NULL",
                vec![
                    Arg::from(take.load_balancer.to_string()),
                    Arg::from(take.role.as_str()),
                    Arg::from(take.vrrp_priority),
                    Arg::from(take.vrrp_id),
                    Arg::from(now()),
                    sid(spare),
                ],
            )
            .await?;
        if moved != 1 {
            // Dropping the transaction rolls the mark back.
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The spares `job` took, with the role each took (in the order taken).
    pub async fn spares_taken_by(&self, job: JobId) -> Result<Vec<(AmphoraRole, AmphoraId)>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let rows: Vec<(String, Option<String>)> = c
            .fetch_all(
                "SELECT amphora_id, taken_role FROM spare_amphora WHERE taken_by_job = $1 \
                 ORDER BY created_at, amphora_id",
                args![job.to_string()],
            )
            .await?;
        rows.into_iter()
            .map(|(a, r)| {
                let role: AmphoraRole = parse("amphora role", r.as_deref().unwrap_or(""))?;
                Ok((role, parse("amphora id", &a)?))
            })
            .collect()
    }

    /// Queue the delete of the given spares that are still READY and untaken (image
    /// rotation: the pool rebuilds them on the current image). Returns those retired.
    pub async fn retire_spares(&self, spares: &[AmphoraId]) -> Result<Vec<AmphoraId>> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let mut out = Vec::new();
        for amp in spares {
            let untaken: Option<(String,)> = c
                .fetch_optional(
                    "SELECT amphora_id FROM spare_amphora WHERE amphora_id = $1 \
                     AND taken_by_job IS NULL",
                    args![sid(*amp)],
                )
                .await?;
            if untaken.is_some()
                && retire_in(&mut c, *amp, ProvisioningStatus::Ready)
                    .await?
                    .is_some()
            {
                out.push(*amp);
            }
        }
        tx.commit().await?;
        if !out.is_empty() {
            self.notify.notify_waiters();
        }
        Ok(out)
    }

    /// Queue the delete of every untaken READY spare whose last heartbeat (or, if it never
    /// sent one, its last update) is older than `before`: a dead spare is replaced by the
    /// housekeeper's next pass, never failed over. Returns the spares retired.
    pub async fn retire_silent_spares(&self, before: Timestamp) -> Result<Vec<AmphoraId>> {
        // Read first, on a pooled connection: the health manager asks at every sweep and
        // there is usually nothing to do, which must not take SQLite's writer each time.
        // The retirement itself is conditional on the spare still being READY.
        let rows: Vec<(String,)> = self
            .pool
            .acquire()
            .await?
            .conn()
            .fetch_all(
                "SELECT a.id FROM amphora a JOIN spare_amphora s ON s.amphora_id = a.id \
                 LEFT JOIN amphora_health h ON h.amphora_id = a.id \
                 WHERE s.taken_by_job IS NULL AND a.status = 'READY' \
                 AND a.load_balancer_id IS NULL \
                 AND COALESCE(h.last_update, a.updated_at) < $1 ORDER BY a.id",
                args![before],
            )
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let mut out = Vec::new();
        for (amp,) in rows {
            let amp: AmphoraId = parse("amphora id", &amp)?;
            if retire_in(&mut c, amp, ProvisioningStatus::Ready)
                .await?
                .is_some()
            {
                out.push(amp);
            }
        }
        tx.commit().await?;
        if !out.is_empty() {
            self.notify.notify_waiters();
        }
        Ok(out)
    }
}

/// Insert a new spare's amphora row (every other column empty until it is built).
async fn insert_spare_row(c: &mut Conn<'_>, a: &Amphora) -> Result<()> {
    c.execute(
        "INSERT INTO amphora (id, status, cached_zone, cert_busy, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            sid(a.id),
            Arg::from(a.status.as_str()),
            Arg::from(&a.cached_zone),
            Arg::from(false),
            Arg::from(a.created_at),
            Arg::from(a.updated_at),
        ],
    )
    .await?;
    Ok(())
}
