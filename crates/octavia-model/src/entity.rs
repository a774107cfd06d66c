//! The objects of the load-balancing model as the control plane holds them.
//!
//! Field names follow Octavia's database columns (`enabled`, `rise_threshold`, ...);
//! the API crate translates to and from wire names (`admin_state_up`, `max_retries`, ...).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    AmphoraId, AmphoraRole, AvailabilityZoneProfileId, ClientAuthentication, FlavorId,
    FlavorProfileId, HealthMonitorId, HealthMonitorType, HttpMethod, L7PolicyAction, L7PolicyId,
    L7RuleCompareType, L7RuleId, L7RuleType, LbAlgorithm, ListenerId, ListenerProtocol,
    LoadBalancerId, MemberId, OperatingStatus, PoolId, PoolProtocol, ProvisioningStatus,
    SessionPersistenceType, Timestamp, Topology,
};

/// The virtual IP of a load balancer (Octavia's `vip` table).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Vip {
    /// The address clients connect to.
    pub ip_address: Option<String>,
    /// The port holding the address.
    pub port_id: Option<String>,
    /// The subnet of the address.
    pub subnet_id: Option<String>,
    /// The network of the address.
    pub network_id: Option<String>,
    /// QoS policy applied to the VIP port.
    pub qos_policy_id: Option<String>,
}

/// A load balancer (`load_balancer` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub id: LoadBalancerId,
    pub project_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub enabled: bool,
    pub topology: Topology,
    pub provider: Option<String>,
    pub flavor_id: Option<String>,
    pub availability_zone: Option<String>,
    pub vip: Vip,
    pub tags: Vec<String>,
    /// Derived (read-only, ignored on write): ids of its listeners.
    #[serde(default)]
    pub listener_ids: Vec<ListenerId>,
    /// Derived: ids of its pools.
    #[serde(default)]
    pub pool_ids: Vec<PoolId>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// A listener (`listener` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    pub id: ListenerId,
    pub project_id: String,
    pub load_balancer_id: LoadBalancerId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub enabled: bool,
    pub protocol: ListenerProtocol,
    pub protocol_port: i32,
    pub connection_limit: i32,
    pub default_pool_id: Option<PoolId>,
    pub default_tls_container_ref: Option<String>,
    pub sni_container_refs: Vec<String>,
    pub client_ca_tls_container_ref: Option<String>,
    pub client_authentication: ClientAuthentication,
    pub client_crl_container_ref: Option<String>,
    /// Milliseconds.
    pub timeout_client_data: i32,
    /// Milliseconds.
    pub timeout_member_connect: i32,
    /// Milliseconds.
    pub timeout_member_data: i32,
    /// Milliseconds.
    pub timeout_tcp_inspect: i32,
    /// Header name → value (`listener.insert_headers`).
    pub insert_headers: BTreeMap<String, String>,
    pub allowed_cidrs: Vec<String>,
    pub tls_ciphers: Option<String>,
    pub tls_versions: Vec<String>,
    pub alpn_protocols: Vec<String>,
    pub hsts_max_age: Option<i32>,
    pub hsts_include_subdomains: bool,
    pub hsts_preload: bool,
    pub tags: Vec<String>,
    /// Derived: ids of its L7 policies, by position.
    #[serde(default)]
    pub l7policy_ids: Vec<L7PolicyId>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// Session persistence of a pool (`session_persistence` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionPersistence {
    pub persistence_type: SessionPersistenceType,
    pub cookie_name: Option<String>,
    pub persistence_timeout: Option<i32>,
    pub persistence_granularity: Option<String>,
}

