//! L7 policies and their rules: reads, the tenant writes, and the policy positions of a
//! listener (renumbered 1..n on every change).

use octavia_model::*;

use super::shared::{check_quota, head, lock_listener_subtree, lock_policy_subtree, write_tags};
use crate::db::{args, id as sid, opt_id, Arg, Conn};
use crate::{DbError, ListQuery, Result, Store};

/// Most rules one policy may hold.
pub const MAX_L7RULES_PER_POLICY: i64 = 50;

/// Renumber the policies of a listener 1..n, placing `moving` (if given) at `position`
/// (out of range = last).
pub(crate) async fn renumber_policies(
    c: &mut Conn<'_>,
    listener: &str,
    moving: Option<(&str, i32)>,
) -> Result<()> {
    let rows: Vec<(String,)> = c
        .fetch_all(
            "SELECT id FROM l7policy WHERE listener_id = $1 ORDER BY position, created_at, id",
            args![listener],
        )
        .await?;
    let mut ids: Vec<String> = rows.into_iter().map(|r| r.0).collect();
    if let Some((m, pos)) = moving {
        ids.retain(|i| i != m);
        let idx = if pos >= 1 && (pos as usize) <= ids.len() {
            pos as usize - 1
        } else {
            ids.len()
        };
        ids.insert(idx, m.to_string());
    }
    for (i, pid) in ids.iter().enumerate() {
        c.execute(
            "UPDATE l7policy SET position = $1 WHERE id = $2 AND position <> $1",
            args![i as i32 + 1, pid],
        )
        .await?;
    }
    Ok(())
}

/// The redirect pool of `p` (if any) must be on the policy's load balancer `lb`.
pub(crate) async fn check_redirect_pool(
    c: &mut Conn<'_>,
    p: &L7Policy,
    lb: Option<LoadBalancerId>,
) -> Result<()> {
    if let Some(pool) = p.redirect_pool_id {
        let on: LoadBalancerId = head(c, ObjectKind::Pool, pool).await?.parent;
        if Some(on) != lb {
            return Err(DbError::not_found(ObjectKind::Pool, pool));
        }
    }
    Ok(())
}

/// Write the new value of `p` and move it to its position among the policies of
/// `listener` (its stored listener).
async fn write_policy_columns(c: &mut Conn<'_>, p: &L7Policy, listener: ListenerId) -> Result<()> {
    c.execute(
        "UPDATE l7policy SET name = $1, description = $2, enabled = $3, action = $4, \
         redirect_pool_id = $5, redirect_url = $6, redirect_prefix = $7, \
         redirect_http_code = $8 WHERE id = $9",
        vec![
            Arg::from(&p.name),
            Arg::from(&p.description),
            Arg::from(p.enabled),
            Arg::from(p.action.as_str()),
            opt_id(p.redirect_pool_id),
            Arg::from(&p.redirect_url),
            Arg::from(&p.redirect_prefix),
            Arg::from(p.redirect_http_code),
            sid(p.id),
        ],
    )
    .await?;
    write_tags(c, p.id, &p.tags).await?;
    let moving = p.id.to_string();
    renumber_policies(c, &listener.to_string(), Some((&moving, p.position))).await
}

async fn write_rule_columns(c: &mut Conn<'_>, r: &L7Rule) -> Result<()> {
    c.execute(
        "UPDATE l7rule SET enabled = $1, type = $2, compare_type = $3, key = $4, value = $5, \
         invert = $6 WHERE id = $7",
        args![
            r.enabled,
            r.rule_type.as_str(),
            r.compare_type.as_str(),
            &r.key,
            &r.value,
            r.invert,
            sid(r.id)
        ],
    )
    .await?;
    write_tags(c, r.id, &r.tags).await
}

/// Insert `p` (PENDING_CREATE/OFFLINE) with its tags, at its position among the policies
/// of its listener.
pub(crate) async fn insert_l7policy(c: &mut Conn<'_>, p: &L7Policy) -> Result<()> {
    c.execute(
        "INSERT INTO l7policy (id, project_id, listener_id, provisioning_status, \
         operating_status, enabled, action, position, created_at) \
         VALUES ($1, $2, $3, 'PENDING_CREATE', 'OFFLINE', $4, $5, 2147483647, $6)",
        args![
            sid(p.id),
            &p.project_id,
            sid(p.listener_id),
            p.enabled,
            p.action.as_str(),
            now()
        ],
    )
    .await?;
    write_policy_columns(c, p, p.listener_id).await
}

