//! A load balancer's tree: as it is stored ([`LoadBalancerTree`]: the status tree, the
//! flows, the answer to a single-call create), and as one single-call create asks for it
//! ([`LoadBalancerGraph`], reference §1.5): pools with their members and monitor,
//! listeners with their L7 policies and rules, every reference between them already
//! resolved to ids.

use crate::{HealthMonitor, L7Policy, L7Rule, Listener, LoadBalancer, Member, ObjectKind, Pool};

/// A load balancer with everything below it, each kind in one list (children name their
/// parents by id).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancerTree {
    pub load_balancer: LoadBalancer,
    pub listeners: Vec<Listener>,
    pub pools: Vec<Pool>,
    pub members: Vec<Member>,
    pub health_monitors: Vec<HealthMonitor>,
    pub l7policies: Vec<L7Policy>,
    pub l7rules: Vec<L7Rule>,
}

/// Everything a single-call create adds below its new load balancer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadBalancerGraph {
    /// Created first: listeners and policies point at them.
    pub pools: Vec<PoolGraph>,
    pub listeners: Vec<ListenerGraph>,
}

/// A pool with the objects created below it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolGraph {
    pub pool: Pool,
    pub health_monitor: Option<HealthMonitor>,
    pub members: Vec<Member>,
}

/// A listener with the objects created below it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerGraph {
    pub listener: Listener,
    pub l7policies: Vec<L7PolicyGraph>,
}

/// An L7 policy with its rules.
#[derive(Debug, Clone, PartialEq)]
pub struct L7PolicyGraph {
    pub policy: L7Policy,
    pub rules: Vec<L7Rule>,
}

impl LoadBalancerGraph {
    /// True when the create asks for nothing below the load balancer.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty() && self.listeners.is_empty()
    }

    /// How many objects of `kind` the graph creates (the load balancer itself not counted).
    pub fn count(&self, kind: ObjectKind) -> usize {
        let policies = || self.listeners.iter().flat_map(|l| &l.l7policies);
        match kind {
            ObjectKind::Pool => self.pools.len(),
            ObjectKind::Member => self.pools.iter().map(|p| p.members.len()).sum(),
            ObjectKind::HealthMonitor => self
                .pools
                .iter()
                .filter(|p| p.health_monitor.is_some())
                .count(),
            ObjectKind::Listener => self.listeners.len(),
            ObjectKind::L7Policy => policies().count(),
            ObjectKind::L7Rule => policies().map(|p| p.rules.len()).sum(),
            ObjectKind::LoadBalancer | ObjectKind::Amphora => 0,
        }
    }
}
