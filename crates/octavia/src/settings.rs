//! The configuration file mapped onto the plain settings structs of the libraries.

use std::net::IpAddr;

use octavia_api::{ApiSettings, AuthStrategy as ApiAuth};
use octavia_db::ClassCaps;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use octavia_drivers::netns::AMPHORA_ROOT;
use octavia_drivers::netns::{AgentSettings, ImageRegistry, ManagementNetwork};
use octavia_drivers::{
    AgentClient, AgentClientConfig, CertificateAuthority, Drivers, NetnsCompute,
    NetnsComputeSettings, NetnsNetwork, Secret as DriverSecret,
};
use octavia_flows::FlowSettings;
use octavia_health::{HealthSettings, Secret, StaleSettings};
use octavia_model::Topology;
use octavia_render::{max_global_maxconn_for_fd_limit, KeepalivedSettings, RenderSettings};
use octavia_worker::WorkerSettings;

use crate::config::{AuthStrategy, Config, TopologyChoice};

fn cap(n: u32) -> Option<u32> {
    (n > 0).then_some(n)
}

/// `ApiSettings` from the configuration file.
pub fn api_settings(config: &Config) -> ApiSettings {
    let a = &config.api_settings;
    let h = &config.haproxy_amphora;
    ApiSettings {
        auth_strategy: match a.auth_strategy {
            AuthStrategy::Noauth => ApiAuth::Noauth,
            AuthStrategy::Keystone => ApiAuth::Keystone,
        },
        pagination_max_limit: a.pagination_max_limit,
        api_base_uri: a.api_base_uri.clone(),
        allow_tls_terminated_listeners: a.allow_tls_terminated_listeners,
        allow_ping_health_monitors: a.allow_ping_health_monitors,
        allow_prometheus_listeners: a.allow_prometheus_listeners,
        udp_connect_min_interval_health_monitor: i64::from(
            a.udp_connect_min_interval_health_monitor,
        ),
        default_provider_driver: a.default_provider_driver.clone(),
        timeout_client_data: h.timeout_client_data,
        timeout_member_connect: h.timeout_member_connect,
        timeout_member_data: h.timeout_member_data,
        timeout_tcp_inspect: h.timeout_tcp_inspect,
        default_connection_limit: h.default_connection_limit,
        reserved_ips: config
            .networking
            .reserved_ips
            .iter()
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .collect(),
        loadbalancer_topology: match config.controller_worker.loadbalancer_topology {
            TopologyChoice::Single => Topology::Single,
            TopologyChoice::ActiveStandby => Topology::ActiveStandby,
        },
        max_request_body_size: a.max_request_body_size,
        keystone: keystone_settings(config),
        policy: octavia_api::auth::PolicySettings {
            policy_file: config.oslo_policy.policy_file.as_ref().map(Into::into),
            enforce_new_defaults: config.oslo_policy.enforce_new_defaults,
        },
        ..ApiSettings::default()
    }
}

/// `[keystone_authtoken]` for the API.
fn keystone_settings(config: &Config) -> octavia_api::auth::KeystoneSettings {
    let k = &config.keystone_authtoken;
    let auth_url = k.auth_url.clone().unwrap_or_default();
    octavia_api::auth::KeystoneSettings {
        www_authenticate_uri: k
            .www_authenticate_uri
            .clone()
            .unwrap_or_else(|| auth_url.clone()),
        auth_url,
        username: k.username.clone(),
        password: k.password.as_ref().map(|p| p.0.clone()).unwrap_or_default(),
        project_name: k.project_name.clone(),
        user_domain_name: k.user_domain_name.clone(),
        project_domain_name: k.project_domain_name.clone(),
        token_cache_time: k.token_cache_time,
        http_connect_timeout: k.http_connect_timeout,
        http_request_timeout: k.http_request_timeout,
        cafile: k.cafile.as_ref().map(Into::into),
    }
}

/// This host's name in the control plane: `[DEFAULT] host`, else the kernel's host name.
pub fn host(config: &Config) -> String {
    config.default.host.clone().unwrap_or_else(|| {
        let uname = rustix::system::uname();
        let node = uname.nodename().to_string_lossy().trim().to_string();
        if node.is_empty() {
            "octavia".to_string()
        } else {
            node
        }
    })
}

/// The worker's job lease owner, unique on the control plane: `<host>-<pid>`.
pub fn worker_id(config: &Config) -> String {
    format!("{}-{}", host(config), std::process::id())
}

