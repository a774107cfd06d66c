//! The configuration text pushed to each amphora, rendered from the load balancer tree.
//!
//! Until the HAProxy renderer lands this is a deterministic, line-oriented description of
//! what the amphora must serve (the noop agent records it, tests read it). Objects being
//! deleted (`PENDING_DELETE`, `DELETED`) are left out, so a delete flow pushes the
//! configuration without them.

use std::fmt::Write;

use octavia_db::LoadBalancerTree;
use octavia_model::{Amphora, ProvisioningStatus};

fn live(status: ProvisioningStatus) -> bool {
    !matches!(
        status,
        ProvisioningStatus::PendingDelete | ProvisioningStatus::Deleted
    )
}

/// Whether the tree has any listener the amphora must serve.
pub fn has_listeners(tree: &LoadBalancerTree) -> bool {
    tree.listeners.iter().any(|l| live(l.provisioning_status))
}

/// The configuration of `amphora` for the load balancer in `tree`.
pub fn render(tree: &LoadBalancerTree, amphora: &Amphora) -> String {
    let lb = &tree.load_balancer;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "loadbalancer {} enabled={} amphora={} role={} vip={}",
        lb.id,
        lb.enabled,
        amphora.id,
        amphora.role.map(|r| r.as_str()).unwrap_or("NONE"),
        lb.vip.ip_address.as_deref().unwrap_or("-"),
    );
    let mut listeners: Vec<_> = tree
        .listeners
        .iter()
        .filter(|l| live(l.provisioning_status))
        .collect();
    listeners.sort_by_key(|l| (l.protocol_port, l.id));
    for l in listeners {
        let _ = writeln!(
            out,
            "listener {} {}:{} enabled={} default_pool={}",
            l.id,
            l.protocol,
            l.protocol_port,
            l.enabled,
            l.default_pool_id
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
        );
        let mut policies: Vec<_> = tree
            .l7policies
            .iter()
            .filter(|p| p.listener_id == l.id && live(p.provisioning_status))
            .collect();
        policies.sort_by_key(|p| (p.position, p.id));
        for p in policies {
            let _ = writeln!(
                out,
                "  l7policy {} position={} action={} enabled={}",
                p.id, p.position, p.action, p.enabled
            );
            for r in tree
                .l7rules
                .iter()
                .filter(|r| r.l7policy_id == p.id && live(r.provisioning_status))
            {
                let _ = writeln!(
                    out,
                    "    l7rule {} {} {} {:?} invert={} enabled={}",
                    r.id, r.rule_type, r.compare_type, r.value, r.invert, r.enabled
                );
            }
        }
    }
    let mut pools: Vec<_> = tree
        .pools
        .iter()
        .filter(|p| live(p.provisioning_status))
        .collect();
    pools.sort_by_key(|p| p.id);
    for p in pools {
        let _ = writeln!(
            out,
            "pool {} {} {} enabled={}",
            p.id, p.protocol, p.lb_algorithm, p.enabled
        );
        if let Some(hm) = tree
            .health_monitors
            .iter()
            .find(|h| h.pool_id == p.id && live(h.provisioning_status))
        {
            let _ = writeln!(
                out,
                "  health_monitor {} {} delay={} timeout={} enabled={}",
                hm.id, hm.monitor_type, hm.delay, hm.timeout, hm.enabled
            );
        }
        let mut members: Vec<_> = tree
            .members
            .iter()
            .filter(|m| m.pool_id == p.id && live(m.provisioning_status))
            .collect();
        members.sort_by_key(|m| m.id);
        for m in members {
            let _ = writeln!(
                out,
                "  member {} {}:{} weight={} backup={} enabled={}",
                m.id, m.ip_address, m.protocol_port, m.weight, m.backup, m.enabled
            );
        }
    }
    out
}
