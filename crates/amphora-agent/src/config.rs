//! The agent's configuration file (TOML, Octavia's `amphora-agent.conf` section and option names).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use amphora_proto::agent::{PROMETHEUS_EXPORTER_ADDR, PROMETHEUS_PROXY_ADDR};
use serde::{Deserialize, Deserializer};

use crate::error::{AgentError, Result};
use crate::prometheus::ExporterUrl;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// `[amphora_agent]`: identity, certificates, request timeout.
    pub amphora_agent: AmphoraAgentSection,
    /// `[haproxy_amphora]`: file layout, bind address, HAProxy binary.
    #[serde(default)]
    pub haproxy_amphora: HaproxyAmphoraSection,
    /// `[health_manager]`: where and how heartbeats are sent.
    #[serde(default)]
    pub health_manager: HealthManagerSection,
}

/// `[amphora_agent]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmphoraAgentSection {
    /// PEM file holding the agent's server certificate followed by its private key.
    #[serde(default = "default_server_cert")]
    pub agent_server_cert: PathBuf,
    /// PEM file of the CA that signs controller client certificates (clients must present one).
    #[serde(default = "default_server_ca")]
    pub agent_server_ca: PathBuf,
    /// This amphora's id (its certificate's CN/SAN, the heartbeat `id`).
    pub amphora_id: String,
    /// Longest time one request may take (seconds as an integer, or a string like "3m").
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "duration_secs_or_human"
    )]
    pub agent_request_read_timeout: Duration,
    /// Lowest TLS version accepted.
    #[serde(default)]
    pub agent_tls_protocol: TlsProtocol,
    /// Open unprivileged ping to every group in this network namespace
    /// (`net.ipv4.ping_group_range`) at start: HAProxy runs the checks of PING health
    /// monitors as `nobody`, where `ping` has no other way to send. On by default, as an
    /// amphora is the agent's own host; `false` leaves the kernel setting alone (an agent
    /// run on a shared host, as the tests do).
    #[serde(default = "default_allow_unprivileged_ping")]
    pub allow_unprivileged_ping: bool,
    /// Where the Prometheus metrics proxy listens ("ip:port"): the backend of every
    /// PROMETHEUS listener (`prometheus-exporter-internal`). An empty string disables the
    /// proxy. Applies at the next start.
    #[serde(default = "default_prometheus_proxy_bind")]
    pub prometheus_proxy_bind: String,
    /// The HAProxy Prometheus exporter the proxy reads (`http://host:port/path`), served by
    /// the internal frontend of the rendered configuration. Applies at the next start.
    #[serde(default = "default_prometheus_exporter_url")]
    pub prometheus_exporter_url: String,
}

/// Lowest TLS protocol version the agent accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TlsProtocol {
    /// TLS 1.2 and 1.3.
    #[default]
    #[serde(rename = "TLSv1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

/// `[haproxy_amphora]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyAmphoraSection {
    /// Directory of per load balancer state: `<lb_id>/haproxy.cfg`, `<lb_id>.sock`, ...
    #[serde(default = "default_base_path")]
    pub base_path: PathBuf,
    /// Directory of per load balancer certificates: `<lb_id>/<name>.pem`.
    #[serde(default = "default_base_cert_dir")]
    pub base_cert_dir: PathBuf,
    /// Address the agent's HTTPS server binds.
    #[serde(default = "default_bind_host")]
    pub bind_host: IpAddr,
    /// Port the agent's HTTPS server binds.
    #[serde(default = "default_bind_port")]
    pub bind_port: u16,
    /// The HAProxy binary.
    #[serde(default = "default_haproxy_cmd")]
    pub haproxy_cmd: PathBuf,
    /// The keepalived binary (ACTIVE_STANDBY amphorae; Octavia's `KEEPALIVED_CMD`).
    #[serde(default = "default_keepalived_cmd")]
    pub keepalived_cmd: PathBuf,
}