/// `WorkerSettings` from the configuration file.
pub fn worker_settings(config: &Config) -> WorkerSettings {
    let t = &config.task_flow;
    WorkerSettings {
        lease: t.jobboard_expiration_time,
        poll_interval: t.poll_interval,
        concurrency: t.max_workers as usize,
        caps: ClassCaps {
            failover: cap(config.health_manager.failover_threads),
            tenant: cap(t.tenant_max_running),
            operator: cap(t.operator_max_running),
            builds: u32::try_from(config.haproxy_amphora.build_rate_limit).ok(),
        },
        flow: flow_settings(config),
        ..WorkerSettings::new(worker_id(config))
    }
}

/// `FlowSettings` from `[controller_worker]` and `[haproxy_amphora]`.
pub fn flow_settings(config: &Config) -> FlowSettings {
    let c = &config.controller_worker;
    FlowSettings {
        amp_image_id: c.amp_image_id.clone(),
        amp_image_tag: Some(c.amp_image_tag.clone()),
        amp_boot_timeout: c.amp_boot_timeout,
        amp_boot_poll: Duration::from_millis(100),
        agent_connect_timeout: config.haproxy_amphora.agent_connect_timeout,
        render: render_settings(config),
        keepalived: keepalived_settings(config),
        anti_affinity: config.nova.enable_anti_affinity.then_some(
            match config.nova.anti_affinity_policy {
                crate::config::AntiAffinityPolicy::AntiAffinity => {
                    octavia_drivers::AntiAffinity::Hard
                }
                crate::config::AntiAffinityPolicy::SoftAntiAffinity => {
                    octavia_drivers::AntiAffinity::Soft
                }
            },
        ),
        spare_heartbeat_within: (config.health_manager.heartbeat_interval * 3)
            .max(Duration::from_secs(5)),
        ..FlowSettings::default()
    }
}

/// How keepalived.conf is rendered, from `[keepalived_vrrp]`; the check script's path is the
/// one every amphora sees ([`AMPHORA_ROOT`]).
pub fn keepalived_settings(config: &Config) -> KeepalivedSettings {
    let k = &config.keepalived_vrrp;
    KeepalivedSettings {
        base_path: AMPHORA_ROOT.to_string(),
        vrrp_advert_int: k.vrrp_advert_int,
        vrrp_check_interval: k.vrrp_check_interval,
        vrrp_fail_count: k.vrrp_fail_count,
        vrrp_success_count: k.vrrp_success_count,
        vrrp_garp_refresh_interval: k.vrrp_garp_refresh_interval,
        vrrp_garp_refresh_count: k.vrrp_garp_refresh_count,
        ..KeepalivedSettings::default()
    }
}

/// How haproxy.cfg is rendered, from `[haproxy_amphora]`.
///
/// Paths are those every amphora sees ([`AMPHORA_ROOT`]). The global `maxconn` is capped to
/// what HAProxy can open under the amphorae's hard open-file limit: amphorae are started by
/// this process and inherit its limit, and HAProxy refuses to start when it cannot raise its
/// own limit to about 2.5 descriptors per connection (Octavia's amphora images raise the
/// limit to 1 048 576 instead).
pub fn render_settings(config: &Config) -> RenderSettings {
    let h = &config.haproxy_amphora;
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    RenderSettings {
        base_path: AMPHORA_ROOT.to_string(),
        connection_logging: h.connection_logging,
        default_connection_limit: h.default_connection_limit,
        max_global_maxconn: max_global_maxconn_for_fd_limit(nofile),
        ..RenderSettings::default()
    }
}

/// The drivers a process runs with, and the netns parts start-up reconciles.
pub struct DriverSet {
    /// What flows and the API see.
    pub drivers: Drivers,
    /// The real drivers' concrete types, when configured.
    pub netns: Option<NetnsParts>,
}

/// The concrete netns drivers and the CA behind [`DriverSet::drivers`].
#[derive(Clone)]
pub struct NetnsParts {
    pub compute: NetnsCompute,
    pub network: NetnsNetwork,
    pub ca: Arc<CertificateAuthority>,
}

/// Where amphorae send heartbeats: the configured list, else the management bridge address.
pub fn controller_ip_port_list(config: &Config) -> Vec<String> {
    let h = &config.health_manager;
    if h.controller_ip_port_list.is_empty() {
        vec![format!(
            "{}:{}",
            config.netns.management_host_address, h.bind_port
        )]
    } else {
        h.controller_ip_port_list.clone()
    }
}

