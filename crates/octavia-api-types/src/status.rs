//! The status tree of `GET /v2/lbaas/loadbalancers/{id}/status` (reference §1.6).

use serde::{Deserialize, Serialize};

use octavia_model::{
    HealthMonitor, HealthMonitorType, Listener, LoadBalancer, Member, OperatingStatus, Pool,
    ProvisioningStatus,
};

use crate::common::or_empty;

/// `{"statuses": {"loadbalancer": ...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusesResponse {
    pub statuses: StatusRoot,
}

/// The root of the tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRoot {
    pub loadbalancer: LoadBalancerStatus,
}

/// A load balancer node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerStatus {
    pub id: String,
    pub name: String,
    pub operating_status: OperatingStatus,
    pub provisioning_status: ProvisioningStatus,
    pub listeners: Vec<ListenerStatus>,
}

/// A listener node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub id: String,
    pub name: String,
    pub operating_status: OperatingStatus,
    pub provisioning_status: ProvisioningStatus,
    pub pools: Vec<PoolStatus>,
}

/// A pool node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub id: String,
    pub name: String,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub health_monitor: Option<HealthMonitorStatus>,
    pub members: Vec<MemberStatus>,
}

/// A health monitor node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthMonitorStatus {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub monitor_type: HealthMonitorType,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
}

/// A member node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: String,
    pub name: String,
    pub operating_status: OperatingStatus,
    pub provisioning_status: ProvisioningStatus,
    pub address: String,
    pub protocol_port: i32,
}

/// Build the tree: listeners in the given order, each with the pools it uses (its
/// default pool and L7 redirect targets), each pool with its monitor and members.
pub fn build(
    lb: &LoadBalancer,
    listeners: &[Listener],
    pools: &[Pool],
    members: &[Member],
    health_monitors: &[HealthMonitor],
) -> StatusesResponse {
    let pool_node = |p: &Pool| PoolStatus {
        id: p.id.to_string(),
        name: or_empty(&p.name),
        provisioning_status: p.provisioning_status,
        operating_status: p.operating_status,
        health_monitor: health_monitors.iter().find(|h| h.pool_id == p.id).map(|h| {
            HealthMonitorStatus {
                id: h.id.to_string(),
                name: or_empty(&h.name),
                monitor_type: h.monitor_type,
                provisioning_status: h.provisioning_status,
                operating_status: h.operating_status,
            }
        }),
        members: members
            .iter()
            .filter(|m| m.pool_id == p.id)
            .map(|m| MemberStatus {
                id: m.id.to_string(),
                name: or_empty(&m.name),
                operating_status: m.operating_status,
                provisioning_status: m.provisioning_status,
                address: m.ip_address.clone(),
                protocol_port: m.protocol_port,
            })
            .collect(),
    };
    let listener_nodes = listeners
        .iter()
        .map(|l| ListenerStatus {
            id: l.id.to_string(),
            name: or_empty(&l.name),
            operating_status: l.operating_status,
            provisioning_status: l.provisioning_status,
            pools: pools
                .iter()
                .filter(|p| l.default_pool_id == Some(p.id) || p.listener_ids.contains(&l.id))
                .map(pool_node)
                .collect(),
        })
        .collect();
    StatusesResponse {
        statuses: StatusRoot {
            loadbalancer: LoadBalancerStatus {
                id: lb.id.to_string(),
                name: or_empty(&lb.name),
                operating_status: lb.operating_status,
                provisioning_status: lb.provisioning_status,
                listeners: listener_nodes,
            },
        },
    }
}
