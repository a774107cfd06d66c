//! Settlement: what a finished job does to statuses (reference §2.4).

use octavia_model::*;

use crate::db::{args, Conn};
use crate::resources::l7::renumber_policies;
use crate::resources::load_balancer::LB_CHILDREN_STATUS;
use crate::resources::shared::{set_parents, set_status};
use crate::schema::Table;
use crate::{Result, Store};

/// ACTIVE, plus operating status ONLINE/OFFLINE by `enabled` for the kinds whose
/// "mark active" tasks set it (health monitor, L7 policy, L7 rule).
async fn mark_active(c: &mut Conn<'_>, kind: ObjectKind, id: &str) -> Result<()> {
    match kind {
        ObjectKind::HealthMonitor | ObjectKind::L7Policy | ObjectKind::L7Rule => {
            c.execute(
                &format!(
                    "UPDATE {} SET provisioning_status = 'ACTIVE', operating_status = \
                     CASE WHEN enabled THEN 'ONLINE' ELSE 'OFFLINE' END, updated_at = $1 \
                     WHERE id = $2",
                    kind.table()
                ),
                args![now(), id],
            )
            .await?;
        }
        ObjectKind::Amphora => {}
        _ => {
            set_status(c, kind, id, ProvisioningStatus::Active).await?;
        }
    }
    Ok(())
}

/// The end of a certificate renewal, whichever way it went: the housekeeper's claim
/// (`cert_busy`) is released.
async fn release_cert_claim(c: &mut Conn<'_>, amphora: &str) -> Result<()> {
    c.execute(
        "UPDATE amphora SET cert_busy = $1 WHERE id = $2",
        args![false, amphora],
    )
    .await?;
    Ok(())
}

/// Every non-deleting child of the load balancer → ACTIVE (`mark_subobjects`).
async fn mark_subobjects_active(c: &mut Conn<'_>, lb: &str) -> Result<()> {
    let t = now();
    let pending = "provisioning_status IN ('PENDING_CREATE', 'PENDING_UPDATE', 'ACTIVE')";
    let online = "operating_status = CASE WHEN enabled THEN 'ONLINE' ELSE 'OFFLINE' END";
    let stmts = [
        format!("UPDATE listener SET provisioning_status = 'ACTIVE', updated_at = $1 WHERE load_balancer_id = $2 AND {pending}"),
        format!("UPDATE pool SET provisioning_status = 'ACTIVE', updated_at = $1 WHERE load_balancer_id = $2 AND {pending}"),
        format!("UPDATE member SET provisioning_status = 'ACTIVE', updated_at = $1 WHERE pool_id IN (SELECT id FROM pool WHERE load_balancer_id = $2) AND {pending}"),
        format!("UPDATE health_monitor SET provisioning_status = 'ACTIVE', {online}, updated_at = $1 WHERE pool_id IN (SELECT id FROM pool WHERE load_balancer_id = $2) AND {pending}"),
        format!("UPDATE l7policy SET provisioning_status = 'ACTIVE', {online}, updated_at = $1 WHERE listener_id IN (SELECT id FROM listener WHERE load_balancer_id = $2) AND {pending}"),
        format!("UPDATE l7rule SET provisioning_status = 'ACTIVE', {online}, updated_at = $1 WHERE l7policy_id IN (SELECT p.id FROM l7policy p JOIN listener l ON l.id = p.listener_id WHERE l.load_balancer_id = $2) AND {pending}"),
    ];
    for s in stmts {
        c.execute(&s, args![t, lb]).await?;
    }
    Ok(())
}

/// Delete the tags of every row selected by `ids_sql` (a SELECT of ids using `$1`).
async fn delete_tags(c: &mut Conn<'_>, ids_sql: &str, key: &str) -> Result<()> {
    c.execute(
        &format!("DELETE FROM tags WHERE resource_id IN ({ids_sql})"),
        args![key],
    )
    .await?;
    Ok(())
}

const LISTENER_SUBTREE_IDS: [&str; 3] = [
    "SELECT id FROM listener WHERE id = $1",
    "SELECT id FROM l7policy WHERE listener_id = $1",
    "SELECT r.id FROM l7rule r JOIN l7policy p ON p.id = r.l7policy_id WHERE p.listener_id = $1",
];

const POOL_SUBTREE_IDS: [&str; 3] = [
    "SELECT id FROM pool WHERE id = $1",
    "SELECT id FROM member WHERE pool_id = $1",
    "SELECT id FROM health_monitor WHERE pool_id = $1",
];

