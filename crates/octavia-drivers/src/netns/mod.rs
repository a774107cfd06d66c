//! `netns` drivers: every amphora is a Linux network namespace wired to Linux bridges with veth
//! pairs, all built with `ip` (iproute2) and named deterministically from ids, so a restarted
//! controller finds what already exists.
//!
//! - [`NetnsCompute`] builds amphorae: namespace `<prefix><short id>`, a veth on the management
//!   bridge (`eth0` inside, `lb_network_ip` from the management CIDR), the boot bundle in a
//!   per-amphora directory and the agent started with `ip netns exec`.
//! - [`NetnsNetwork`] keeps operator-created tenant networks (bridge + CIDR + gateway) and the
//!   address allocations of VIPs and ports in a JSON file, and plugs amphorae into the bridges.
//! - [`ImageRegistry`] keeps the amphora images (agent binary + manifest, with tags) that
//!   [`NetnsCompute`] boots, as its [`ImageResolver`].
//!
//! Both need root and iproute2. Only IPv4 subnets are supported.

pub mod compute;
pub mod images;
pub mod network;
mod sys;

pub use compute::{
    AgentSettings, FixedImage, HostState, ImageResolver, InstanceRecord, ManagementNetwork,
    NetnsCompute, NetnsComputeSettings, ReconcileReport, ResolvedImage, AMPHORA_ROOT,
};
pub use images::{ImageRecord, ImageRegistry};
pub use network::{NetnsNetwork, NetworkSpec, PortKind, PortRecord, TenantNetwork};
pub use sys::Ipv4Cidr;
