//! The network driver: VIPs, and the ports that attach amphorae to tenant networks.

use async_trait::async_trait;
use octavia_model::{Amphora, LoadBalancerId, Vip};

use crate::Result;

/// A request for the VIP of one load balancer.
#[derive(Debug, Clone, PartialEq)]
pub struct VipRequest {
    pub load_balancer_id: LoadBalancerId,
    pub project_id: String,
    /// What the user asked for (network, subnet, port, address; any may be `None`).
    pub requested: Vip,
}

/// The result of plugging the VIP into one amphora.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipPlug {
    /// Address of the amphora's own ("vrrp") port on the VIP network.
    pub vrrp_ip: String,
    /// The amphora's own port on the VIP network.
    pub vrrp_port_id: String,
    /// The VIP address.
    pub ha_ip: String,
    /// The port holding the VIP address.
    pub ha_port_id: String,
}

/// One address of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

/// A port attached to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub compute_id: String,
    pub network_id: String,
    pub port_id: String,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIp>,
}

/// A subnet as the network service describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub network_id: String,
    pub cidr: String,
    pub gateway_ip: Option<String>,
}

/// A network as the network service describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    /// Its subnets, in the order the service lists them.
    pub subnet_ids: Vec<String>,
}

/// A port as the network service describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub id: String,
    pub network_id: String,
    pub fixed_ips: Vec<FixedIp>,
    /// What the port is bound to (an instance, a load balancer's VIP, a reservation);
    /// `None` = free for a user to hand over as a VIP port.
    pub device_id: Option<String>,
}

/// A static route handed to the amphora.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

/// What the agent needs to configure the VIP interface (the `/plug/vip` body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmphoraNetworkConfig {
    pub subnet_cidr: String,
    pub gateway: Option<String>,
    /// MAC of the amphora's port on the VIP network.
    pub mac_address: String,
    pub mtu: Option<u32>,
    pub vrrp_ip: Option<String>,
    pub host_routes: Vec<HostRoute>,
}

/// One address of an amphora's member-network port, with what the agent needs to configure
/// it (the `fixed_ips[]` of `/plug/network`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAddress {
    pub ip_address: String,
    pub subnet_cidr: String,
    pub gateway: Option<String>,
    pub host_routes: Vec<HostRoute>,
}

/// What the agent needs to configure a newly attached member-network port
/// (the `/plug/network` body); the flow step builds it from the port and its subnets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberNetworkConfig {
    pub mac_address: String,
    pub addresses: Vec<PortAddress>,
    pub mtu: Option<u32>,
}

/// The read-only questions about networks, subnets and ports that the API asks while it
/// validates a VIP (reference §1.5) and that flows ask about member subnets. Lookups never
/// change anything; `Ok(None)` means the object does not exist.
#[async_trait]
pub trait NetworkLookup: Send + Sync {
    /// Describe a subnet.
    async fn find_subnet(&self, subnet_id: &str) -> Result<Option<Subnet>>;

    /// Describe a network and list its subnets.
    async fn find_network(&self, network_id: &str) -> Result<Option<Network>>;

    /// Describe a port.
    async fn find_port(&self, port_id: &str) -> Result<Option<Port>>;
}

/// Allocates VIPs and plugs amphorae into networks.
///
/// Every call is idempotent: allocating the VIP of a load balancer twice returns the same
/// VIP, plugging what is plugged returns the existing port, unplugging or releasing what is
/// gone (or was never allocated) succeeds and changes nothing.
#[async_trait]
pub trait NetworkDriver: NetworkLookup {
    /// Create (or find) the VIP port of the load balancer; returns the complete VIP.
    async fn allocate_vip(&self, request: &VipRequest) -> Result<Vip>;

    /// Release the VIP port of the load balancer, whatever `vip` holds (it may be the
    /// incomplete request of a load balancer whose allocation failed); nothing allocated →
    /// nothing to do.
    async fn deallocate_vip(&self, load_balancer_id: LoadBalancerId, vip: &Vip) -> Result<()>;

    /// Give the amphora a port on the VIP network and let it hold the VIP address.
    async fn plug_vip(&self, amphora: &Amphora, vip: &Vip) -> Result<VipPlug>;

    /// Remove the amphora's port on the VIP network; an amphora without an instance or
    /// without such a port → nothing to do.
    async fn unplug_vip(&self, amphora: &Amphora, vip: &Vip) -> Result<()>;

    /// Attach the instance to a network (member networks); returns the port.
    async fn plug_network(&self, compute_id: &str, network_id: &str) -> Result<Interface>;

    /// Detach the instance from a network.
    async fn unplug_network(&self, compute_id: &str, network_id: &str) -> Result<()>;

    /// Ports currently attached to the instance (excluding the management port).
    async fn plugged_networks(&self, compute_id: &str) -> Result<Vec<Interface>>;

    /// The VIP interface configuration of one amphora, for the agent's `/plug/vip`.
    async fn network_config(&self, amphora: &Amphora, vip: &Vip) -> Result<AmphoraNetworkConfig>;
}