async fn hard_delete(c: &mut Conn<'_>, kind: ObjectKind, id: &str) -> Result<()> {
    match kind {
        ObjectKind::Listener => {
            for s in LISTENER_SUBTREE_IDS {
                delete_tags(c, s, id).await?;
            }
            c.execute(
                "DELETE FROM listener_statistics WHERE listener_id = $1",
                args![id],
            )
            .await?;
            c.execute("DELETE FROM listener WHERE id = $1", args![id])
                .await?;
        }
        ObjectKind::Pool => {
            for s in POOL_SUBTREE_IDS {
                delete_tags(c, s, id).await?;
            }
            c.execute("DELETE FROM pool WHERE id = $1", args![id])
                .await?;
        }
        ObjectKind::HealthMonitor => {
            let pool: Option<(String,)> = c
                .fetch_optional(
                    "SELECT pool_id FROM health_monitor WHERE id = $1",
                    args![id],
                )
                .await?;
            c.execute("DELETE FROM tags WHERE resource_id = $1", args![id])
                .await?;
            c.execute("DELETE FROM health_monitor WHERE id = $1", args![id])
                .await?;
            if let Some((pool,)) = pool {
                c.execute(
                    "UPDATE member SET operating_status = 'NO_MONITOR', updated_at = $1 \
                     WHERE pool_id = $2",
                    args![now(), &pool],
                )
                .await?;
            }
        }
        ObjectKind::L7Policy => {
            let listener: Option<(String,)> = c
                .fetch_optional("SELECT listener_id FROM l7policy WHERE id = $1", args![id])
                .await?;
            delete_tags(c, "SELECT id FROM l7rule WHERE l7policy_id = $1", id).await?;
            c.execute("DELETE FROM tags WHERE resource_id = $1", args![id])
                .await?;
            c.execute("DELETE FROM l7policy WHERE id = $1", args![id])
                .await?;
            if let Some((l,)) = listener {
                renumber_policies(c, &l, None).await?;
            }
        }
        ObjectKind::Member | ObjectKind::L7Rule => {
            c.execute("DELETE FROM tags WHERE resource_id = $1", args![id])
                .await?;
            c.execute(
                &format!("DELETE FROM {} WHERE id = $1", kind.table()),
                args![id],
            )
            .await?;
        }
        ObjectKind::LoadBalancer => {
            let t = now();
            let listeners = "SELECT id FROM listener WHERE load_balancer_id = $1";
            let pools = "SELECT id FROM pool WHERE load_balancer_id = $1";
            for s in [
                listeners.to_string(),
                pools.to_string(),
                format!("SELECT id FROM l7policy WHERE listener_id IN ({listeners})"),
                format!(
                    "SELECT r.id FROM l7rule r JOIN l7policy p ON p.id = r.l7policy_id \
                     WHERE p.listener_id IN ({listeners})"
                ),
                format!("SELECT id FROM member WHERE pool_id IN ({pools})"),
                format!("SELECT id FROM health_monitor WHERE pool_id IN ({pools})"),
            ] {
                delete_tags(c, &s, id).await?;
            }
            c.execute(
                &format!("DELETE FROM listener_statistics WHERE listener_id IN ({listeners})"),
                args![id],
            )
            .await?;
            c.execute(
                "DELETE FROM listener WHERE load_balancer_id = $1",
                args![id],
            )
            .await?;
            c.execute("DELETE FROM pool WHERE load_balancer_id = $1", args![id])
                .await?;
            c.execute(
                "UPDATE load_balancer SET provisioning_status = 'DELETED', \
                 operating_status = 'OFFLINE', updated_at = $1 WHERE id = $2",
                args![t, id],
            )
            .await?;
            c.execute(
                "UPDATE amphora SET status = 'DELETED', updated_at = $1 WHERE load_balancer_id = $2",
                args![t, id],
            )
            .await?;
        }
        ObjectKind::Amphora => {
            c.execute(
                "UPDATE amphora SET status = 'DELETED', updated_at = $1 WHERE id = $2",
                args![now(), id],
            )
            .await?;
        }
    }
    Ok(())
}

impl Store {
    /// A job succeeded (reference §2.4): create/update → target ACTIVE (HM, L7 policy and
    /// rule also operating ONLINE if enabled else OFFLINE); delete → children hard-deleted,
    /// LB soft-deleted (DELETED, cascade removes children); parents in `spec.locks` → ACTIVE.
    /// LB create also marks its sub-objects ACTIVE. HM delete resets members to NO_MONITOR.
    pub async fn settle_success(&self, spec: &JobSpec) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        apply_success(&mut tx.conn(), spec).await?;
        tx.commit().await
    }

    /// A job failed after reverting: target → ERROR; parents → ACTIVE; for LB-level jobs
    /// (target kind LoadBalancer) the LB → ERROR, and the children a load balancer create
    /// was creating (or a cascade delete deleting) → ERROR too.
    pub async fn settle_failure(&self, spec: &JobSpec) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        apply_failure(&mut tx.conn(), spec).await?;
        tx.commit().await
    }
}