/// A pool (`pool` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub id: PoolId,
    pub project_id: String,
    pub load_balancer_id: LoadBalancerId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub enabled: bool,
    pub protocol: PoolProtocol,
    pub lb_algorithm: LbAlgorithm,
    pub session_persistence: Option<SessionPersistence>,
    pub tls_enabled: bool,
    pub tls_certificate_id: Option<String>,
    pub ca_tls_certificate_id: Option<String>,
    pub crl_container_id: Option<String>,
    pub tls_ciphers: Option<String>,
    pub tls_versions: Vec<String>,
    pub alpn_protocols: Vec<String>,
    pub tags: Vec<String>,
    /// Derived: listeners using this pool (as default pool or L7 redirect target).
    #[serde(default)]
    pub listener_ids: Vec<ListenerId>,
    /// Derived: ids of its members.
    #[serde(default)]
    pub member_ids: Vec<MemberId>,
    /// Derived: its health monitor.
    #[serde(default)]
    pub health_monitor_id: Option<HealthMonitorId>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// A pool member (`member` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: MemberId,
    pub project_id: String,
    pub pool_id: PoolId,
    pub name: Option<String>,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub enabled: bool,
    pub ip_address: String,
    pub protocol_port: i32,
    pub weight: i32,
    pub backup: bool,
    pub subnet_id: Option<String>,
    pub monitor_address: Option<String>,
    pub monitor_port: Option<i32>,
    pub vnic_type: String,
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// A health monitor (`health_monitor` table). One per pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthMonitor {
    pub id: HealthMonitorId,
    pub project_id: String,
    pub pool_id: PoolId,
    pub name: Option<String>,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub enabled: bool,
    pub monitor_type: HealthMonitorType,
    /// Seconds between checks.
    pub delay: i32,
    /// Seconds to wait for a check.
    pub timeout: i32,
    /// API `max_retries`.
    pub rise_threshold: i32,
    /// API `max_retries_down`.
    pub fall_threshold: i32,
    pub http_method: Option<HttpMethod>,
    pub url_path: Option<String>,
    pub expected_codes: Option<String>,
    /// `1.0` or `1.1`.
    pub http_version: Option<f64>,
    pub domain_name: Option<String>,
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// An L7 policy (`l7policy` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L7Policy {
    pub id: L7PolicyId,
    pub project_id: String,
    pub listener_id: ListenerId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub enabled: bool,
    pub action: L7PolicyAction,
    pub position: i32,
    pub redirect_pool_id: Option<PoolId>,
    pub redirect_url: Option<String>,
    pub redirect_prefix: Option<String>,
    pub redirect_http_code: Option<i32>,
    pub tags: Vec<String>,
    /// Derived: ids of its rules.
    #[serde(default)]
    pub rule_ids: Vec<L7RuleId>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// An L7 rule (`l7rule` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L7Rule {
    pub id: L7RuleId,
    pub project_id: String,
    pub l7policy_id: L7PolicyId,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub enabled: bool,
    pub rule_type: L7RuleType,
    pub compare_type: L7RuleCompareType,
    pub key: Option<String>,
    pub value: String,
    pub invert: bool,
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// Per-project limits (`quotas` table). `None` = use the configured default; -1 = unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Quota {
    pub project_id: String,
    pub load_balancer: Option<i64>,
    pub listener: Option<i64>,
    pub pool: Option<i64>,
    pub health_monitor: Option<i64>,
    pub member: Option<i64>,
    pub l7policy: Option<i64>,
    pub l7rule: Option<i64>,
}

/// What a provider makes of a flavor (`flavor_profile` table): `flavor_data` is the JSON
/// object of provider settings, kept as the operator wrote it (for the amphora provider,
/// [`crate::FlavorMetadata`] reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorProfile {
    pub id: FlavorProfileId,
    pub name: String,
    pub provider_name: String,
    pub flavor_data: String,
}

/// A flavor tenants pick for their load balancers (`flavor` table); its name is unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flavor {
    pub id: FlavorId,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub flavor_profile_id: FlavorProfileId,
}

/// What a provider makes of an availability zone (`availability_zone_profile` table):
/// `availability_zone_data` is the JSON object of provider settings (for the amphora
/// provider, [`crate::AvailabilityZoneMetadata`] reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityZoneProfile {
    pub id: AvailabilityZoneProfileId,
    pub name: String,
    pub provider_name: String,
    pub availability_zone_data: String,
}

/// An availability zone tenants pick for their load balancers (`availability_zone` table),
/// keyed by its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityZone {
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub availability_zone_profile_id: AvailabilityZoneProfileId,
}

/// An amphora (`amphora` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Amphora {
    pub id: AmphoraId,
    pub load_balancer_id: Option<LoadBalancerId>,
    pub compute_id: Option<String>,
    pub lb_network_ip: Option<String>,
    pub vrrp_ip: Option<String>,
    pub ha_ip: Option<String>,
    pub vrrp_port_id: Option<String>,
    pub ha_port_id: Option<String>,
    pub cert_expiration: Option<Timestamp>,
    pub cert_busy: bool,
    pub role: Option<AmphoraRole>,
    pub status: ProvisioningStatus,
    pub vrrp_interface: Option<String>,
    pub vrrp_id: Option<i32>,
    pub vrrp_priority: Option<i32>,
    pub cached_zone: Option<String>,
    pub image_id: Option<String>,
    pub compute_flavor: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

impl Amphora {
    /// An amphora with nothing built yet: the given identity, owner, status and creation
    /// time; every other field empty (`None`, `false`), for the caller to fill in.
    pub fn new(
        id: AmphoraId,
        load_balancer_id: Option<LoadBalancerId>,
        status: ProvisioningStatus,
        created_at: Timestamp,
    ) -> Amphora {
        Amphora {
            id,
            load_balancer_id,
            compute_id: None,
            lb_network_ip: None,
            vrrp_ip: None,
            ha_ip: None,
            vrrp_port_id: None,
            ha_port_id: None,
            cert_expiration: None,
            cert_busy: false,
            role: None,
            status,
            vrrp_interface: None,
            vrrp_id: None,
            vrrp_priority: None,
            cached_zone: None,
            image_id: None,
            compute_flavor: None,
            created_at,
            updated_at: None,
        }
    }
}

/// Accumulated traffic counters of one listener on one amphora (`listener_statistics`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListenerStatistics {
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub active_connections: i64,
    pub total_connections: i64,
    pub request_errors: i64,
}

/// The counters one amphora holds for one listener, with the load balancer the amphora
/// serves (`listener_statistics` joined with `amphora`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmphoraStatistics {
    pub amphora_id: AmphoraId,
    pub load_balancer_id: Option<LoadBalancerId>,
    pub listener_id: ListenerId,
    pub stats: ListenerStatistics,
}
