//! Fixtures shared by the store suite: objects as a tenant would send them, and short
//! paths to ACTIVE ones.

use std::collections::BTreeMap;

use octavia_db::*;
use octavia_model::*;

pub(crate) const PROJECT: &str = "p1";

pub(crate) fn lb(project: &str, name: &str) -> LoadBalancer {
    LoadBalancer {
        id: LoadBalancerId::new(),
        project_id: project.to_string(),
        name: Some(name.to_string()),
        description: Some("desc".into()),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        enabled: true,
        topology: Topology::Single,
        provider: Some("amphora".into()),
        flavor_id: None,
        availability_zone: Some("az1".into()),
        vip: Vip {
            ip_address: Some("10.0.0.10".into()),
            port_id: Some("port-1".into()),
            subnet_id: Some("subnet-1".into()),
            network_id: Some("net-1".into()),
            qos_policy_id: None,
        },
        tags: vec!["b".into(), "a".into()],
        listener_ids: vec![],
        pool_ids: vec![],
        created_at: now(),
        updated_at: None,
    }
}

pub(crate) fn listener(lb: LoadBalancerId, protocol: ListenerProtocol, port: i32) -> Listener {
    Listener {
        id: ListenerId::new(),
        project_id: PROJECT.into(),
        load_balancer_id: lb,
        name: Some(format!("l{port}")),
        description: None,
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        enabled: true,
        protocol,
        protocol_port: port,
        connection_limit: -1,
        default_pool_id: None,
        default_tls_container_ref: Some("cert-1".into()),
        sni_container_refs: vec!["sni-2".into(), "sni-1".into()],
        client_ca_tls_container_ref: None,
        client_authentication: ClientAuthentication::None,
        client_crl_container_ref: None,
        timeout_client_data: 50000,
        timeout_member_connect: 5000,
        timeout_member_data: 50000,
        timeout_tcp_inspect: 0,
        insert_headers: BTreeMap::from([("X-Forwarded-For".to_string(), "true".to_string())]),
        allowed_cidrs: vec!["10.0.0.0/8".into()],
        tls_ciphers: None,
        tls_versions: vec!["TLSv1.2".into()],
        alpn_protocols: vec!["h2".into()],
        hsts_max_age: Some(10),
        hsts_include_subdomains: true,
        hsts_preload: false,
        tags: vec!["lt".into()],
        l7policy_ids: vec![],
        created_at: now(),
        updated_at: None,
    }
}

pub(crate) fn pool(lb: LoadBalancerId, protocol: PoolProtocol) -> Pool {
    Pool {
        id: PoolId::new(),
        project_id: PROJECT.into(),
        load_balancer_id: lb,
        name: Some("pool".into()),
        description: None,
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        enabled: true,
        protocol,
        lb_algorithm: LbAlgorithm::RoundRobin,
        session_persistence: Some(SessionPersistence {
            persistence_type: SessionPersistenceType::AppCookie,
            cookie_name: Some("c".into()),
            persistence_timeout: None,
            persistence_granularity: None,
        }),
        tls_enabled: false,
        tls_certificate_id: None,
        ca_tls_certificate_id: None,
        crl_container_id: None,
        tls_ciphers: None,
        tls_versions: vec![],
        alpn_protocols: vec!["http/1.1".into()],
        tags: vec!["pt".into()],
        listener_ids: vec![],
        member_ids: vec![],
        health_monitor_id: None,
        created_at: now(),
        updated_at: None,
    }
}

pub(crate) fn member(pool: PoolId, ip: &str, port: i32) -> Member {
    Member {
        id: MemberId::new(),
        project_id: PROJECT.into(),
        pool_id: pool,
        name: Some("m".into()),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        enabled: true,
        ip_address: ip.into(),
        protocol_port: port,
        weight: 3,
        backup: false,
        subnet_id: None,
        monitor_address: None,
        monitor_port: Some(9000),
        vnic_type: "normal".into(),
        tags: vec!["mt".into()],
        created_at: now(),
        updated_at: None,
    }
}

pub(crate) fn hm(pool: PoolId) -> HealthMonitor {
    HealthMonitor {
        id: HealthMonitorId::new(),
        project_id: PROJECT.into(),
        pool_id: pool,
        name: Some("hm".into()),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        enabled: true,
        monitor_type: HealthMonitorType::Http,
        delay: 5,
        timeout: 3,
        rise_threshold: 2,
        fall_threshold: 3,
        http_method: Some(HttpMethod::Get),
        url_path: Some("/health".into()),
        expected_codes: Some("200".into()),
        http_version: Some(1.1),
        domain_name: Some("example.com".into()),
        tags: vec![],
        created_at: now(),
        updated_at: None,
    }
}