/// Open (creating on first use) the local certificate authority of `[certificates]`.
pub fn certificate_authority(config: &Config) -> anyhow::Result<CertificateAuthority> {
    let ca = CertificateAuthority::init(&config.certificates.ca_dir)
        .with_context(|| format!("open the CA in {}", config.certificates.ca_dir))?;
    Ok(ca.with_amphora_cert_validity(config.certificates.cert_validity_time))
}

/// The amphora image registry of `[netns] image_dir`.
pub fn image_registry(config: &Config) -> anyhow::Result<ImageRegistry> {
    ImageRegistry::open(&config.netns.image_dir)
        .with_context(|| format!("open the image registry in {}", config.netns.image_dir))
}

/// The tenant networks of `[netns] state_dir`.
pub fn netns_network(config: &Config) -> anyhow::Result<NetnsNetwork> {
    NetnsNetwork::new(Path::new(&config.netns.state_dir).join("networks"))
        .with_context(|| format!("open the tenant networks in {}", config.netns.state_dir))
}

/// The drivers named by `[controller_worker]` (validated by `Config::validate`). Builds no
/// host state: [`reconcile`] does that at start-up.
pub fn drivers(config: &Config) -> anyhow::Result<DriverSet> {
    if !config.controller_worker.real_drivers() {
        return Ok(DriverSet {
            drivers: Drivers::noop().0,
            netns: None,
        });
    }
    let n = &config.netns;
    let h = &config.haproxy_amphora;
    let ca = Arc::new(certificate_authority(config)?);
    let network = netns_network(config)?;
    let cidr = n
        .management_cidr
        .parse()
        .map_err(|e| anyhow::anyhow!("netns.management_cidr: {e}"))?;
    let key = config
        .health_manager
        .heartbeat_key
        .as_ref()
        .context("[health_manager] heartbeat_key is required by the netns drivers")?;
    let compute = NetnsCompute::new(
        NetnsComputeSettings {
            state_dir: Path::new(&n.state_dir).join("amphorae"),
            netns_prefix: n.netns_prefix.clone(),
            management: ManagementNetwork {
                bridge: n.management_bridge.clone(),
                cidr,
                host_address: n
                    .management_host_address
                    .parse()
                    .context("netns.management_host_address")?,
            },
            hosts: n.hosts.clone(),
            host_zones: n.host_zones.clone(),
            agent: AgentSettings {
                controller_ip_port_list: controller_ip_port_list(config),
                heartbeat_interval: config.health_manager.heartbeat_interval,
                heartbeat_key: DriverSecret::new(key.0.clone()),
                haproxy_cmd: PathBuf::from(&h.haproxy_cmd),
                bind_port: h.bind_port,
            },
            images: Arc::new(image_registry(config)?),
        },
        ca.clone(),
    )
    .context("configure the netns compute driver")?;
    let mut client_config = AgentClientConfig::from_ca(&ca);
    client_config.port = h.bind_port;
    client_config.connect_timeout = h.rest_request_conn_timeout;
    client_config.read_timeout = h.rest_request_read_timeout;
    let agent =
        AgentClient::following(client_config, ca.clone()).context("configure the agent client")?;
    Ok(DriverSet {
        drivers: Drivers {
            compute: Arc::new(compute.clone()),
            network: Arc::new(network.clone()),
            amphora: Arc::new(agent),
            certificates: ca.clone(),
        },
        netns: Some(NetnsParts {
            compute,
            network,
            ca,
        }),
    })
}

/// Start-up: recreate the management and tenant bridges and re-adopt the amphorae a previous
/// controller process left running (their agents keep serving; missing agents are restarted).
pub async fn reconcile(parts: &NetnsParts) -> anyhow::Result<()> {
    parts
        .network
        .ensure_bridges()
        .context("recreate tenant network bridges")?;
    let report = parts
        .compute
        .reconcile()
        .await
        .context("re-adopt existing amphorae")?;
    tracing::info!(
        adopted = report.adopted.len(),
        orphan_namespaces = report.orphan_namespaces.len(),
        stale_records = report.stale_records.len(),
        "netns drivers reconciled"
    );
    for ns in &report.orphan_namespaces {
        tracing::warn!(netns = %ns, "namespace with this driver's prefix but no record: left alone");
    }
    for rec in &report.stale_records {
        tracing::warn!(compute_id = %rec, "amphora record without its namespace");
    }
    Ok(())
}

