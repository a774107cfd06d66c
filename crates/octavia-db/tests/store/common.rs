//! Fixtures shared by the store suite: objects as a tenant would send them, and short
//! paths to ACTIVE ones.

use std::collections::BTreeMap;

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::fixtures;

pub(crate) use octavia_test_support::fixtures::PROJECT;

/// Every column set, so that a round trip shows each one stored and read back (but the flavor
/// and availability zone, which must exist: `catalogue` round-trips those).
pub(crate) fn lb(project: &str, name: &str) -> LoadBalancer {
    LoadBalancer {
        name: Some(name.to_string()),
        description: Some("desc".into()),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        vip: Vip {
            ip_address: Some("10.0.0.10".into()),
            port_id: Some("port-1".into()),
            subnet_id: Some("subnet-1".into()),
            network_id: Some("net-1".into()),
            qos_policy_id: None,
        },
        tags: vec!["b".into(), "a".into()],
        ..fixtures::load_balancer(project, Topology::Single)
    }
}

pub(crate) fn listener(lb: LoadBalancerId, protocol: ListenerProtocol, port: i32) -> Listener {
    Listener {
        name: Some(format!("l{port}")),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        default_tls_container_ref: Some("cert-1".into()),
        sni_container_refs: vec!["sni-2".into(), "sni-1".into()],
        insert_headers: BTreeMap::from([("X-Forwarded-For".to_string(), "true".to_string())]),
        allowed_cidrs: vec!["10.0.0.0/8".into()],
        tls_versions: vec!["TLSv1.2".into()],
        alpn_protocols: vec!["h2".into()],
        hsts_max_age: Some(10),
        hsts_include_subdomains: true,
        tags: vec!["lt".into()],
        ..fixtures::listener(lb, protocol, port)
    }
}

pub(crate) fn pool(lb: LoadBalancerId, protocol: PoolProtocol) -> Pool {
    Pool {
        name: Some("pool".into()),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        session_persistence: Some(SessionPersistence {
            persistence_type: SessionPersistenceType::AppCookie,
            cookie_name: Some("c".into()),
            persistence_timeout: None,
            persistence_granularity: None,
        }),
        alpn_protocols: vec!["http/1.1".into()],
        tags: vec!["pt".into()],
        ..fixtures::pool(lb, protocol)
    }
}

pub(crate) fn member(pool: PoolId, ip: &str, port: i32) -> Member {
    Member {
        name: Some("m".into()),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        weight: 3,
        monitor_port: Some(9000),
        tags: vec!["mt".into()],
        ..fixtures::member(pool, ip, port)
    }
}

pub(crate) fn hm(pool: PoolId) -> HealthMonitor {
    HealthMonitor {
        name: Some("hm".into()),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        url_path: Some("/health".into()),
        http_version: Some(1.1),
        domain_name: Some("example.com".into()),
        ..fixtures::health_monitor(pool, HealthMonitorType::Http)
    }
}

pub(crate) fn policy(listener: ListenerId, position: i32, redirect: Option<PoolId>) -> L7Policy {
    L7Policy {
        name: Some(format!("pol{position}")),
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        tags: vec!["yt".into()],
        ..fixtures::l7policy(listener, position, redirect)
    }
}

pub(crate) fn rule(policy: L7PolicyId) -> L7Rule {
    L7Rule {
        provisioning_status: ProvisioningStatus::Active,
        operating_status: OperatingStatus::Online,
        enabled: false,
        key: Some("X-Key".into()),
        invert: true,
        ..fixtures::l7rule(policy, L7RuleType::Header, L7RuleCompareType::EqualTo, "v")
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
        vip_held: None,
        heartbeat_key_id: None,
    }
}

pub(crate) async fn amphora_status(s: &Store, id: AmphoraId) -> ProvisioningStatus {
    s.get_amphora(id).await.unwrap().unwrap().status
}
