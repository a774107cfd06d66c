//! Request and response bodies of the amphora agent REST API (`/1.0/...`, reference §4).
//!
//! Field names and shapes follow Octavia's agent so either side can talk to the other's peer.
//! Numbers that Octavia's Python agent reports as strings (`cpu.user`, `load`, ...) are accepted
//! in either form when deserialising; this crate always serialises them as numbers.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

/// The agent API version served under `/1.0`.
pub const API_VERSION: &str = "1.0";

/// Path prefix of every versioned endpoint.
pub const API_PREFIX: &str = "/1.0";

/// Where, inside an amphora, HAProxy serves its built-in Prometheus exporter (`GET /metrics`)
/// for PROMETHEUS listeners; the rendered configuration binds it, the agent's metrics proxy
/// reads it (reference §12.2).
pub const PROMETHEUS_EXPORTER_ADDR: &str = "127.0.0.1:9101";

/// Where, inside an amphora, the agent's metrics proxy listens: the backend of every
/// PROMETHEUS listener. It serves HAProxy's metrics renamed to Octavia's `octavia_*` names.
pub const PROMETHEUS_PROXY_ADDR: &str = "127.0.0.1:9102";

/// The directory, under the agent's base path (`[haproxy_amphora] base_path`), of keepalived's
/// files (reference §4: `vrrp/octavia-keepalived.{conf,pid,log}`, `vrrp/check_script.sh`).
pub const VRRP_DIR: &str = "vrrp";

/// keepalived's configuration in [`VRRP_DIR`], as `PUT /1.0/vrrp/upload` stores it.
pub const KEEPALIVED_CONFIG_FILE: &str = "octavia-keepalived.conf";

/// The check script in [`VRRP_DIR`] that the rendered keepalived configuration tracks
/// (`vrrp_script`); the agent installs it with the configuration. It exits non-zero when a
/// HAProxy of the amphora does not serve, which moves the VIP to the peer.
pub const VRRP_CHECK_SCRIPT_FILE: &str = "check_script.sh";

/// `GET /`: the API version the agent speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiVersion {
    /// Always [`API_VERSION`] for this agent.
    pub api_version: String,
}

/// Body of handler errors and plain acknowledgements: `{"message": ..., "details": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Short summary ("OK", "Invalid request", "Loadbalancer Not Found", ...).
    pub message: String,
    /// Longer explanation (for an invalid HAProxy configuration, HAProxy's own output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl Message {
    /// A message without details.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            details: None,
        }
    }

    /// A message with details.
    pub fn with_details(message: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            details: Some(details.into()),
        }
    }
}

/// Body of framework-level errors (unknown path, wrong method): `{"error": ..., "http_code": N}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameworkError {
    /// What went wrong.
    pub error: String,
    /// The HTTP status code of the response.
    pub http_code: u16,
}

/// `GET /1.0/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Host name of the amphora.
    pub hostname: String,
    /// Version of the installed HAProxy (`2.6.12-1+deb12u4`), or `null` when it cannot be run.
    pub haproxy_version: Option<String>,
    /// The agent API version.
    pub api_version: String,
    /// Version of keepalived, `null` when absent.
    #[serde(default)]
    pub keepalived_version: Option<String>,
    /// Version of ipvsadm, `null` when absent.
    #[serde(default)]
    pub ipvsadm_version: Option<String>,
}

/// Transmit/receive byte counters of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkCounters {
    /// Bytes sent.
    #[serde(deserialize_with = "lenient_u64")]
    pub network_tx: u64,
    /// Bytes received.
    #[serde(deserialize_with = "lenient_u64")]
    pub network_rx: u64,
}

/// CPU time counters (jiffies since boot) from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    /// Sum of every column.
    #[serde(deserialize_with = "lenient_u64")]
    pub total: u64,
    /// User time.
    #[serde(deserialize_with = "lenient_u64")]
    pub user: u64,
    /// System time.
    #[serde(deserialize_with = "lenient_u64")]
    pub system: u64,
    /// Soft interrupt time.
    #[serde(deserialize_with = "lenient_u64")]
    pub soft_irq: u64,
}

/// Memory figures in KiB from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// MemTotal.
    #[serde(deserialize_with = "lenient_u64")]
    pub total: u64,
    /// MemFree.
    #[serde(deserialize_with = "lenient_u64")]
    pub free: u64,
    /// Buffers.
    #[serde(deserialize_with = "lenient_u64")]
    pub buffers: u64,
    /// Cached.
    #[serde(deserialize_with = "lenient_u64")]
    pub cached: u64,
    /// SwapTotal − SwapFree.
    #[serde(deserialize_with = "lenient_u64")]
    pub swap_used: u64,
    /// Shmem.
    #[serde(deserialize_with = "lenient_u64")]
    pub shared: u64,
    /// Slab.
    #[serde(deserialize_with = "lenient_u64")]
    pub slab: u64,
}

