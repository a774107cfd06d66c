//! Single-call create: a load balancer and the whole tree below it written in one
//! transaction that queues one `create_load_balancer` job (reference §1.5).

use octavia_model::*;

use super::health_monitor::insert_health_monitor;
use super::l7::{check_redirect_pool, check_rule_room, insert_l7policy, insert_l7rule};
use super::listener::{check_new_listener, insert_listener};
use super::load_balancer::insert_load_balancer;
use super::member::insert_member;
use super::pool::insert_pool;
use super::shared::check_quota;
use crate::read::tree;
use crate::{DbError, LoadBalancerTree, Result, Store};

/// The kinds a single-call create checks quotas of, in bulk, and in this order: Octavia's
/// order, then the L7 policies and rules, which Octavia does not check there (on purpose,
/// ARCHITECTURE.md: a tree must not get past a quota its objects cannot get past one by one).
const QUOTA_KINDS: [ObjectKind; 6] = [
    ObjectKind::Pool,
    ObjectKind::HealthMonitor,
    ObjectKind::Member,
    ObjectKind::Listener,
    ObjectKind::L7Policy,
    ObjectKind::L7Rule,
];

impl Store {
    /// Insert `lb` and everything `graph` puts below it, every object PENDING_CREATE, and
    /// one `create_load_balancer` job (class Tenant) that settles them all. Quotas are
    /// checked for the whole graph at once; each object meets the store's checks of its
    /// own create (listener ports, default pools, duplicate members, rules per policy), so
    /// a clash inside the request fails it as it would against stored objects. Returns
    /// the tree as written, read inside the transaction.
    pub async fn create_load_balancer_graph(
        &self,
        lb: &LoadBalancer,
        graph: &LoadBalancerGraph,
    ) -> Result<(LoadBalancerTree, JobId)> {
        let mut tx = self.begin_job().await?;
        let mut c = tx.conn();
        insert_load_balancer(&mut c, &self.quota_defaults, lb).await?;
        for kind in QUOTA_KINDS {
            let n = graph.count(kind) as i64;
            check_quota(&mut c, &self.quota_defaults, &lb.project_id, kind, n).await?;
        }
        for p in &graph.pools {
            insert_pool(&mut c, &p.pool).await?;
            if let Some(h) = &p.health_monitor {
                insert_health_monitor(&mut c, h).await?;
            }
            for m in &p.members {
                insert_member(&mut c, m, p.health_monitor.is_some()).await?;
            }
        }
        for l in &graph.listeners {
            check_new_listener(&mut c, &l.listener).await?;
            insert_listener(&mut c, &l.listener).await?;
            for p in &l.l7policies {
                check_redirect_pool(&mut c, &p.policy, Some(lb.id)).await?;
                insert_l7policy(&mut c, &p.policy).await?;
                for r in &p.rules {
                    check_rule_room(&mut c, p.policy.id).await?;
                    insert_l7rule(&mut c, r).await?;
                }
            }
        }
        let written = tree(&mut c, lb.id)
            .await?
            .ok_or_else(|| DbError::Internal(format!("load balancer {} vanished", lb.id)))?;
        let locks = LockSet::load_balancer(lb.id);
        let kind = ObjectKind::LoadBalancer;
        let job = tx.tenant(Action::Create, kind, lb.id.uuid(), locks).await?;
        Ok((written, job))
    }
}
