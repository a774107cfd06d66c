//! The plain settings struct of the API (`[api_settings]` and the few options of other
//! sections the API reads). `Default` is Octavia's defaults; the binary maps its TOML
//! file onto this struct.

use std::net::IpAddr;

use octavia_api_types::ValidationSettings;
use octavia_model::Topology;

/// How callers are authenticated (`[api_settings] auth_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthStrategy {
    /// Trust `X-Project-Id`/`X-Tenant-Id` and `X-Roles` headers (local use, tests).
    #[default]
    Noauth,
    /// Keystone tokens (`[keystone_authtoken]`), validated and cached by the API.
    Keystone,
}

/// Everything the API needs from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    /// `[api_settings] auth_strategy`. Octavia's default is keystone; ours is noauth, for
    /// the all-in-one on loopback (the binary refuses noauth on any other address unless the
    /// operator says so).
    pub auth_strategy: AuthStrategy,
    /// `[keystone_authtoken]`, used with `AuthStrategy::Keystone`.
    pub keystone: crate::auth::KeystoneSettings,
    /// `[oslo_policy]`.
    pub policy: crate::auth::PolicySettings,
    /// `[api_settings] pagination_max_limit`: default and maximum page size (1000).
    pub pagination_max_limit: u32,
    /// `[api_settings] api_base_uri`: base of pagination links, e.g.
    /// `https://lb.example.com:9876`; `None` = derived from the request's Host header.
    pub api_base_uri: Option<String>,
    /// `[api_settings] allow_pagination` (true): honour `limit`/`marker`.
    pub allow_pagination: bool,
    /// `[api_settings] allow_sorting` (true): honour `sort`, `sort_key`, `sort_dir`.
    pub allow_sorting: bool,
    /// `[api_settings] allow_filtering` (true): honour attribute and tag filters.
    pub allow_filtering: bool,
    /// `[api_settings] allow_field_selection` (true): honour `fields`.
    pub allow_field_selection: bool,
    /// `[api_settings] allow_tls_terminated_listeners` (true).
    pub allow_tls_terminated_listeners: bool,
    /// `[api_settings] allow_ping_health_monitors` (true).
    pub allow_ping_health_monitors: bool,
    /// `[api_settings] allow_prometheus_listeners` (true).
    pub allow_prometheus_listeners: bool,
    /// `[api_settings] udp_connect_min_interval_health_monitor` (3 seconds).
    pub udp_connect_min_interval_health_monitor: i64,
    /// `[api_settings] default_provider_driver` ("amphora"), used when a load balancer
    /// names no provider.
    pub default_provider_driver: String,
    /// `[haproxy_amphora] timeout_client_data` (50000 ms), listener default.
    pub timeout_client_data: i32,
    /// `[haproxy_amphora] timeout_member_connect` (5000 ms), listener default.
    pub timeout_member_connect: i32,
    /// `[haproxy_amphora] timeout_member_data` (50000 ms), listener default.
    pub timeout_member_data: i32,
    /// `[haproxy_amphora] timeout_tcp_inspect` (0 ms), listener default.
    pub timeout_tcp_inspect: i32,
    /// `[haproxy_amphora] default_connection_limit` (50000): what a listener's
    /// `connection_limit = -1` means to the renderer. The API stores -1 as given.
    pub default_connection_limit: i32,
    /// `[networking] reserved_ips` ([169.254.169.254]): refused as member addresses.
    pub reserved_ips: Vec<IpAddr>,
    /// `[controller_worker] loadbalancer_topology` (SINGLE) for new load balancers.
    pub loadbalancer_topology: Topology,
    /// Largest accepted request body in bytes (oslo `max_request_body_size`, 114688).
    pub max_request_body_size: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            auth_strategy: AuthStrategy::Noauth,
            keystone: Default::default(),
            policy: Default::default(),
            pagination_max_limit: 1000,
            api_base_uri: None,
            allow_pagination: true,
            allow_sorting: true,
            allow_filtering: true,
            allow_field_selection: true,
            allow_tls_terminated_listeners: true,
            allow_ping_health_monitors: true,
            allow_prometheus_listeners: true,
            udp_connect_min_interval_health_monitor: 3,
            default_provider_driver: "amphora".to_string(),
            timeout_client_data: 50000,
            timeout_member_connect: 5000,
            timeout_member_data: 50000,
            timeout_tcp_inspect: 0,
            default_connection_limit: 50000,
            reserved_ips: vec![IpAddr::from([169, 254, 169, 254])],
            loadbalancer_topology: Topology::Single,
            max_request_body_size: 114_688,
        }
    }
}

impl ApiSettings {
    /// The subset the request rules of `octavia-api-types` need.
    pub fn validation(&self) -> ValidationSettings {
        ValidationSettings {
            reserved_ips: self.reserved_ips.clone(),
            allow_tls_terminated_listeners: self.allow_tls_terminated_listeners,
            allow_ping_health_monitors: self.allow_ping_health_monitors,
            allow_prometheus_listeners: self.allow_prometheus_listeners,
            udp_connect_min_interval_health_monitor: self.udp_connect_min_interval_health_monitor,
            timeout_client_data: self.timeout_client_data,
            timeout_member_connect: self.timeout_member_connect,
            timeout_member_data: self.timeout_member_data,
            timeout_tcp_inspect: self.timeout_tcp_inspect,
        }
    }
}