pub(crate) fn policy(listener: ListenerId, position: i32, redirect: Option<PoolId>) -> L7Policy {
    L7Policy {
        id: L7PolicyId::new(),
        project_id: PROJECT.into(),
        listener_id: listener,
        name: Some(format!("pol{position}")),
        description: None,
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        enabled: true,
        action: if redirect.is_some() {
            L7PolicyAction::RedirectToPool
        } else {
            L7PolicyAction::Reject
        },
        position,
        redirect_pool_id: redirect,
        redirect_url: None,
        redirect_prefix: None,
        redirect_http_code: None,
        tags: vec!["yt".into()],
        rule_ids: vec![],
        created_at: now(),
        updated_at: None,
    }
}

pub(crate) fn rule(policy: L7PolicyId) -> L7Rule {
    L7Rule {
        id: L7RuleId::new(),
        project_id: PROJECT.into(),
        l7policy_id: policy,
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        enabled: false,
        rule_type: L7RuleType::Header,
        compare_type: L7RuleCompareType::EqualTo,
        key: Some("X-Key".into()),
        value: "v".into(),
        invert: true,
        tags: vec![],
        created_at: now(),
        updated_at: None,
    }
}

pub(crate) async fn settle(s: &Store, job: JobId) {
    let rec = s.get_job(job).await.unwrap().expect("job exists");
    s.settle_success(&rec.spec).await.unwrap();
}

/// An ACTIVE load balancer.
pub(crate) async fn active_lb(s: &Store) -> LoadBalancer {
    let (l, job) = s.create_load_balancer(&lb(PROJECT, "lb")).await.unwrap();
    settle(s, job).await;
    s.get_load_balancer(l.id).await.unwrap().unwrap()
}

/// LB + HTTP listener + pool (default of the listener), all ACTIVE.
pub(crate) async fn lb_listener_pool(s: &Store) -> (LoadBalancer, Listener, Pool) {
    let l = active_lb(s).await;
    let (li, job) = s
        .create_listener(&listener(l.id, ListenerProtocol::Http, 80))
        .await
        .unwrap();
    settle(s, job).await;
    let (p, job) = s
        .create_pool(&pool(l.id, PoolProtocol::Http), Some(li.id))
        .await
        .unwrap();
    settle(s, job).await;
    (
        s.get_load_balancer(l.id).await.unwrap().unwrap(),
        s.get_listener(li.id).await.unwrap().unwrap(),
        s.get_pool(p.id).await.unwrap().unwrap(),
    )
}

pub(crate) async fn lb_status(s: &Store, id: LoadBalancerId) -> ProvisioningStatus {
    s.get_load_balancer(id)
        .await
        .unwrap()
        .unwrap()
        .provisioning_status
}

pub(crate) async fn job_total(s: &Store) -> i64 {
    s.job_counts().await.unwrap().iter().map(|c| c.3).sum()
}

pub(crate) fn conflict_msg(e: DbError) -> String {
    match e {
        DbError::Conflict(m) => m,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

pub(crate) fn amphora(lb: Option<LoadBalancerId>) -> Amphora {
    Amphora {
        compute_id: Some("c1".into()),
        lb_network_ip: Some("192.168.0.5".into()),
        ha_ip: Some("10.0.0.10".into()),
        cert_expiration: Some(now()),
        role: Some(AmphoraRole::Standalone),
        vrrp_interface: Some("eth1".into()),
        vrrp_id: Some(1),
        image_id: Some("img".into()),
        ..Amphora::new(AmphoraId::new(), lb, ProvisioningStatus::Allocated, now())
    }
}

/// A heartbeat of a seeded fleet member received at `at` (everything OPEN/ONLINE).
pub(crate) fn heartbeat(f: &FleetMember, at: Timestamp) -> HeartbeatRecord {
    let mut report = octavia_model::health::HealthReport {
        reported_listener_count: 1,
        ..Default::default()
    };
    report.listeners.insert(f.listener_id, "OPEN".into());
    report.pools.insert(
        f.pool_id,
        octavia_model::health::PoolReport {
            status: "UP".into(),
            members: [(f.member_id, "UP".to_string())].into(),
        },
    );
    HeartbeatRecord {
        amphora_id: f.amphora_id,
        received_at: at,
        refresh_health: true,
        report,
        stats: Vec::new(),
        stats_are_deltas: true,
    }
}

pub(crate) async fn amphora_status(s: &Store, id: AmphoraId) -> ProvisioningStatus {
    s.get_amphora(id).await.unwrap().unwrap().status
}
