//! The amphora driver: the controller's client of the agent running in each amphora.

use std::time::Duration;

use async_trait::async_trait;
use octavia_model::{Amphora, LoadBalancerId, Topology};

use crate::certs::AmphoraCert;
use crate::network::{AmphoraNetworkConfig, MemberNetworkConfig};
use crate::Result;

/// What the agent says about itself once it answers (`GET /1.0/info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    pub hostname: String,
    pub api_version: String,
    pub haproxy_version: Option<String>,
}

/// What `PUT /vrrp/{action}` does to keepalived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpAction {
    /// Start it (reload a running one).
    Start,
    /// Stop it.
    Stop,
    /// Reload its configuration.
    Reload,
}

impl VrrpAction {
    /// The path segment (`start`, `stop`, `reload`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reload => "reload",
        }
    }
}

/// Talks to the agent of one amphora, addressed by its `lb_network_ip` and verified by
/// its id (the agent certificate's CN).
///
/// Uploads replace what is there, so every call may be repeated after a crash.
#[async_trait]
pub trait AmphoraDriver: Send + Sync {
    /// Poll the agent until it answers or `timeout` passes (then a retryable error).
    async fn wait_for_connectivity(
        &self,
        amphora: &Amphora,
        timeout: Duration,
    ) -> Result<AgentInfo>;

    /// Replace the load balancer's HAProxy configuration on the amphora (validated there).
    async fn upload_config(
        &self,
        amphora: &Amphora,
        load_balancer_id: LoadBalancerId,
        config: &str,
    ) -> Result<()>;

    /// Reload (start if stopped) the load balancer's HAProxy on the amphora.
    async fn reload(&self, amphora: &Amphora, load_balancer_id: LoadBalancerId) -> Result<()>;

    /// Stop HAProxy and remove the load balancer's configuration (no listeners left).
    async fn remove_config(
        &self,
        amphora: &Amphora,
        load_balancer_id: LoadBalancerId,
    ) -> Result<()>;

    /// Configure the VIP interface inside the amphora (`POST /plug/vip/{vip}`). With
    /// ACTIVE_STANDBY the agent adds only the amphora's `vrrp_ip`: keepalived holds the VIP.
    async fn plug_vip(
        &self,
        amphora: &Amphora,
        vip_address: &str,
        config: &AmphoraNetworkConfig,
        topology: Topology,
    ) -> Result<()>;

    /// The name of the amphora's interface that holds `ip` (`GET /interface/{ip}`).
    async fn interface_of(&self, amphora: &Amphora, ip: &str) -> Result<String>;

    /// Replace the amphora's keepalived configuration (`PUT /vrrp/upload`, validated there).
    async fn upload_vrrp_config(&self, amphora: &Amphora, config: &str) -> Result<()>;

    /// Start (reload when running), stop or reload the amphora's keepalived
    /// (`PUT /vrrp/{action}`).
    async fn vrrp_action(&self, amphora: &Amphora, action: VrrpAction) -> Result<()>;

    /// Configure a newly attached member network interface (`POST /plug/network`).
    async fn plug_network(&self, amphora: &Amphora, config: &MemberNetworkConfig) -> Result<()>;

    /// Replace the agent's own configuration file (`PUT /config`).
    async fn update_agent_config(&self, amphora: &Amphora, config: &str) -> Result<()>;

    /// Replace the agent's server certificate and key (`PUT /certificate`); the agent uses
    /// it for every new TLS connection from then on, without a restart.
    async fn upload_server_certificate(&self, amphora: &Amphora, cert: &AmphoraCert) -> Result<()>;
}