/// Disk usage in bytes of the file system holding the agent's base path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskInfo {
    /// Bytes in use.
    #[serde(deserialize_with = "lenient_u64")]
    pub used: u64,
    /// Bytes available to unprivileged users.
    #[serde(deserialize_with = "lenient_u64")]
    pub available: u64,
}

/// `GET /1.0/details`: [`Info`] plus host figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Details {
    /// Host name of the amphora.
    pub hostname: String,
    /// Version of the installed HAProxy.
    pub haproxy_version: Option<String>,
    /// The agent API version.
    pub api_version: String,
    /// Version of keepalived, `null` when absent.
    #[serde(default)]
    pub keepalived_version: Option<String>,
    /// Version of ipvsadm, `null` when absent.
    #[serde(default)]
    pub ipvsadm_version: Option<String>,
    /// Byte counters per interface (`/proc/net/dev`).
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkCounters>,
    /// Whether the amphora serves (always true for a running agent).
    pub active: bool,
    /// Number of load balancers whose HAProxy runs.
    #[serde(deserialize_with = "lenient_u64")]
    pub haproxy_count: u64,
    /// Number of CPUs.
    #[serde(deserialize_with = "lenient_u64")]
    pub cpu_count: u64,
    /// CPU time counters.
    #[serde(default)]
    pub cpu: CpuTimes,
    /// Memory figures.
    #[serde(default)]
    pub memory: MemoryInfo,
    /// Disk usage.
    #[serde(default)]
    pub disk: DiskInfo,
    /// Load averages over 1, 5 and 15 minutes.
    #[serde(default, deserialize_with = "lenient_f64_vec")]
    pub load: Vec<f64>,
    /// Active TuneD profiles (empty when TuneD is absent).
    #[serde(default)]
    pub active_tuned_profiles: String,
    /// `SINGLE` or `ACTIVE_STANDBY`.
    #[serde(default)]
    pub topology: String,
    /// `OK` when the topology is in its intended state.
    #[serde(default)]
    pub topology_status: String,
    /// Listener ids served by this amphora.
    #[serde(default)]
    pub listeners: Vec<String>,
    /// Installed package versions the agent reports.
    #[serde(default)]
    pub packages: BTreeMap<String, String>,
    /// Number of keepalived-LVS processes (UDP/SCTP listeners).
    #[serde(default, deserialize_with = "lenient_u64")]
    pub lvs_listener_process_count: u64,
    /// Ours, not Octavia's: whether every VIP of the amphora's keepalived configuration is on
    /// one of its interfaces, i.e. whether this amphora holds the VIP (ACTIVE_STANDBY). Absent
    /// without a keepalived configuration; Octavia's agent never sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip_held: Option<bool>,
}

/// One entry of `GET /1.0/listeners`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStatus {
    /// `ACTIVE` when its HAProxy runs, `STOPPED` otherwise, `ERROR` when its state is unreadable.
    pub status: String,
    /// The listener id (the HAProxy frontend name).
    pub uuid: String,
    /// `HTTP`, `TCP` or `TERMINATED_HTTPS`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `GET /1.0/loadbalancer/{lb_id}/certificates/{filename}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateMd5 {
    /// Hex MD5 of the stored file.
    pub md5sum: String,
}

/// `GET /1.0/interface/{ip}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    /// Always `OK`.
    pub message: String,
    /// Name of the interface holding the address.
    pub interface: String,
}

/// A static route: `destination` (CIDR) via `nexthop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRoute {
    /// Next hop address.
    pub nexthop: IpAddr,
    /// Destination network in CIDR notation.
    pub destination: String,
}

/// A further VIP on the same port as the primary VIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdditionalVip {
    /// Subnet of the address, CIDR notation.
    pub subnet_cidr: String,
    /// The address.
    pub ip_address: IpAddr,
    /// Gateway of the subnet.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Static routes of the subnet.
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
}

/// `POST /1.0/plug/vip/{vip}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlugVip {
    /// Subnet of the VIP, CIDR notation.
    pub subnet_cidr: String,
    /// Gateway of the VIP subnet.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// MAC address of the interface to configure.
    pub mac_address: String,
    /// MTU to set on the interface.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The amphora's own address on the VIP port (ACTIVE_STANDBY).
    #[serde(default)]
    pub vrrp_ip: Option<IpAddr>,
    /// Static routes of the VIP subnet.
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
    /// Further VIPs on the same port.
    #[serde(default)]
    pub additional_vips: Vec<AdditionalVip>,
    /// SR-IOV port (accepted, has no effect in a namespace).
    #[serde(default)]
    pub is_sriov: bool,
    /// The load balancer's topology. Octavia's agent reads it from its configuration file
    /// (`[controller_worker] loadbalancer_topology`); ours is told with each plug, because
    /// one image serves both topologies. Absent: SINGLE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<PlugTopology>,
}

