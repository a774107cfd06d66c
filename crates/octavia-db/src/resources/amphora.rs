//! Amphorae: reads, the rows the worker saves, and the operator and health manager writes
//! (failover, delete, agent configuration push).

use octavia_model::*;

use super::shared::{lock_lb_if, queue};
use crate::db::{args, id as sid, opt_id, Arg, Conn};
use crate::read::Load;
use crate::rows::parse;
use crate::{DbError, ListQuery, Result, Store};

/// The load balancer and status of a live amphora (missing or DELETED → NotFound); its
/// row locked on PostgreSQL when `for_update`.
async fn live_amphora(
    c: &mut Conn<'_>,
    amphora: AmphoraId,
    for_update: bool,
) -> Result<(Option<LoadBalancerId>, ProvisioningStatus)> {
    let lock = if for_update { c.for_update() } else { "" };
    let sql = format!("SELECT load_balancer_id, status FROM amphora WHERE id = $1{lock}");
    let row: Option<(Option<String>, String)> = c.fetch_optional(&sql, args![sid(amphora)]).await?;
    let missing = || DbError::not_found(ObjectKind::Amphora, amphora);
    let (lb, status) = row.ok_or_else(missing)?;
    let status: ProvisioningStatus = parse("amphora status", &status)?;
    if status == ProvisioningStatus::Deleted {
        return Err(missing());
    }
    let lb = lb.map(|l| parse("load balancer id", &l)).transpose()?;
    Ok((lb, status))
}

/// A row of [`Store::amphora_stats`]: listener, load balancer, then the counters in the
/// order of `listener_statistics`.
type StatsRow = (String, Option<String>, i64, i64, i64, i64, i64);

/// The spec of a job doing `action` to `amphora` (naming it in `amphora_id` too).
fn amphora_job(action: Action, amphora: AmphoraId, locks: LockSet) -> JobSpec {
    JobSpec {
        amphora_id: Some(amphora),
        ..JobSpec::new(action, ObjectKind::Amphora, amphora.uuid(), locks)
    }
}

/// Lock the amphora's load balancer (it must be ACTIVE or ERROR: failover is also the
/// repair of a broken one) and queue the `failover_amphora` job (which moves the load
/// balancer to PENDING_UPDATE), inside the caller's transaction. Returns the load balancer
/// and the job.
pub(crate) async fn failover_amphora_in(
    c: &mut Conn<'_>,
    amphora: AmphoraId,
    class: JobClass,
) -> Result<(Option<LoadBalancerId>, JobId)> {
    let (lb, _) = live_amphora(c, amphora, false).await?;
    let mut locks = LockSet::default();
    if let Some(lb) = lb {
        lock_lb_if(c, lb, ProvisioningStatus::is_deletable).await?;
        locks.load_balancer_id = Some(lb);
    }
    let job = queue(c, class, &amphora_job(Action::Failover, amphora, locks)).await?;
    Ok((lb, job))
}

impl Store {
    /// The counters `id` holds for each of its listeners, in listener id order, each with
    /// the load balancer the amphora serves (as Octavia's query: the amphora joined, the
    /// listener not). Empty for an unknown amphora, or one that has reported no statistics.
    pub async fn amphora_stats(&self, id: AmphoraId) -> Result<Vec<AmphoraStatistics>> {
        let mut h = self.pool.acquire().await?;
        let rows: Vec<StatsRow> = h
            .conn()
            .fetch_all(
                "SELECT s.listener_id, a.load_balancer_id, s.bytes_in, s.bytes_out, \
                 s.active_connections, s.total_connections, s.request_errors \
                 FROM listener_statistics s JOIN amphora a ON a.id = s.amphora_id \
                 WHERE s.amphora_id = $1 ORDER BY s.listener_id",
                args![sid(id)],
            )
            .await?;
        rows.into_iter()
            .map(
                |(listener, lb, bytes_in, bytes_out, active, total, errors)| {
                    Ok(AmphoraStatistics {
                        amphora_id: id,
                        load_balancer_id: lb.map(|l| parse("load balancer id", &l)).transpose()?,
                        listener_id: parse("listener id", &listener)?,
                        stats: ListenerStatistics {
                            bytes_in,
                            bytes_out,
                            active_connections: active,
                            total_connections: total,
                            request_errors: errors,
                        },
                    })
                },
            )
            .collect()
    }

    pub async fn get_amphora(&self, id: AmphoraId) -> Result<Option<Amphora>> {
        self.get(id).await
    }

