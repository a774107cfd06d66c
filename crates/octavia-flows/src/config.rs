//! The configuration pushed to each amphora: the load balancer tree rendered into haproxy.cfg
//! by `octavia-render`.
//!
//! Objects being deleted (`PENDING_DELETE`, `DELETED`) are left out, so a delete flow pushes
//! the configuration without them; references to objects that are left out are dropped with
//! them (a listener loses its default pool, a REDIRECT_TO_POOL policy is left out, a pool's
//! members and monitor go with it), so the tree stays consistent. Disabled objects are passed
//! on as they are: the renderer leaves out disabled load balancers, listeners, pools,
//! policies, rules and health monitors, and writes disabled members as `disabled` servers.
//!
//! An object in ERROR that the renderer refuses is left out too, with a warning: a failed
//! earlier job must not make every later job of its load balancer fail (its delete among
//! them). A refusal that names anything else fails the job, as it should.

use std::collections::BTreeSet;

use octavia_db::LoadBalancerTree;
use octavia_model::{L7PolicyAction, ListenerId, ObjectKind, PoolId, ProvisioningStatus};
use octavia_render::{render_haproxy, RenderInput, RenderSettings};
use uuid::Uuid;

use crate::{FlowError, Result};

fn live(status: ProvisioningStatus) -> bool {
    !matches!(
        status,
        ProvisioningStatus::PendingDelete | ProvisioningStatus::Deleted
    )
}

/// The part of `tree` whose objects `keep` accepts (given kind, id and status), with every
/// reference to an object that is not kept dropped: the result always hangs together.
fn prune(
    tree: &LoadBalancerTree,
    keep: impl Fn(ObjectKind, Uuid, ProvisioningStatus) -> bool,
) -> LoadBalancerTree {
    let pools: Vec<_> = tree
        .pools
        .iter()
        .filter(|p| keep(ObjectKind::Pool, p.id.uuid(), p.provisioning_status))
        .cloned()
        .collect();
    let pool_ids: BTreeSet<PoolId> = pools.iter().map(|p| p.id).collect();
    let pool_kept = |id: Option<PoolId>| id.is_some_and(|id| pool_ids.contains(&id));

    let listeners: Vec<_> = tree
        .listeners
        .iter()
        .filter(|l| keep(ObjectKind::Listener, l.id.uuid(), l.provisioning_status))
        .cloned()
        .map(|mut l| {
            if !pool_kept(l.default_pool_id) {
                l.default_pool_id = None;
            }
            l
        })
        .collect();
    let listener_ids: BTreeSet<ListenerId> = listeners.iter().map(|l| l.id).collect();

    let l7policies: Vec<_> = tree
        .l7policies
        .iter()
        .filter(|p| keep(ObjectKind::L7Policy, p.id.uuid(), p.provisioning_status))
        .filter(|p| listener_ids.contains(&p.listener_id))
        .filter(|p| p.action != L7PolicyAction::RedirectToPool || pool_kept(p.redirect_pool_id))
        .cloned()
        .collect();
    let l7rules = tree
        .l7rules
        .iter()
        .filter(|r| keep(ObjectKind::L7Rule, r.id.uuid(), r.provisioning_status))
        .filter(|r| l7policies.iter().any(|p| p.id == r.l7policy_id))
        .cloned()
        .collect();
    let members = tree
        .members
        .iter()
        .filter(|m| keep(ObjectKind::Member, m.id.uuid(), m.provisioning_status))
        .filter(|m| pool_ids.contains(&m.pool_id))
        .cloned()
        .collect();
    let health_monitors = tree
        .health_monitors
        .iter()
        .filter(|h| {
            keep(
                ObjectKind::HealthMonitor,
                h.id.uuid(),
                h.provisioning_status,
            )
        })
        .filter(|h| pool_ids.contains(&h.pool_id))
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

/// The status of object `(kind, id)` in `tree`, if it is there.
fn status_of(tree: &LoadBalancerTree, kind: ObjectKind, id: Uuid) -> Option<ProvisioningStatus> {
    match kind {
        ObjectKind::LoadBalancer => {
            (tree.load_balancer.id.uuid() == id).then_some(tree.load_balancer.provisioning_status)
        }
        ObjectKind::Listener => tree
            .listeners
            .iter()
            .find(|x| x.id.uuid() == id)
            .map(|x| x.provisioning_status),
        ObjectKind::Pool => tree
            .pools
            .iter()
            .find(|x| x.id.uuid() == id)
            .map(|x| x.provisioning_status),
        ObjectKind::Member => tree
            .members
            .iter()
            .find(|x| x.id.uuid() == id)
            .map(|x| x.provisioning_status),
        ObjectKind::HealthMonitor => tree
            .health_monitors
            .iter()
            .find(|x| x.id.uuid() == id)
            .map(|x| x.provisioning_status),
        ObjectKind::L7Policy => tree
            .l7policies
            .iter()
            .find(|x| x.id.uuid() == id)
            .map(|x| x.provisioning_status),
        ObjectKind::L7Rule => tree
            .l7rules
            .iter()
            .find(|x| x.id.uuid() == id)
            .map(|x| x.provisioning_status),
        ObjectKind::Amphora => None,
    }
}

/// The haproxy.cfg of the load balancer in `tree`, its frontends bound to the load
/// balancer's VIP address; `None` when there is no listener to serve (the configuration is
/// then removed from the amphorae instead).
///
/// A tree the renderer refuses (a protocol it does not support, a value it cannot write
/// safely) is a permanent [`FlowError::Render`]: rendering again would give the same answer.
/// Only objects in ERROR are left out instead (see the module documentation).
pub fn render(tree: &LoadBalancerTree, settings: &RenderSettings) -> Result<Option<String>> {
    let lb = &tree.load_balancer;
    let mut tree = prune(tree, |_, _, status| live(status));
    loop {
        if tree.listeners.is_empty() {
            return Ok(None);
        }
        let vip_address = lb.vip.ip_address.as_deref().ok_or_else(|| {
            FlowError::Internal(format!(
                "load balancer {} has no vip address to bind its listeners to",
                lb.id
            ))
        })?;
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
        let source = match render_haproxy(&input, settings) {
            Ok(text) => return Ok(Some(text)),
            Err(source) => source,
        };
        match source.subject().object() {
            Some((kind, id))
                if kind != ObjectKind::LoadBalancer
                    && status_of(&tree, kind, id) == Some(ProvisioningStatus::Error) =>
            {
                tracing::warn!(
                    lb_id = %lb.id,
                    object = %source.subject(),
                    error = %source,
                    "left out of the configuration: it is in ERROR and cannot be served"
                );
                tree = prune(&tree, |k, i, _| !(k == kind && i == id));
            }
            _ => {
                return Err(FlowError::Render {
                    config: "haproxy",
                    load_balancer: lb.id,
                    source,
                })
            }
        }
    }
}
