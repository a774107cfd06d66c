//! Members: reads and the tenant writes, one at a time or as a batch of one pool.

use octavia_model::*;

use super::shared::{check_quota, head, lock_pool_subtree, set_status, write_tags};
use crate::db::{args, id as sid, Arg, Conn};
use crate::{DbError, ListQuery, MemberBatchChange, Result, Store};

/// The values of the member columns an update may change besides name and `enabled`, in
/// the order `weight`, `backup`, `subnet_id`, `monitor_address`, `monitor_port`,
/// `vnic_type`.
fn backend_values(m: &Member) -> Vec<Arg> {
    args![
        m.weight,
        m.backup,
        &m.subnet_id,
        &m.monitor_address,
        m.monitor_port,
        &m.vnic_type
    ]
}

/// Insert `m` (PENDING_CREATE; OFFLINE when its pool has a monitor, else NO_MONITOR) with its
/// tags; the same address and port already in the pool → Conflict.
pub(crate) async fn insert_member(c: &mut Conn<'_>, m: &Member, has_hm: bool) -> Result<()> {
    let dup = c
        .count(
            "SELECT COUNT(*) FROM member WHERE pool_id = $1 AND ip_address = $2 AND \
             protocol_port = $3",
            args![sid(m.pool_id), &m.ip_address, m.protocol_port],
        )
        .await?;
    if dup > 0 {
        return Err(DbError::Conflict(format!(
            "Another member on this pool is already using ip {} on protocol_port {}",
            m.ip_address, m.protocol_port
        )));
    }
    let op = if has_hm {
        OperatingStatus::Offline
    } else {
        OperatingStatus::NoMonitor
    };
    c.execute(
        "INSERT INTO member (id, project_id, pool_id, name, provisioning_status, \
         operating_status, enabled, ip_address, protocol_port, weight, backup, subnet_id, \
         monitor_address, monitor_port, vnic_type, created_at) VALUES ($1, $2, $3, $4, \
         'PENDING_CREATE', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        [
            args![
                sid(m.id),
                &m.project_id,
                sid(m.pool_id),
                &m.name,
                op.as_str(),
                m.enabled,
                &m.ip_address,
                m.protocol_port
            ],
            backend_values(m),
            args![now()],
        ]
        .concat(),
    )
    .await?;
    write_tags(c, m.id, &m.tags).await
}

/// Write the new value of a member and move it to PENDING_UPDATE.
async fn update_member_row(c: &mut Conn<'_>, m: &Member) -> Result<()> {
    c.execute(
        "UPDATE member SET name = $1, enabled = $2, weight = $3, backup = $4, subnet_id = $5, \
         monitor_address = $6, monitor_port = $7, vnic_type = $8, \
         provisioning_status = 'PENDING_UPDATE', updated_at = $9 WHERE id = $10",
        [
            args![&m.name, m.enabled],
            backend_values(m),
            args![now(), sid(m.id)],
        ]
        .concat(),
    )
    .await?;
    write_tags(c, m.id, &m.tags).await
}

/// Whether the pool has a health monitor (new members start OFFLINE, else NO_MONITOR).
pub(crate) async fn pool_has_hm(c: &mut Conn<'_>, pool: PoolId) -> Result<bool> {
    Ok(c.count(
        "SELECT COUNT(*) FROM health_monitor WHERE pool_id = $1",
        args![sid(pool)],
    )
    .await?
        > 0)
}

async fn pool_project(c: &mut Conn<'_>, pool: PoolId) -> Result<String> {
    let row: Option<(String,)> = c
        .fetch_optional(
            "SELECT project_id FROM pool WHERE id = $1",
            args![sid(pool)],
        )
        .await?;
    row.map(|r| r.0)
        .ok_or_else(|| DbError::not_found(ObjectKind::Pool, pool))
}

/// The member `m` of pool `pool`; in another pool or missing → NotFound.
async fn member_of(c: &mut Conn<'_>, pool: PoolId, m: MemberId) -> Result<()> {
    let of: PoolId = head(c, ObjectKind::Member, m).await?.parent;
    if of != pool {
        return Err(DbError::not_found(ObjectKind::Member, m));
    }
    Ok(())
}

impl Store {
    pub async fn get_member(&self, id: MemberId) -> Result<Option<Member>> {
        self.get(id).await
    }

    /// The members of one pool (NotFound if the pool does not exist).
    pub async fn list_members(&self, pool_id: PoolId, q: &ListQuery) -> Result<Vec<Member>> {
        self.list_children(ObjectKind::Pool, pool_id, q).await
    }

    /// Pool must be ACTIVE (Conflict) → PENDING_UPDATE with LB and listeners; duplicate
    /// (pool, address, port) → Conflict; quota. Member PENDING_CREATE, job.
    pub async fn create_member(&self, member: &Member) -> Result<(Member, JobId)> {
        let m = member;
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let kind = ObjectKind::Member;
        let locks = lock_pool_subtree(&mut c, m.pool_id).await?;
        check_quota(&mut c, &self.quota_defaults, &m.project_id, kind, 1).await?;
        let has_hm = pool_has_hm(&mut c, m.pool_id).await?;
        insert_member(&mut c, m, has_hm).await?;
        tx.created(kind, m.id.uuid(), locks).await
    }

    pub async fn update_member(
        &self,
        member: &Member,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(Member, JobId)> {
        let (kind, id) = (ObjectKind::Member, member.id.uuid());
        let (mut tx, locks) = self.begin_update(kind, id, expected_updated_at).await?;
        // The row write moves the member to PENDING_UPDATE itself (as batches need).
        update_member_row(&mut tx.conn(), member).await?;
        let job = tx.tenant(Action::Update, kind, id, locks).await?;
        self.read_back(id, job).await
    }

    pub async fn delete_member(&self, id: MemberId) -> Result<JobId> {
        self.delete_object(ObjectKind::Member, id.uuid()).await
    }

    /// One transaction and one `batch_update_member` job for the whole batch.
    pub async fn batch_update_members(
        &self,
        pool_id: PoolId,
        change: &MemberBatchChange,
    ) -> Result<JobId> {
        let pool = pool_id;
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let locks = lock_pool_subtree(&mut c, pool).await?;
        let project = pool_project(&mut c, pool).await?;
        let added = change.create.len() as i64 - change.delete.len() as i64;
        check_quota(
            &mut c,
            &self.quota_defaults,
            &project,
            ObjectKind::Member,
            added,
        )
        .await?;
        for id in &change.delete {
            member_of(&mut c, pool, *id).await?;
            set_status(
                &mut c,
                ObjectKind::Member,
                id,
                ProvisioningStatus::PendingDelete,
            )
            .await?;
        }
        for m in &change.update {
            member_of(&mut c, pool, m.id).await?;
            update_member_row(&mut c, m).await?;
        }
        let has_hm = pool_has_hm(&mut c, pool).await?;
        for m in &change.create {
            let m = Member {
                pool_id: pool,
                ..m.clone()
            };
            insert_member(&mut c, &m, has_hm).await?;
        }
        let mut spec = JobSpec::new(Action::BatchUpdate, ObjectKind::Pool, pool.uuid(), locks);
        spec.members = Some(MemberBatch {
            created: change.create.iter().map(|m| m.id).collect(),
            updated: change.update.iter().map(|m| m.id).collect(),
            deleted: change.delete.clone(),
        });
        tx.enqueue(JobClass::Tenant, &spec).await
    }
}