    /// The amphora row whatever its status, DELETED included (zombie checks).
    pub async fn get_amphora_any(&self, id: AmphoraId) -> Result<Option<Amphora>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let v = Amphora::load(&mut c, "x.id = $1", args![sid(id)]).await?;
        Ok(v.into_iter().next())
    }

    /// `project_id` in the query filters via the owning load balancer.
    pub async fn list_amphorae(&self, q: &ListQuery) -> Result<Vec<Amphora>> {
        self.list(q).await
    }

    /// Insert or replace an amphora row with every column as given (worker/drivers), except
    /// that an existing row keeps its `cert_busy`: that flag is the housekeeper's claim of a
    /// certificate renewal, set and cleared only by the claim and the renewal job's
    /// settlement, and a flow saving a copy it read earlier must not undo either.
    pub async fn save_amphora(&self, amphora: &Amphora) -> Result<()> {
        let a = amphora;
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        c.execute(
            "INSERT INTO amphora (id, load_balancer_id, compute_id, lb_network_ip, vrrp_ip, \
             ha_ip, vrrp_port_id, ha_port_id, cert_expiration, cert_busy, role, status, \
             vrrp_interface, vrrp_id, vrrp_priority, cached_zone, image_id, compute_flavor, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18, $19, $20) ON CONFLICT (id) DO UPDATE SET \
             load_balancer_id = $2, compute_id = $3, lb_network_ip = $4, vrrp_ip = $5, \
             ha_ip = $6, vrrp_port_id = $7, ha_port_id = $8, cert_expiration = $9, \
             role = $11, status = $12, vrrp_interface = $13, vrrp_id = $14, \
             vrrp_priority = $15, cached_zone = $16, image_id = $17, compute_flavor = $18, \
             created_at = $19, updated_at = $20",
            vec![
                sid(a.id),
                opt_id(a.load_balancer_id),
                Arg::from(&a.compute_id),
                Arg::from(&a.lb_network_ip),
                Arg::from(&a.vrrp_ip),
                Arg::from(&a.ha_ip),
                Arg::from(&a.vrrp_port_id),
                Arg::from(&a.ha_port_id),
                Arg::from(a.cert_expiration),
                Arg::from(a.cert_busy),
                Arg::from(a.role.map(|r| r.as_str().to_string())),
                Arg::from(a.status.as_str()),
                Arg::from(&a.vrrp_interface),
                Arg::from(a.vrrp_id),
                Arg::from(a.vrrp_priority),
                Arg::from(&a.cached_zone),
                Arg::from(&a.image_id),
                Arg::from(&a.compute_flavor),
                Arg::from(a.created_at),
                Arg::from(a.updated_at),
            ],
        )
        .await?;
        tx.commit().await
    }

    /// The health manager's record of a VRRP takeover: `holder` reports that it holds its
    /// load balancer's VIP, so it becomes MASTER and the other live amphorae of that load
    /// balancer BACKUP (Octavia's roles are fixed at build time; ours follow the VIP).
    /// `vrrp_priority` stays what each amphora's keepalived runs with until the next push.
    /// Only MASTER/BACKUP amphorae that are not being deleted change; returns how many rows
    /// changed (0 when the roles were already true, the usual case).
    pub async fn record_vip_holder(&self, holder: AmphoraId) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let changed = c
            .execute(
                "UPDATE amphora SET role = CASE WHEN id = $1 THEN 'MASTER' ELSE 'BACKUP' END, \
                 updated_at = $2 \
                 WHERE load_balancer_id = (SELECT load_balancer_id FROM amphora WHERE id = $1 \
                 AND role IN ('MASTER', 'BACKUP') AND status NOT IN ('DELETED', 'PENDING_DELETE')) \
                 AND role IN ('MASTER', 'BACKUP') \
                 AND status NOT IN ('DELETED', 'PENDING_DELETE') \
                 AND ((id = $1 AND role <> 'MASTER') OR (id <> $1 AND role <> 'BACKUP'))",
                args![sid(holder), now()],
            )
            .await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Delete an ERROR amphora (`DELETE /amphorae/{id}`): PENDING_DELETE and a
    /// `delete_amphora` job (class Operator) in one transaction. Missing/DELETED → NotFound;
    /// any other status → Conflict. Settlement: success → DELETED (health row removed);
    /// failure → ERROR again.
    pub async fn delete_amphora(&self, id: AmphoraId) -> Result<JobId> {
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let (_, status) = live_amphora(&mut c, id, true).await?;
        if status != ProvisioningStatus::Error {
            return Err(DbError::Conflict(format!(
                "Invalid state {status} of amphora resource {id}: only ERROR amphorae can be \
                 deleted"
            )));
        }
        c.execute(
            "UPDATE amphora SET status = 'PENDING_DELETE', updated_at = $1 WHERE id = $2",
            args![now(), sid(id)],
        )
        .await?;
        let spec = amphora_job(Action::Delete, id, LockSet::default());
        tx.enqueue(JobClass::Operator, &spec).await
    }

    /// Push a regenerated agent configuration to an amphora (`PUT /amphorae/{id}/config`):
    /// an `update_amphora` job of class Operator. Missing/DELETED → NotFound. No load
    /// balancer lock (the agent's configuration is not the load balancer's); settlement
    /// changes no status either way (a failed push is logged by the worker).
    pub async fn update_amphora_config(&self, id: AmphoraId) -> Result<JobId> {
        let mut tx = self.begin_job().await?;
        live_amphora(&mut tx.conn(), id, false).await?;
        let spec = amphora_job(Action::Update, id, LockSet::default());
        tx.enqueue(JobClass::Operator, &spec).await
    }

    /// Fail over an amphora (`PUT /amphorae/{id}/failover`, health manager): its load
    /// balancer (if any) must be ACTIVE or ERROR (else Conflict "Invalid state X of
    /// loadbalancer resource ID") and goes PENDING_UPDATE; a `failover_amphora` job of `class`
    /// (`spec.amphora_id` set) in the same transaction. Missing/DELETED amphora → NotFound.
    /// Settlement: success → LB ACTIVE; failure → amphora ERROR, LB ACTIVE.
    pub async fn failover_amphora(&self, id: AmphoraId, class: JobClass) -> Result<JobId> {
        let mut tx = self.begin_job().await?;
        let (_, job) = failover_amphora_in(&mut tx.conn(), id, class).await?;
        tx.commit().await?;
        Ok(job)
    }
}
