//! The configuration file mapped onto the plain settings structs of the libraries.

use std::net::IpAddr;

use octavia_api::{ApiSettings, AuthStrategy as ApiAuth};
use octavia_db::ClassCaps;
use octavia_drivers::Drivers;
use octavia_health::{HealthSettings, Secret};
use octavia_model::Topology;
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
        ..ApiSettings::default()
    }
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
        },
        ..WorkerSettings::default()
    }
}

/// The drivers named by `[controller_worker]` (validated by `Config::validate`).
pub fn drivers(_config: &Config) -> Drivers {
    Drivers::noop().0
}

/// `HealthSettings` from `[health_manager]`; `None` without a `heartbeat_key` (then no
/// receiver can verify anything, so none runs).
pub fn health_settings(config: &Config) -> Option<HealthSettings> {
    let h = &config.health_manager;
    let current = h.heartbeat_key.as_ref()?;
    let keys = std::iter::once(current)
        .chain(h.heartbeat_previous_keys.iter())
        .map(|k| Secret::new(k.0.clone()))
        .collect();
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
