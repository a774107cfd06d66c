//! Load balancers: reads, the tenant writes (create, update, delete with cascade), the VIP
//! the worker records, statistics, and the failover of a whole load balancer.

use octavia_model::*;

use super::availability_zone::use_availability_zone;
use super::flavor::use_flavor;
use super::shared::{check_expected, check_quota, insert_tags, lock_lb_if, set_status, write_tags};
use crate::db::{args, id as sid, Arg, Conn};
use crate::read::{ensure_exists, stats, tree};
use crate::{DbError, ListQuery, LoadBalancerTree, QuotaDefaults, Result, Store};

/// Statements setting every child of load balancer `$2` to status `$1`.
pub(crate) const LB_CHILDREN_STATUS: [&str; 6] = [
    "UPDATE listener SET provisioning_status = $1 WHERE load_balancer_id = $2",
    "UPDATE pool SET provisioning_status = $1 WHERE load_balancer_id = $2",
    "UPDATE member SET provisioning_status = $1 WHERE pool_id IN \
     (SELECT id FROM pool WHERE load_balancer_id = $2)",
    "UPDATE health_monitor SET provisioning_status = $1 WHERE pool_id IN \
     (SELECT id FROM pool WHERE load_balancer_id = $2)",
    "UPDATE l7policy SET provisioning_status = $1 WHERE listener_id IN \
     (SELECT id FROM listener WHERE load_balancer_id = $2)",
    "UPDATE l7rule SET provisioning_status = $1 WHERE l7policy_id IN (SELECT p.id FROM \
     l7policy p JOIN listener l ON l.id = p.listener_id WHERE l.load_balancer_id = $2)",
];

/// The values of the columns a tenant sets on a load balancer, in the order `name`,
/// `description`, `enabled`, `topology`, `provider`, `flavor_id`, `availability_zone`.
fn lb_values(lb: &LoadBalancer) -> Vec<Arg> {
    args![
        &lb.name,
        &lb.description,
        lb.enabled,
        lb.topology.as_str(),
        &lb.provider,
        &lb.flavor_id,
        &lb.availability_zone
    ]
}

/// The values of a VIP row, in the order `ip_address`, `port_id`, `subnet_id`,
/// `network_id`, `qos_policy_id`.
fn vip_values(vip: &Vip) -> Vec<Arg> {
    args![
        &vip.ip_address,
        &vip.port_id,
        &vip.subnet_id,
        &vip.network_id,
        &vip.qos_policy_id
    ]
}

/// Write the VIP row of load balancer `lb`; how many rows it changed.
async fn write_vip(c: &mut Conn<'_>, lb: LoadBalancerId, vip: &Vip) -> Result<u64> {
    c.execute(
        "UPDATE vip SET ip_address = $1, port_id = $2, subnet_id = $3, network_id = $4, \
         qos_policy_id = $5 WHERE load_balancer_id = $6",
        [vip_values(vip), args![sid(lb)]].concat(),
    )
    .await
}

async fn write_lb_columns(c: &mut Conn<'_>, lb: &LoadBalancer) -> Result<()> {
    c.execute(
        "UPDATE load_balancer SET name = $1, description = $2, enabled = $3, topology = $4, \
         provider = $5, flavor_id = $6, availability_zone = $7 WHERE id = $8",
        [lb_values(lb), args![sid(lb.id)]].concat(),
    )
    .await?;
    write_vip(c, lb.id, &lb.vip).await?;
    write_tags(c, lb.id, &lb.tags).await
}

/// Insert `lb` (PENDING_CREATE/OFFLINE) with its VIP and tags, its project's quota
/// checked, and the flavor and availability zone it names taken (they must exist and be
/// enabled, Invalid otherwise, and cannot be deleted until the insert commits); returns it as stored (derived fields filled, no children yet). Both creates, the
/// plain one and the single-call one, insert through here: a check every new load balancer
/// needs (its quota, what it names) belongs here, not in one of them.
pub(crate) async fn insert_load_balancer(
    c: &mut Conn<'_>,
    quota_defaults: &QuotaDefaults,
    lb: &LoadBalancer,
) -> Result<LoadBalancer> {
    let kind = ObjectKind::LoadBalancer;
    if let Some(flavor) = &lb.flavor_id {
        use_flavor(c, flavor).await?;
    }
    if let Some(zone) = &lb.availability_zone {
        use_availability_zone(c, zone).await?;
    }
    check_quota(c, quota_defaults, &lb.project_id, kind, 1).await?;
    let t = now();
    c.execute(
        "INSERT INTO load_balancer (id, project_id, name, description, provisioning_status, \
         operating_status, enabled, topology, provider, flavor_id, availability_zone, \
         created_at) VALUES ($1, $2, $3, $4, 'PENDING_CREATE', 'OFFLINE', $5, $6, $7, $8, \
         $9, $10)",
        [args![sid(lb.id), &lb.project_id], lb_values(lb), args![t]].concat(),
    )
    .await?;
    c.execute(
        "INSERT INTO vip (load_balancer_id, ip_address, port_id, subnet_id, network_id, \
         qos_policy_id) VALUES ($1, $2, $3, $4, $5, $6)",
        [args![sid(lb.id)], vip_values(&lb.vip)].concat(),
    )
    .await?;
    let tags = insert_tags(c, &lb.id.to_string(), &lb.tags).await?;
    Ok(LoadBalancer {
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        tags,
        listener_ids: Vec::new(),
        pool_ids: Vec::new(),
        created_at: t,
        updated_at: None,
        ..lb.clone()
    })
}