/// How the VIP of a plug is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlugTopology {
    /// One amphora: the agent adds the VIP address, its table-1 routes and its source rule.
    Single,
    /// Two amphorae: the agent adds only the amphora's own `vrrp_ip`; keepalived adds the
    /// VIP, its routes and its rules on the amphora that holds it.
    ActiveStandby,
}

/// A fixed address of a member network port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    /// The address.
    pub ip_address: IpAddr,
    /// Subnet of the address, CIDR notation.
    pub subnet_cidr: String,
    /// Static routes of the subnet.
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
    /// Gateway of the subnet (not installed as a default route).
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// The VIP configuration carried by `POST /plug/network` when the port is on the VIP network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipNetInfo {
    /// The VIP address.
    pub vip: IpAddr,
    /// The rest of the VIP plug request.
    #[serde(flatten)]
    pub plug: PlugVip,
}

/// `POST /1.0/plug/network`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlugNetwork {
    /// MAC address of the interface to configure.
    pub mac_address: String,
    /// Addresses to configure on it.
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    /// MTU to set on the interface.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// VIP configuration when the member network is the VIP network.
    #[serde(default)]
    pub vip_net_info: Option<VipNetInfo>,
    /// SR-IOV port (accepted, has no effect in a namespace).
    #[serde(default)]
    pub is_sriov: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Unsigned(u64),
    Float(f64),
    Text(String),
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumberOrString::deserialize(d)? {
        NumberOrString::Unsigned(n) => Ok(n),
        NumberOrString::Float(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => {
            Ok(f as u64)
        }
        NumberOrString::Float(f) => Err(serde::de::Error::custom(format!(
            "expected a non-negative integer, got {f}"
        ))),
        NumberOrString::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("expected an integer, got {s:?}"))),
    }
}

fn lenient_f64_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let items = Vec::<NumberOrString>::deserialize(d)?;
    items
        .into_iter()
        .map(|item| match item {
            NumberOrString::Unsigned(n) => Ok(n as f64),
            NumberOrString::Float(f) => Ok(f),
            NumberOrString::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("expected a number, got {s:?}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_accepts_the_string_numbers_of_the_python_agent() {
        let body = r#"{"hostname":"amp","haproxy_version":"2.6","api_version":"1.0",
            "keepalived_version":null,"ipvsadm_version":null,
            "networks":{"eth0":{"network_tx":10,"network_rx":"20"}},"active":true,
            "haproxy_count":"1","cpu_count":2,
            "cpu":{"total":100,"user":"40","system":"30","soft_irq":"5"},
            "memory":{"total":1,"free":2,"buffers":3,"cached":4,"swap_used":5,"shared":6,"slab":7},
            "disk":{"used":8,"available":9},"load":["0.01","0.05","0.15"],
            "active_tuned_profiles":"","topology":"SINGLE","topology_status":"OK",
            "listeners":["l1"],"packages":{},"lvs_listener_process_count":0}"#;
        let details: Details = serde_json::from_str(body).expect("details parse");
        assert_eq!(details.cpu.user, 40);
        assert_eq!(details.haproxy_count, 1);
        assert_eq!(details.networks["eth0"].network_rx, 20);
        assert_eq!(details.load, vec![0.01, 0.05, 0.15]);
        let again: Details =
            serde_json::from_value(serde_json::to_value(&details).expect("serialise"))
                .expect("round trip");
        assert_eq!(again, details);
    }

    #[test]
    fn lenient_numbers_refuse_garbage() {
        let body = r#"{"network_tx":"ten","network_rx":1}"#;
        assert!(serde_json::from_str::<NetworkCounters>(body).is_err());
        let body = r#"{"network_tx":-1,"network_rx":1}"#;
        assert!(serde_json::from_str::<NetworkCounters>(body).is_err());
    }

    #[test]
    fn plug_vip_defaults_and_listener_type_field() {
        let plug: PlugVip = serde_json::from_str(
            r#"{"subnet_cidr":"10.0.0.0/24","mac_address":"fa:16:3e:00:00:01"}"#,
        )
        .expect("minimal plug body");
        assert!(plug.gateway.is_none() && plug.host_routes.is_empty() && !plug.is_sriov);
        let net: PlugNetwork = serde_json::from_str(
            r#"{"mac_address":"fa:16:3e:00:00:02","vip_net_info":{"vip":"10.0.0.5",
                "subnet_cidr":"10.0.0.0/24","mac_address":"fa:16:3e:00:00:02"}}"#,
        )
        .expect("plug network with vip_net_info");
        assert_eq!(
            net.vip_net_info.map(|v| v.vip),
            Some("10.0.0.5".parse().expect("ip"))
        );
        let listener = ListenerStatus {
            status: "ACTIVE".into(),
            uuid: "x".into(),
            kind: "HTTP".into(),
        };
        let v = serde_json::to_value(&listener).expect("serialise");
        assert_eq!(v["type"], "HTTP");
    }
}