/// `HealthSettings` from `[health_manager]`; `None` without a `heartbeat_key` (then no
/// receiver can verify anything, so none runs).
/// The stale-amphora checker's settings, from `[health_manager]`.
pub fn stale_settings(config: &Config) -> StaleSettings {
    let h = &config.health_manager;
    StaleSettings {
        heartbeat_timeout: h.heartbeat_timeout,
        health_check_interval: h.health_check_interval,
        failover_threshold: h.failover_threshold.map(|t| t as usize),
        max_claims: h.failover_threads.max(1) as usize,
        heartbeat_interval: h.heartbeat_interval,
    }
}

/// The housekeeper's settings (`[house_keeping]`).
pub fn housekeeping_settings(config: &Config) -> octavia_housekeeping::HousekeepingSettings {
    let h = &config.house_keeping;
    octavia_housekeeping::HousekeepingSettings {
        policy: octavia_model::housekeeping::HousekeepingPolicy {
            amphora_expiry_age: h.amphora_expiry_age,
            load_balancer_expiry_age: h.load_balancer_expiry_age,
            job_expiry_age: h.job_expiry_age,
            cert_expiry_buffer: h.cert_expiry_buffer,
        },
        cleanup_interval: h.cleanup_interval,
        cert_interval: h.cert_interval,
        max_renewals: h.cert_rotate_threads.max(1) as usize,
    }
}

/// The spare pool's settings (`[house_keeping] spare_amphora_pool_size`,
/// `spare_check_interval`): one pool per zone of the `netns` hosts, plus one of no zone
/// when some host has none (or when the compute driver has no zones at all).
pub fn spare_settings(config: &Config) -> octavia_housekeeping::SpareSettings {
    let h = &config.house_keeping;
    let n = &config.netns;
    let mut zones: Vec<Option<String>> = Vec::new();
    let netns = config.controller_worker.real_drivers();
    if netns {
        for zone in n.host_zones.values() {
            if !zones.contains(&Some(zone.clone())) {
                zones.push(Some(zone.clone()));
            }
        }
    }
    let unzoned_host = !netns || n.hosts.iter().any(|host| !n.host_zones.contains_key(host));
    if zones.is_empty() || unzoned_host {
        zones.insert(0, None);
    }
    octavia_housekeeping::SpareSettings {
        pool_size: h.spare_amphora_pool_size as usize,
        zones,
        check_interval: h.spare_check_interval,
    }
}

/// The health manager's key ring: `heartbeat_key` first, then `heartbeat_previous_keys`;
/// empty without a current key.
pub fn heartbeat_keys(config: &Config) -> Vec<Secret> {
    let h = &config.health_manager;
    let Some(current) = h.heartbeat_key.as_ref() else {
        return Vec::new();
    };
    std::iter::once(current)
        .chain(h.heartbeat_previous_keys.iter())
        .map(|k| Secret::new(k.0.clone()))
        .collect()
}

/// Where the heartbeat receiver reads the stored keys of `octavia heartbeat-key rotate`:
/// every `health_check_interval` (at least 0.5 s, at most 10 s), reporting its ring as
/// `<host>-<pid>`.
pub fn stored_keys(config: &Config) -> octavia_health::StoredKeys {
    octavia_health::StoredKeys {
        name: format!("{}-{}", host(config), std::process::id()),
        refresh: config.health_manager.health_check_interval.clamp(
            std::time::Duration::from_millis(500),
            std::time::Duration::from_secs(10),
        ),
    }
}

pub fn health_settings(config: &Config) -> Option<HealthSettings> {
    let h = &config.health_manager;
    h.heartbeat_key.as_ref()?;
    let keys = heartbeat_keys(config);
    Some(HealthSettings {
        // Validated by `Config::validate`.
        bind_ip: h
            .bind_ip
            .parse()
            .unwrap_or(HealthSettings::default().bind_ip),
        bind_port: h.bind_port,
        heartbeat_keys: keys,
        heartbeat_interval: h.heartbeat_interval,
        ..HealthSettings::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_id_is_host_and_pid() {
        let mut config = Config::default();
        let pid = std::process::id();
        assert!(!host(&config).is_empty());
        assert_eq!(
            worker_settings(&config).worker_id,
            format!("{}-{pid}", host(&config))
        );
        config.default.host = Some("ctl-1".into());
        assert_eq!(worker_settings(&config).worker_id, format!("ctl-1-{pid}"));
    }
}