impl Store {
    pub async fn get_load_balancer(&self, id: LoadBalancerId) -> Result<Option<LoadBalancer>> {
        self.get(id).await
    }

    /// Excludes DELETED load balancers.
    pub async fn list_load_balancers(&self, q: &ListQuery) -> Result<Vec<LoadBalancer>> {
        self.list(q).await
    }

    /// The load balancer and everything below it (excluding nothing; flows filter).
    pub async fn load_balancer_tree(&self, id: LoadBalancerId) -> Result<Option<LoadBalancerTree>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        tree(&mut c, id).await
    }

    /// Sum of listener statistics over the LB's listeners (active connections only from
    /// ALLOCATED amphorae).
    pub async fn load_balancer_stats(&self, id: LoadBalancerId) -> Result<ListenerStatistics> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        ensure_exists(&mut c, ObjectKind::LoadBalancer, id).await?;
        stats(&mut c, "l.load_balancer_id = $1", id).await
    }

    /// Insert `lb` (PENDING_CREATE/OFFLINE), its VIP and tags and its
    /// `create_load_balancer` job (class Tenant), checked as [`insert_load_balancer`]
    /// checks (quota, flavor, availability zone). Returns the load balancer as stored
    /// (derived fields filled; what a read would give back), without reading it again.
    pub async fn create_load_balancer(&self, lb: &LoadBalancer) -> Result<(LoadBalancer, JobId)> {
        let mut tx = self.begin_job().await?;
        let stored = insert_load_balancer(&mut tx.conn(), &self.quota_defaults, lb).await?;
        let locks = LockSet::load_balancer(lb.id);
        let kind = ObjectKind::LoadBalancer;
        let job = tx.tenant(Action::Create, kind, lb.id.uuid(), locks).await?;
        Ok((stored, job))
    }

    /// Write the new value of `lb` and move it ACTIVE → PENDING_UPDATE (else Conflict
    /// "Invalid state X of loadbalancer resource ID"), insert the job. `expected_updated_at`
    /// is the `updated_at` the caller read; a different value → Conflict.
    pub async fn update_load_balancer(
        &self,
        lb: &LoadBalancer,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(LoadBalancer, JobId)> {
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let kind = ObjectKind::LoadBalancer;
        let updated = lock_lb_if(&mut c, lb.id, ProvisioningStatus::is_mutable).await?;
        check_expected(kind, lb.id, updated, expected_updated_at)?;
        write_lb_columns(&mut c, lb).await?;
        tx.updated(kind, lb.id.uuid(), LockSet::load_balancer(lb.id))
            .await
    }

    /// ACTIVE/ERROR → PENDING_DELETE and the delete job. Children without `cascade` →
    /// `DbError::Invalid`; with `cascade` every child goes PENDING_DELETE too.
    pub async fn delete_load_balancer(&self, id: LoadBalancerId, cascade: bool) -> Result<JobId> {
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        lock_lb_if(&mut c, id, ProvisioningStatus::is_deletable).await?;
        let children = c
            .count(
                "SELECT (SELECT COUNT(*) FROM listener WHERE load_balancer_id = $1) + \
                 (SELECT COUNT(*) FROM pool WHERE load_balancer_id = $1)",
                args![sid(id)],
            )
            .await?;
        if children > 0 && !cascade {
            return Err(DbError::Invalid(format!(
                "Cannot delete Load Balancer {id} - it has children"
            )));
        }
        let deleting = ProvisioningStatus::PendingDelete;
        set_status(&mut c, ObjectKind::LoadBalancer, id, deleting).await?;
        if cascade {
            for sql in LB_CHILDREN_STATUS {
                c.execute(sql, args![deleting.as_str(), sid(id)]).await?;
            }
        }
        let locks = LockSet::load_balancer(id);
        let mut spec = JobSpec::new(Action::Delete, ObjectKind::LoadBalancer, id.uuid(), locks);
        spec.cascade = cascade;
        tx.enqueue(JobClass::Tenant, &spec).await
    }

    /// Record the VIP the network driver allocated for a load balancer (worker). Touches
    /// no status: the job that allocated it holds the load balancer's lock.
    pub async fn set_load_balancer_vip(&self, id: LoadBalancerId, vip: &Vip) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if write_vip(&mut tx.conn(), id, vip).await? == 0 {
            return Err(DbError::not_found(ObjectKind::LoadBalancer, id));
        }
        tx.commit().await
    }

    /// Fail over a load balancer (`PUT /loadbalancers/{id}/failover`): ACTIVE/ERROR →
    /// PENDING_UPDATE (else Conflict "Invalid state X of loadbalancer resource ID") and a
    /// `failover_load_balancer` job of `class`, in one transaction. Settlement: success →
    /// LB and sub-objects ACTIVE; failure → LB ERROR.
    pub async fn failover_load_balancer(
        &self,
        id: LoadBalancerId,
        class: JobClass,
    ) -> Result<JobId> {
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let kind = ObjectKind::LoadBalancer;
        lock_lb_if(&mut c, id, ProvisioningStatus::is_deletable).await?;
        set_status(&mut c, kind, id, ProvisioningStatus::PendingUpdate).await?;
        let locks = LockSet::load_balancer(id);
        let spec = JobSpec::new(Action::Failover, kind, id.uuid(), locks);
        tx.enqueue(class, &spec).await
    }
}