/// Conflict when `policy` already holds [`MAX_L7RULES_PER_POLICY`] rules.
pub(crate) async fn check_rule_room(c: &mut Conn<'_>, policy: L7PolicyId) -> Result<()> {
    let n = c
        .count(
            "SELECT COUNT(*) FROM l7rule WHERE l7policy_id = $1",
            args![sid(policy)],
        )
        .await?;
    if n >= MAX_L7RULES_PER_POLICY {
        return Err(DbError::Conflict(format!(
            "Too many rules on L7 policy {policy}"
        )));
    }
    Ok(())
}

/// Insert `r` (PENDING_CREATE/OFFLINE) with its tags.
pub(crate) async fn insert_l7rule(c: &mut Conn<'_>, r: &L7Rule) -> Result<()> {
    c.execute(
        "INSERT INTO l7rule (id, project_id, l7policy_id, provisioning_status, \
         operating_status, enabled, type, compare_type, value, created_at) \
         VALUES ($1, $2, $3, 'PENDING_CREATE', 'OFFLINE', $4, $5, $6, $7, $8)",
        args![
            sid(r.id),
            &r.project_id,
            sid(r.l7policy_id),
            r.enabled,
            r.rule_type.as_str(),
            r.compare_type.as_str(),
            &r.value,
            now()
        ],
    )
    .await?;
    write_rule_columns(c, r).await
}

impl Store {
    pub async fn get_l7policy(&self, id: L7PolicyId) -> Result<Option<L7Policy>> {
        self.get(id).await
    }

    pub async fn list_l7policies(&self, q: &ListQuery) -> Result<Vec<L7Policy>> {
        self.list(q).await
    }

    /// Position: `None` or beyond the end = append; positions renumbered 1..n contiguously.
    pub async fn create_l7policy(&self, policy: &L7Policy) -> Result<(L7Policy, JobId)> {
        let p = policy;
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let kind = ObjectKind::L7Policy;
        let (lb, locks) = lock_listener_subtree(&mut c, p.listener_id).await?;
        check_redirect_pool(&mut c, p, Some(lb)).await?;
        check_quota(&mut c, &self.quota_defaults, &p.project_id, kind, 1).await?;
        insert_l7policy(&mut c, p).await?;
        tx.created(kind, p.id.uuid(), locks).await
    }

    pub async fn update_l7policy(
        &self,
        policy: &L7Policy,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(L7Policy, JobId)> {
        let (kind, id) = (ObjectKind::L7Policy, policy.id.uuid());
        let (mut tx, locks) = self.begin_update(kind, id, expected_updated_at).await?;
        let mut c = tx.conn();
        check_redirect_pool(&mut c, policy, locks.load_balancer_id).await?;
        // The policy stays on its stored listener, the one `lock_object` locked.
        let listener = locks.listener_ids.first().copied().ok_or_else(|| {
            DbError::Internal("an L7 policy lock without its listener".to_string())
        })?;
        write_policy_columns(&mut c, policy, listener).await?;
        tx.updated(kind, id, locks).await
    }

    pub async fn delete_l7policy(&self, id: L7PolicyId) -> Result<JobId> {
        self.delete_object(ObjectKind::L7Policy, id.uuid()).await
    }

    pub async fn get_l7rule(&self, id: L7RuleId) -> Result<Option<L7Rule>> {
        self.get(id).await
    }

    /// The rules of one policy (NotFound if the policy does not exist).
    pub async fn list_l7rules(&self, policy_id: L7PolicyId, q: &ListQuery) -> Result<Vec<L7Rule>> {
        self.list_children(ObjectKind::L7Policy, policy_id, q).await
    }

    /// Policy must be ACTIVE (Conflict); at most 50 rules per policy (Conflict).
    pub async fn create_l7rule(&self, rule: &L7Rule) -> Result<(L7Rule, JobId)> {
        let r = rule;
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        let kind = ObjectKind::L7Rule;
        let locks = lock_policy_subtree(&mut c, r.l7policy_id).await?;
        check_rule_room(&mut c, r.l7policy_id).await?;
        check_quota(&mut c, &self.quota_defaults, &r.project_id, kind, 1).await?;
        insert_l7rule(&mut c, r).await?;
        tx.created(kind, r.id.uuid(), locks).await
    }

    pub async fn update_l7rule(
        &self,
        rule: &L7Rule,
        expected_updated_at: Option<Timestamp>,
    ) -> Result<(L7Rule, JobId)> {
        let (kind, id) = (ObjectKind::L7Rule, rule.id.uuid());
        let (mut tx, locks) = self.begin_update(kind, id, expected_updated_at).await?;
        write_rule_columns(&mut tx.conn(), rule).await?;
        tx.updated(kind, id, locks).await
    }

    pub async fn delete_l7rule(&self, id: L7RuleId) -> Result<JobId> {
        self.delete_object(ObjectKind::L7Rule, id.uuid()).await
    }
}