/// Settle the objects of a job that succeeded, inside the caller's write transaction.
pub(crate) async fn apply_success(c: &mut Conn<'_>, spec: &JobSpec) -> Result<()> {
    let target = spec.target_id.to_string();
    let mut lb_too = true;
    match (spec.action, spec.target_kind) {
        (Action::Delete, ObjectKind::LoadBalancer) => {
            hard_delete(c, ObjectKind::LoadBalancer, &target).await?;
            lb_too = false;
        }
        // An agent configuration push changes no status; a spare's build marked it READY
        // itself (unless a load balancer took it since).
        (Action::Update | Action::Create, ObjectKind::Amphora) => {}
        (Action::RotateCertificate, _) => release_cert_claim(c, &target).await?,
        (Action::Delete, ObjectKind::Amphora) => {
            // Amphorae are soft-deleted (housekeeping purges them later).
            c.execute(
                "UPDATE amphora SET status = 'DELETED', updated_at = $1 WHERE id = $2",
                args![now(), &target],
            )
            .await?;
            c.execute(
                "DELETE FROM amphora_health WHERE amphora_id = $1",
                args![&target],
            )
            .await?;
        }
        (Action::Delete, kind) => hard_delete(c, kind, &target).await?,
        (Action::BatchUpdate, _) => {
            if let Some(m) = &spec.members {
                for id in m.created.iter().chain(m.updated.iter()) {
                    mark_active(c, ObjectKind::Member, &id.to_string()).await?;
                }
                for id in &m.deleted {
                    hard_delete(c, ObjectKind::Member, &id.to_string()).await?;
                }
            }
        }
        (Action::Create | Action::Failover, ObjectKind::LoadBalancer) => {
            set_status(
                c,
                ObjectKind::LoadBalancer,
                &target,
                ProvisioningStatus::Active,
            )
            .await?;
            mark_subobjects_active(c, &target).await?;
        }
        (_, kind) => mark_active(c, kind, &target).await?,
    }
    set_parents(c, &spec.locks, ProvisioningStatus::Active, lb_too).await?;
    tracing::debug!(job = %spec, "settled job as succeeded");
    Ok(())
}

/// Settle the objects of a job that failed and reverted, inside the caller's write
/// transaction.
pub(crate) async fn apply_failure(c: &mut Conn<'_>, spec: &JobSpec) -> Result<()> {
    let target = spec.target_id.to_string();
    let lb_level = spec.target_kind == ObjectKind::LoadBalancer;
    match (spec.action, spec.target_kind) {
        (Action::BatchUpdate, _) => {
            if let Some(m) = &spec.members {
                for id in m
                    .created
                    .iter()
                    .chain(m.updated.iter())
                    .chain(m.deleted.iter())
                {
                    set_status(c, ObjectKind::Member, id, ProvisioningStatus::Error).await?;
                }
            }
        }
        (Action::Update, ObjectKind::Amphora) => {}
        // A spare whose build failed has no instance left (the build's revert deleted it):
        // DELETED, so the pool builds another and the housekeeper purges the row, rather
        // than ERROR rows piling up while, say, no image is registered.
        (Action::Create, ObjectKind::Amphora) => {
            c.execute(
                "UPDATE amphora SET status = 'DELETED', updated_at = $1 WHERE id = $2 \
                 AND load_balancer_id IS NULL",
                args![now(), &target],
            )
            .await?;
        }
        // A renewal that failed leaves the amphora as it was (Octavia marks it ERROR): the
        // agent still serves its old certificate, the housekeeper tries again next round,
        // and an amphora that is really gone is the health manager's to fail over.
        (Action::RotateCertificate, _) => release_cert_claim(c, &target).await?,
        (_, ObjectKind::Amphora) => {
            c.execute(
                "UPDATE amphora SET status = 'ERROR', updated_at = $1 WHERE id = $2",
                args![now(), &target],
            )
            .await?;
        }
        (action, kind) => {
            set_status(c, kind, &target, ProvisioningStatus::Error).await?;
            // Children the job was to create (a single-call create) or that a cascade had
            // marked for deletion are left in ERROR too.
            let pending = match (action, kind) {
                (Action::Create, ObjectKind::LoadBalancer) => Some("PENDING_CREATE"),
                (Action::Delete, ObjectKind::LoadBalancer) if spec.cascade => {
                    Some("PENDING_DELETE")
                }
                _ => None,
            };
            if let Some(pending) = pending {
                for sql in LB_CHILDREN_STATUS {
                    let sql = format!("{sql} AND provisioning_status = '{pending}'");
                    c.execute(&sql, args![ProvisioningStatus::Error.as_str(), &target])
                        .await?;
                }
            }
        }
    }
    set_parents(c, &spec.locks, ProvisioningStatus::Active, !lb_level).await?;
    if lb_level {
        set_status(
            c,
            ObjectKind::LoadBalancer,
            &target,
            ProvisioningStatus::Error,
        )
        .await?;
    }
    tracing::debug!(job = %spec, "settled job as failed");
    Ok(())
}