impl Default for HaproxyAmphoraSection {
    fn default() -> Self {
        Self {
            base_path: default_base_path(),
            base_cert_dir: default_base_cert_dir(),
            bind_host: default_bind_host(),
            bind_port: default_bind_port(),
            haproxy_cmd: default_haproxy_cmd(),
            keepalived_cmd: default_keepalived_cmd(),
        }
    }
}

/// `[health_manager]` (the options an amphora uses).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthManagerSection {
    /// Health managers to send heartbeats to, round-robin ("ip:port", IPv6 in brackets); a
    /// TOML list or Octavia's comma-separated string.
    #[serde(default, deserialize_with = "socket_addr_list")]
    pub controller_ip_port_list: Vec<SocketAddr>,
    /// Time between two heartbeats (seconds as an integer, or a string like "500ms").
    #[serde(
        default = "default_heartbeat_interval",
        deserialize_with = "duration_secs_or_human"
    )]
    pub heartbeat_interval: Duration,
    /// Key of the heartbeat HMAC; without it no heartbeat is sent.
    #[serde(default)]
    pub heartbeat_key: Option<HeartbeatKey>,
}

impl Default for HealthManagerSection {
    fn default() -> Self {
        Self {
            controller_ip_port_list: Vec::new(),
            heartbeat_interval: default_heartbeat_interval(),
            heartbeat_key: None,
        }
    }
}

/// The heartbeat HMAC key; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct HeartbeatKey(String);

