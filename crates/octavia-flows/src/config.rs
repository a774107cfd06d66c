//! The configuration pushed to each amphora: the load balancer tree rendered into haproxy.cfg
//! by `octavia-render`.
//!
//! Objects being deleted (`PENDING_DELETE`, `DELETED`) are left out, so a delete flow pushes
//! the configuration without them; references to pools that are left out are dropped with
//! them (a listener loses its default pool, a REDIRECT_TO_POOL policy is left out), so a
//! pool delete never makes the tree inconsistent. Disabled objects are passed on as they are:
//! the renderer leaves out disabled load balancers, listeners, pools, policies, rules and
//! health monitors, and writes disabled members as `disabled` servers.

use std::collections::BTreeSet;

use octavia_db::LoadBalancerTree;
use octavia_model::{L7PolicyAction, ListenerId, PoolId, ProvisioningStatus};
use octavia_render::{render_haproxy, RenderInput, RenderSettings};

use crate::{FlowError, Result};

fn live(status: ProvisioningStatus) -> bool {
    !matches!(
        status,
        ProvisioningStatus::PendingDelete | ProvisioningStatus::Deleted
    )
}

/// Whether the tree has any listener the amphora must serve; without one the configuration
/// is removed from the amphora instead of rendered.
pub fn has_listeners(tree: &LoadBalancerTree) -> bool {
    tree.listeners.iter().any(|l| live(l.provisioning_status))
}

/// The part of `tree` that stays: every object that is not being deleted, with references
/// to pools that are being deleted dropped.
fn live_tree(tree: &LoadBalancerTree) -> LoadBalancerTree {
    let pools: Vec<_> = tree
        .pools
        .iter()
        .filter(|p| live(p.provisioning_status))
        .cloned()
        .collect();
    let pool_ids: BTreeSet<PoolId> = pools.iter().map(|p| p.id).collect();
    let pool_live = |id: Option<PoolId>| id.is_some_and(|id| pool_ids.contains(&id));

    let listeners: Vec<_> = tree
        .listeners
        .iter()
        .filter(|l| live(l.provisioning_status))
        .cloned()
        .map(|mut l| {
            if !pool_live(l.default_pool_id) {
                l.default_pool_id = None;
            }
            l
        })
        .collect();
    let listener_ids: BTreeSet<ListenerId> = listeners.iter().map(|l| l.id).collect();

    let l7policies: Vec<_> = tree
        .l7policies
        .iter()
        .filter(|p| live(p.provisioning_status) && listener_ids.contains(&p.listener_id))
        .filter(|p| p.action != L7PolicyAction::RedirectToPool || pool_live(p.redirect_pool_id))
        .cloned()
        .collect();
    let l7rules = tree
        .l7rules
        .iter()
        .filter(|r| live(r.provisioning_status) && l7policies.iter().any(|p| p.id == r.l7policy_id))
        .cloned()
        .collect();
    let members = tree
        .members
        .iter()
        .filter(|m| live(m.provisioning_status) && pool_ids.contains(&m.pool_id))
        .cloned()
        .collect();
    let health_monitors = tree
        .health_monitors
        .iter()
        .filter(|h| live(h.provisioning_status) && pool_ids.contains(&h.pool_id))
        .cloned()
        .collect();
    LoadBalancerTree {
        load_balancer: tree.load_balancer.clone(),
        listeners,
        pools,
        members,
        health_monitors,
        l7policies,
        l7rules,
    }
}

/// The haproxy.cfg of the load balancer in `tree`, its frontends bound to the load
/// balancer's VIP address.
///
/// A tree the renderer refuses (a protocol it does not support yet, a value it cannot write
/// safely) is a permanent [`FlowError::Render`]: rendering again would give the same answer.
pub fn render(tree: &LoadBalancerTree, settings: &RenderSettings) -> Result<String> {
    let lb = &tree.load_balancer;
    let vip_address = lb.vip.ip_address.as_deref().ok_or_else(|| {
        FlowError::Internal(format!(
            "load balancer {} has no vip address to bind its listeners to",
            lb.id
        ))
    })?;
    let tree = live_tree(tree);
    let input = RenderInput {
        load_balancer: &tree.load_balancer,
        listeners: &tree.listeners,
        pools: &tree.pools,
        members: &tree.members,
        health_monitors: &tree.health_monitors,
        l7policies: &tree.l7policies,
        l7rules: &tree.l7rules,
        vip_address,
    };
    render_haproxy(&input, settings).map_err(|source| FlowError::Render {
        load_balancer: lb.id,
        source,
    })
}
