//! Model objects as a tenant creates them: fresh ids, project [`PROJECT`], `PENDING_CREATE`,
//! the API's defaults, every optional field empty.
//!
//! A suite that needs other values says so with struct update syntax
//! (`Listener { tags: vec!["t".into()], ..listener(lb, ListenerProtocol::Http, 80) }`), so
//! what a test depends on stands in the test.

use std::collections::BTreeMap;

use octavia_model::{
    now, ClientAuthentication, HealthMonitor, HealthMonitorId, HealthMonitorType, HttpMethod,
    L7Policy, L7PolicyAction, L7PolicyId, L7Rule, L7RuleCompareType, L7RuleId, L7RuleType,
    LbAlgorithm, Listener, ListenerId, ListenerProtocol, LoadBalancer, LoadBalancerId, Member,
    MemberId, OperatingStatus, Pool, PoolId, PoolProtocol, ProvisioningStatus, Topology, Vip,
};

/// The project of every fixture but the load balancer (which takes one).
pub const PROJECT: &str = "p1";

/// A load balancer of `project` on the `amphora` provider, its VIP asked for on the subnet
/// `vip-subnet` (address, port and network left to the network driver).
pub fn load_balancer(project: &str, topology: Topology) -> LoadBalancer {
    LoadBalancer {
        id: LoadBalancerId::new(),
        project_id: project.to_string(),
        name: None,
        description: None,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        enabled: true,
        topology,
        provider: Some("amphora".into()),
        flavor_id: None,
        availability_zone: None,
        vip: Vip {
            subnet_id: Some("vip-subnet".into()),
            ..Vip::default()
        },
        tags: vec![],
        listener_ids: vec![],
        pool_ids: vec![],
        created_at: now(),
        updated_at: None,
    }
}

/// A listener of `lb` on `protocol_port`, no connection limit, the API's default timeouts.
pub fn listener(lb: LoadBalancerId, protocol: ListenerProtocol, protocol_port: i32) -> Listener {
    Listener {
        id: ListenerId::new(),
        project_id: PROJECT.into(),
        load_balancer_id: lb,
        name: None,
        description: None,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        enabled: true,
        protocol,
        protocol_port,
        connection_limit: -1,
        default_pool_id: None,
        default_tls_container_ref: None,
        sni_container_refs: vec![],
        client_ca_tls_container_ref: None,
        client_authentication: ClientAuthentication::None,
        client_crl_container_ref: None,
        timeout_client_data: 50000,
        timeout_member_connect: 5000,
        timeout_member_data: 50000,
        timeout_tcp_inspect: 0,
        insert_headers: BTreeMap::new(),
        allowed_cidrs: vec![],
        tls_ciphers: None,
        tls_versions: vec![],
        alpn_protocols: vec![],
        hsts_max_age: None,
        hsts_include_subdomains: false,
        hsts_preload: false,
        tags: vec![],
        l7policy_ids: vec![],
        created_at: now(),
        updated_at: None,
    }
}

/// A ROUND_ROBIN pool of `lb`, without session persistence or TLS.
pub fn pool(lb: LoadBalancerId, protocol: PoolProtocol) -> Pool {
    Pool {
        id: PoolId::new(),
        project_id: PROJECT.into(),
        load_balancer_id: lb,
        name: None,
        description: None,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        enabled: true,
        protocol,
        lb_algorithm: LbAlgorithm::RoundRobin,
        session_persistence: None,
        tls_enabled: false,
        tls_certificate_id: None,
        ca_tls_certificate_id: None,
        crl_container_id: None,
        tls_ciphers: None,
        tls_versions: vec![],
        alpn_protocols: vec![],
        tags: vec![],
        listener_ids: vec![],
        member_ids: vec![],
        health_monitor_id: None,
        created_at: now(),
        updated_at: None,
    }
}

/// A member of `pool` at `ip_address:protocol_port`, weight 1, on no subnet of its own, with
/// no monitor address (`NO_MONITOR`, as in a pool without a health monitor).
pub fn member(pool: PoolId, ip_address: &str, protocol_port: i32) -> Member {
    Member {
        id: MemberId::new(),
        project_id: PROJECT.into(),
        pool_id: pool,
        name: None,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::NoMonitor,
        enabled: true,
        ip_address: ip_address.into(),
        protocol_port,
        weight: 1,
        backup: false,
        subnet_id: None,
        monitor_address: None,
        monitor_port: None,
        vnic_type: "normal".into(),
        tags: vec![],
        created_at: now(),
        updated_at: None,
    }
}

/// A health monitor of `pool`: every 5 s, 3 s timeout, up after 2 and down after 3; an HTTP or
/// HTTPS one with the API's defaults (`GET /`, expecting 200).
pub fn health_monitor(pool: PoolId, monitor_type: HealthMonitorType) -> HealthMonitor {
    let http = matches!(
        monitor_type,
        HealthMonitorType::Http | HealthMonitorType::Https
    );
    HealthMonitor {
        id: HealthMonitorId::new(),
        project_id: PROJECT.into(),
        pool_id: pool,
        name: None,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        enabled: true,
        monitor_type,
        delay: 5,
        timeout: 3,
        rise_threshold: 2,
        fall_threshold: 3,
        http_method: http.then_some(HttpMethod::Get),
        url_path: http.then(|| "/".into()),
        expected_codes: http.then(|| "200".into()),
        http_version: None,
        domain_name: None,
        tags: vec![],
        created_at: now(),
        updated_at: None,
    }
}

/// An L7 policy of `listener` at `position`: REDIRECT_TO_POOL `redirect_pool` when given,
/// else REJECT.
pub fn l7policy(listener: ListenerId, position: i32, redirect_pool: Option<PoolId>) -> L7Policy {
    L7Policy {
        id: L7PolicyId::new(),
        project_id: PROJECT.into(),
        listener_id: listener,
        name: None,
        description: None,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        enabled: true,
        action: if redirect_pool.is_some() {
            L7PolicyAction::RedirectToPool
        } else {
            L7PolicyAction::Reject
        },
        position,
        redirect_pool_id: redirect_pool,
        redirect_url: None,
        redirect_prefix: None,
        redirect_http_code: None,
        tags: vec![],
        rule_ids: vec![],
        created_at: now(),
        updated_at: None,
    }
}

/// An L7 rule of `policy` comparing `rule_type` to `value`, without a key (HEADER and COOKIE
/// rules need one) and not inverted.
pub fn l7rule(
    policy: L7PolicyId,
    rule_type: L7RuleType,
    compare_type: L7RuleCompareType,
    value: &str,
) -> L7Rule {
    L7Rule {
        id: L7RuleId::new(),
        project_id: PROJECT.into(),
        l7policy_id: policy,
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        enabled: true,
        rule_type,
        compare_type,
        key: None,
        value: value.into(),
        invert: false,
        tags: vec![],
        created_at: now(),
        updated_at: None,
    }
}