impl HeartbeatKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for signing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for HeartbeatKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl AgentConfig {
    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| AgentError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AgentError::io("read agent config", path, e))?;
        Self::parse(&text)
    }

    fn validate(&self) -> Result<()> {
        if !crate::is_safe_id(&self.amphora_agent.amphora_id) {
            return Err(AgentError::Config(
                "amphora_agent.amphora_id must be a non-empty id of letters, digits, '-' or '_'"
                    .into(),
            ));
        }
        let section = &self.amphora_agent;
        if let Err(error) = self.prometheus_proxy_addr() {
            return Err(AgentError::Config(format!(
                "amphora_agent.prometheus_proxy_bind: {error}"
            )));
        }
        if let Err(error) = ExporterUrl::parse(&section.prometheus_exporter_url) {
            return Err(AgentError::Config(format!(
                "amphora_agent.prometheus_exporter_url: {error}"
            )));
        }
        if self.health_manager.heartbeat_interval.is_zero() {
            return Err(AgentError::Config(
                "health_manager.heartbeat_interval must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Address the Prometheus metrics proxy binds; `None` when it is disabled (empty string).
    pub fn prometheus_proxy_addr(&self) -> Result<Option<SocketAddr>, String> {
        let text = self.amphora_agent.prometheus_proxy_bind.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse::<SocketAddr>()
            .map(Some)
            .map_err(|_| format!("invalid address {text:?} (want ip:port, IPv6 in brackets)"))
    }

    /// Address the HTTPS server binds.
    pub fn bind_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.haproxy_amphora.bind_host,
            self.haproxy_amphora.bind_port,
        )
    }
}

fn default_allow_unprivileged_ping() -> bool {
    true
}
fn default_prometheus_proxy_bind() -> String {
    PROMETHEUS_PROXY_ADDR.to_owned()
}
fn default_prometheus_exporter_url() -> String {
    format!("http://{PROMETHEUS_EXPORTER_ADDR}/metrics")
}
fn default_server_cert() -> PathBuf {
    PathBuf::from("/etc/octavia/certs/server.pem")
}
fn default_server_ca() -> PathBuf {
    PathBuf::from("/etc/octavia/certs/client_ca.pem")
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(180)
}
fn default_base_path() -> PathBuf {
    PathBuf::from("/var/lib/octavia")
}
fn default_base_cert_dir() -> PathBuf {
    PathBuf::from("/var/lib/octavia/certs")
}
fn default_bind_host() -> IpAddr {
    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
}
fn default_bind_port() -> u16 {
    9443
}
fn default_haproxy_cmd() -> PathBuf {
    PathBuf::from("/usr/sbin/haproxy")
}
fn default_keepalived_cmd() -> PathBuf {
    PathBuf::from("/usr/sbin/keepalived")
}
fn default_heartbeat_interval() -> Duration {
    Duration::from_secs(1)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SecondsOrHuman {
    Seconds(u64),
    Human(String),
}

fn duration_secs_or_human<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match SecondsOrHuman::deserialize(d)? {
        SecondsOrHuman::Seconds(s) => Ok(Duration::from_secs(s)),
        SecondsOrHuman::Human(s) => humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}"))),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrCommaString {
    List(Vec<String>),
    Text(String),
}

fn socket_addr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    let items: Vec<String> = match ListOrCommaString::deserialize(d)? {
        ListOrCommaString::List(items) => items,
        ListOrCommaString::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<SocketAddr>().map_err(|_| {
                serde::de::Error::custom(format!(
                    "invalid controller address {s:?} (want ip:port, IPv6 in brackets)"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_octavia_names_with_defaults() {
        let config = AgentConfig::parse(
            r#"
            [amphora_agent]
            amphora_id = "a1b2"
            agent_request_read_timeout = 30
            [health_manager]
            controller_ip_port_list = "192.0.2.1:5555, [2001:db8::1]:5555"
            heartbeat_interval = "500ms"
            heartbeat_key = "s3cret"
            "#,
        )
        .expect("valid config");
        assert_eq!(config.haproxy_amphora.bind_port, 9443);
        assert_eq!(
            config.prometheus_proxy_addr(),
            Ok(Some("127.0.0.1:9102".parse().expect("addr")))
        );
        assert_eq!(
            config.amphora_agent.prometheus_exporter_url,
            "http://127.0.0.1:9101/metrics"
        );
        assert_eq!(
            config.amphora_agent.agent_request_read_timeout,
            Duration::from_secs(30)
        );
        assert_eq!(config.health_manager.controller_ip_port_list.len(), 2);
        assert_eq!(
            config.health_manager.heartbeat_interval,
            Duration::from_millis(500)
        );
        let debug = format!("{config:?}");
        assert!(
            debug.contains("***") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn the_sample_config_parses() {
        let sample = include_str!("../amphora-agent.sample.toml");
        let config = AgentConfig::parse(sample).expect("sample config is valid");
        assert_eq!(config.haproxy_amphora.bind_port, 9443);
        assert_eq!(config.health_manager.controller_ip_port_list.len(), 1);
        assert!(config.health_manager.heartbeat_key.is_some());
    }

    #[test]
    fn refuses_unknown_options_and_bad_values() {
        let unknown = "[amphora_agent]\namphora_id = \"a\"\nbogus = 1\n";
        assert!(AgentConfig::parse(unknown).is_err());
        let bad_addr = "[amphora_agent]\namphora_id = \"a\"\n[health_manager]\ncontroller_ip_port_list = [\"nohost\"]\n";
        assert!(AgentConfig::parse(bad_addr).is_err());
        let bad_id = "[amphora_agent]\namphora_id = \"../etc\"\n";
        assert!(AgentConfig::parse(bad_id).is_err());
        let zero =
            "[amphora_agent]\namphora_id = \"a\"\n[health_manager]\nheartbeat_interval = 0\n";
        assert!(AgentConfig::parse(zero).is_err());
        for bad in [
            "prometheus_proxy_bind = \"localhost\"",
            "prometheus_proxy_bind = \"127.0.0.1\"",
            "prometheus_exporter_url = \"https://127.0.0.1:9101/metrics\"",
            "prometheus_exporter_url = \"127.0.0.1:9101\"",
            "prometheus_exporter_url = \"\"",
        ] {
            let text = format!("[amphora_agent]\namphora_id = \"a\"\n{bad}\n");
            assert!(AgentConfig::parse(&text).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn an_empty_proxy_bind_disables_the_metrics_proxy() {
        let text = "[amphora_agent]\namphora_id = \"a\"\nprometheus_proxy_bind = \"\"\n\
                    prometheus_exporter_url = \"http://[::1]:19101/metrics\"\n";
        let config = AgentConfig::parse(text).expect("valid config");
        assert_eq!(config.prometheus_proxy_addr(), Ok(None));
    }
}
