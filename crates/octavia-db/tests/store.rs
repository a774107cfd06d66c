//! The store suite: every case runs on SQLite and (when configured) PostgreSQL.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use octavia_db::testing::{engines, TestStore};
use octavia_db::*;
use octavia_model::*;

const PROJECT: &str = "p1";

/// Generate one `#[tokio::test]` per engine for each case.
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(octavia_db::Engine::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !super::engines().contains(&octavia_db::Engine::Postgres) {
                        eprintln!("OCTAVIA_TEST_PG_URL not set: PostgreSQL case not run");
                        return;
                    }
                    super::$name(octavia_db::Engine::Postgres).await;
                }
            )*
        }
    };
}

engine_tests!(
    migrate_is_idempotent_and_concurrent,
    load_balancer_round_trip,
    children_round_trip_with_derived_fields,
    load_balancer_derived_fields_follow_writes,
    list_filters_tags_sort_and_pagination,
    list_rejects_bad_marker_key_and_filter,
    locked_load_balancer_conflicts,
    missing_parents_are_not_found,
    child_conflicts,
    too_many_rules_per_policy,
    failed_write_leaves_no_trace,
    concurrent_writers_one_wins,
    quotas_are_enforced,
    job_claim_order_and_caps,
    lease_expiry_resumes_on_other_worker,
    expired_leases_and_queue_heads_share_one_order,
    complete_job_settles_with_the_finish_or_not_at_all,
    settlement_success_per_kind,
    settlement_failure_per_kind,
    load_balancer_cascade_delete,
    batch_member_update,
    amphorae_and_stats,
    failovers_lock_and_settle,
    stale_amphora_is_claimed_exactly_once,
    circuit_breaker_stops_and_resumes,
    build_slots_go_to_the_most_urgent,
    breaker_counts_amphorae_about_to_go_stale,
    only_error_amphorae_are_deleted,
);

// ------------------------------------------------------------------ fixtures

fn lb(project: &str, name: &str) -> LoadBalancer {
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

fn listener(lb: LoadBalancerId, protocol: ListenerProtocol, port: i32) -> Listener {
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

fn pool(lb: LoadBalancerId, protocol: PoolProtocol) -> Pool {
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

fn member(pool: PoolId, ip: &str, port: i32) -> Member {
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

fn hm(pool: PoolId) -> HealthMonitor {
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

fn policy(listener: ListenerId, position: i32, redirect: Option<PoolId>) -> L7Policy {
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

fn rule(policy: L7PolicyId) -> L7Rule {
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

async fn settle(s: &Store, job: JobId) {
    let rec = s.get_job(job).await.unwrap().expect("job exists");
    s.settle_success(&rec.spec).await.unwrap();
}

/// An ACTIVE load balancer.
async fn active_lb(s: &Store) -> LoadBalancer {
    let (l, job) = s.create_load_balancer(&lb(PROJECT, "lb")).await.unwrap();
    settle(s, job).await;
    s.get_load_balancer(l.id).await.unwrap().unwrap()
}

/// LB + HTTP listener + pool (default of the listener), all ACTIVE.
async fn lb_listener_pool(s: &Store) -> (LoadBalancer, Listener, Pool) {
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

async fn lb_status(s: &Store, id: LoadBalancerId) -> ProvisioningStatus {
    s.get_load_balancer(id)
        .await
        .unwrap()
        .unwrap()
        .provisioning_status
}

async fn job_total(s: &Store) -> i64 {
    s.job_counts().await.unwrap().iter().map(|c| c.3).sum()
}

fn conflict_msg(e: DbError) -> String {
    match e {
        DbError::Conflict(m) => m,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

fn names(v: &[LoadBalancer]) -> Vec<String> {
    v.iter()
        .map(|l| l.name.clone().unwrap_or_default())
        .collect()
}

// ------------------------------------------------------------------ cases

#[tokio::test]
async fn in_memory_sqlite_store_works() {
    let s = Store::connect(StoreOptions {
        url: "sqlite::memory:".into(),
        max_connections: 4,
        quota_defaults: QuotaDefaults::default(),
    })
    .await
    .unwrap();
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    assert_eq!(s.engine(), Engine::Sqlite);
    let l = active_lb(&s).await;
    assert_eq!(
        s.list_load_balancers(&ListQuery::default()).await.unwrap()[0].id,
        l.id
    );
    assert!(matches!(
        Store::connect(StoreOptions {
            url: "mysql://nope".into(),
            max_connections: 1,
            quota_defaults: QuotaDefaults::default(),
        })
        .await,
        Err(DbError::Invalid(_))
    ));
}

async fn migrate_is_idempotent_and_concurrent(engine: Engine) {
    let t = TestStore::new(engine).await;
    let other = t.second_store().await;
    let (a, b) = tokio::join!(t.store.migrate(), other.migrate());
    a.unwrap();
    b.unwrap();
    assert_eq!(t.store.engine(), engine);
    // Still usable afterwards.
    active_lb(&other).await;
}

async fn load_balancer_round_trip(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let want = lb(PROJECT, "one");
    let (got, job) = s.create_load_balancer(&want).await.unwrap();
    assert_eq!(got.provisioning_status, ProvisioningStatus::PendingCreate);
    assert_eq!(got.operating_status, OperatingStatus::Offline);
    assert_eq!(got.vip, want.vip);
    assert_eq!(got.tags, vec!["b".to_string(), "a".to_string()]);
    assert_eq!(got.name, want.name);
    assert_eq!(got.availability_zone, want.availability_zone);
    assert_eq!(s.get_load_balancer(want.id).await.unwrap().unwrap(), got);
    let rec = s.get_job(job).await.unwrap().unwrap();
    assert_eq!(rec.kind, "create_load_balancer");
    assert_eq!(rec.class, JobClass::Tenant);
    assert_eq!(rec.state, JobState::Queued);
    assert_eq!(rec.spec.target_id, want.id.uuid());
    assert_eq!(rec.spec.locks.load_balancer_id, Some(want.id));
    assert!(s
        .get_load_balancer(LoadBalancerId::new())
        .await
        .unwrap()
        .is_none());

    settle(s, job).await;
    let mut upd = s.get_load_balancer(want.id).await.unwrap().unwrap();
    assert_eq!(upd.provisioning_status, ProvisioningStatus::Active);
    upd.name = Some("renamed".into());
    upd.vip.qos_policy_id = Some("qos".into());
    upd.tags = vec!["z".into()];
    let (after, job2) = s.update_load_balancer(&upd, upd.updated_at).await.unwrap();
    assert_eq!(after.name.as_deref(), Some("renamed"));
    assert_eq!(after.vip.qos_policy_id.as_deref(), Some("qos"));
    assert_eq!(after.tags, vec!["z".to_string()]);
    assert_eq!(after.provisioning_status, ProvisioningStatus::PendingUpdate);
    assert!(after.updated_at.is_some());
    settle(s, job2).await;
    assert_eq!(
        s.list_load_balancers(&ListQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn children_round_trip_with_derived_fields(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let l = active_lb(s).await;
    let want_l = listener(l.id, ListenerProtocol::Http, 80);
    let (li, job) = s.create_listener(&want_l).await.unwrap();
    assert_eq!(li.provisioning_status, ProvisioningStatus::PendingCreate);
    assert_eq!(li.sni_container_refs, want_l.sni_container_refs);
    assert_eq!(li.allowed_cidrs, want_l.allowed_cidrs);
    assert_eq!(li.insert_headers, want_l.insert_headers);
    assert_eq!(li.tls_versions, want_l.tls_versions);
    assert_eq!(li.alpn_protocols, want_l.alpn_protocols);
    assert_eq!(li.hsts_max_age, Some(10));
    assert_eq!(li.tags, vec!["lt".to_string()]);
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::PendingUpdate);
    settle(s, job).await;
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Active);

    let want_p = pool(l.id, PoolProtocol::Http);
    let (p, job) = s.create_pool(&want_p, Some(li.id)).await.unwrap();
    assert_eq!(p.session_persistence, want_p.session_persistence);
    assert_eq!(p.listener_ids, vec![li.id]);
    let rec = s.get_job(job).await.unwrap().unwrap();
    assert_eq!(rec.spec.locks.listener_ids, vec![li.id]);
    assert_eq!(
        s.get_listener(li.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::PendingUpdate
    );
    settle(s, job).await;
    let li2 = s.get_listener(li.id).await.unwrap().unwrap();
    assert_eq!(li2.default_pool_id, Some(p.id));
    assert_eq!(li2.provisioning_status, ProvisioningStatus::Active);

    let (m, job) = s
        .create_member(&member(p.id, "10.0.1.1", 80))
        .await
        .unwrap();
    assert_eq!(m.operating_status, OperatingStatus::NoMonitor);
    assert_eq!(m.monitor_port, Some(9000));
    assert_eq!(m.tags, vec!["mt".to_string()]);
    assert_eq!(
        s.get_pool(p.id).await.unwrap().unwrap().provisioning_status,
        ProvisioningStatus::PendingUpdate
    );
    settle(s, job).await;

    let want_h = hm(p.id);
    let (h, job) = s.create_health_monitor(&want_h).await.unwrap();
    assert_eq!(h.http_version, Some(1.1));
    assert_eq!(h.http_method, Some(HttpMethod::Get));
    assert_eq!(h.domain_name, want_h.domain_name);
    settle(s, job).await;
    let h = s.get_health_monitor(h.id).await.unwrap().unwrap();
    assert_eq!(h.provisioning_status, ProvisioningStatus::Active);
    assert_eq!(h.operating_status, OperatingStatus::Online);
    // A member created while the pool has a monitor starts OFFLINE.
    let (m2, job) = s
        .create_member(&member(p.id, "10.0.1.2", 80))
        .await
        .unwrap();
    assert_eq!(m2.operating_status, OperatingStatus::Offline);
    settle(s, job).await;

    let (y2, job) = s.create_l7policy(&policy(li.id, 1, None)).await.unwrap();
    settle(s, job).await;
    let (y1, job) = s
        .create_l7policy(&policy(li.id, 1, Some(p.id)))
        .await
        .unwrap();
    assert_eq!(y1.position, 1);
    settle(s, job).await;
    assert_eq!(s.get_l7policy(y2.id).await.unwrap().unwrap().position, 2);
    let (r, job) = s.create_l7rule(&rule(y1.id)).await.unwrap();
    assert_eq!(r.key.as_deref(), Some("X-Key"));
    assert!(r.invert);
    settle(s, job).await;
    let r = s.get_l7rule(r.id).await.unwrap().unwrap();
    assert_eq!(
        r.operating_status,
        OperatingStatus::Offline,
        "disabled rule is OFFLINE"
    );

    let l = s.get_load_balancer(l.id).await.unwrap().unwrap();
    assert_eq!(l.listener_ids, vec![li.id]);
    assert_eq!(l.pool_ids, vec![p.id]);
    let li = s.get_listener(li.id).await.unwrap().unwrap();
    assert_eq!(li.l7policy_ids, vec![y1.id, y2.id]);
    let p = s.get_pool(p.id).await.unwrap().unwrap();
    assert_eq!(p.member_ids, vec![m.id, m2.id]);
    assert_eq!(p.health_monitor_id, Some(h.id));
    assert_eq!(p.listener_ids, vec![li.id]);
    let y1 = s.get_l7policy(y1.id).await.unwrap().unwrap();
    assert_eq!(y1.rule_ids, vec![r.id]);
    assert_eq!(y1.redirect_pool_id, Some(p.id));

    // Lists of children.
    let q = ListQuery::default();
    assert_eq!(s.list_listeners(&q).await.unwrap(), vec![li.clone()]);
    assert_eq!(s.list_pools(&q).await.unwrap(), vec![p.clone()]);
    assert_eq!(s.list_members(p.id, &q).await.unwrap().len(), 2);
    assert_eq!(s.list_health_monitors(&q).await.unwrap(), vec![h.clone()]);
    assert_eq!(s.list_l7policies(&q).await.unwrap().len(), 2);
    assert_eq!(s.list_l7rules(y1.id, &q).await.unwrap(), vec![r.clone()]);
    assert!(matches!(
        s.list_members(PoolId::new(), &q).await,
        Err(DbError::NotFound { .. })
    ));

    // Tree.
    let tree = s.load_balancer_tree(l.id).await.unwrap().unwrap();
    assert_eq!(tree.load_balancer, l);
    assert_eq!(tree.listeners, vec![li]);
    assert_eq!(tree.pools, vec![p]);
    assert_eq!(tree.members.len(), 2);
    assert_eq!(tree.health_monitors, vec![h]);
    assert_eq!(
        tree.l7policies.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![y1.id, y2.id]
    );
    assert_eq!(tree.l7rules, vec![r]);
}

/// The listener ids, pool ids and tags that triggers keep on the load balancer's row follow
/// every insert and delete, in creation order, on the get and the list paths alike.
async fn load_balancer_derived_fields_follow_writes(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let l = active_lb(s).await;
    let mut listeners = Vec::new();
    for port in [80, 81, 82] {
        let mut want = listener(l.id, ListenerProtocol::Tcp, port);
        want.tags = vec![format!("listener-{port}")];
        let (li, job) = s.create_listener(&want).await.unwrap();
        settle(s, job).await;
        listeners.push(li);
    }
    let mut pools = Vec::new();
    for _ in 0..2 {
        let (p, job) = s
            .create_pool(&pool(l.id, PoolProtocol::Tcp), None)
            .await
            .unwrap();
        settle(s, job).await;
        pools.push(p);
    }
    listeners.sort_by_key(|x| (x.created_at, x.id.to_string()));
    pools.sort_by_key(|x| (x.created_at, x.id.to_string()));
    let ids = |v: &[Listener]| v.iter().map(|x| x.id).collect::<Vec<_>>();

    let got = s.get_load_balancer(l.id).await.unwrap().unwrap();
    assert_eq!(got.listener_ids, ids(&listeners));
    assert_eq!(got.pool_ids, pools.iter().map(|x| x.id).collect::<Vec<_>>());
    assert_eq!(
        got.tags,
        vec!["b".to_string(), "a".to_string()],
        "the LB's own tags only, not its listeners'"
    );

    let mut upd = got.clone();
    upd.tags = vec!["c".into(), "b".into(), "a".into()];
    let (_, job) = s.update_load_balancer(&upd, upd.updated_at).await.unwrap();
    settle(s, job).await;
    let job = s.delete_listener(listeners[1].id).await.unwrap();
    settle(s, job).await;
    listeners.remove(1);
    let job = s.delete_pool(pools[0].id).await.unwrap();
    settle(s, job).await;

    let got = s.get_load_balancer(l.id).await.unwrap().unwrap();
    assert_eq!(got.listener_ids, ids(&listeners));
    assert_eq!(got.pool_ids, vec![pools[1].id]);
    assert_eq!(got.tags, vec!["c", "b", "a"]);
    let listed = s.list_load_balancers(&ListQuery::default()).await.unwrap();
    let listed = listed.into_iter().find(|x| x.id == l.id).unwrap();
    assert_eq!(
        (listed.listener_ids, listed.pool_ids, listed.tags),
        (got.listener_ids, got.pool_ids, got.tags.clone())
    );

    let mut upd = s.get_load_balancer(l.id).await.unwrap().unwrap();
    upd.tags = vec![];
    let (_, job) = s.update_load_balancer(&upd, upd.updated_at).await.unwrap();
    settle(s, job).await;
    assert!(s
        .get_load_balancer(l.id)
        .await
        .unwrap()
        .unwrap()
        .tags
        .is_empty());
}

async fn list_filters_tags_sort_and_pagination(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let specs = [
        ("e", vec!["red"], true),
        ("c", vec!["red", "blue"], false),
        ("a", vec!["blue"], true),
        ("d", vec![], true),
        ("b", vec!["green", "red"], true),
    ];
    for (name, tags, enabled) in specs.iter() {
        let mut x = lb(PROJECT, name);
        x.tags = tags.iter().map(|t| t.to_string()).collect();
        x.enabled = *enabled;
        s.create_load_balancer(&x).await.unwrap();
    }
    s.create_load_balancer(&lb("other", "z")).await.unwrap();

    let all = s.list_load_balancers(&ListQuery::default()).await.unwrap();
    assert_eq!(
        names(&all),
        ["e", "c", "a", "d", "b", "z"],
        "default order is creation"
    );
    let mine = ListQuery {
        project_id: Some(PROJECT.into()),
        ..Default::default()
    };
    assert_eq!(s.list_load_balancers(&mine).await.unwrap().len(), 5);

    let f = |col: &str, v: FilterValue| ListQuery {
        filters: vec![Filter {
            column: col.into(),
            value: v,
        }],
        ..Default::default()
    };
    let got = s
        .list_load_balancers(&f("name", FilterValue::Text("c".into())))
        .await
        .unwrap();
    assert_eq!(names(&got), ["c"]);
    let got = s
        .list_load_balancers(&f("enabled", FilterValue::Text("false".into())))
        .await
        .unwrap();
    assert_eq!(names(&got), ["c"]);
    let got = s
        .list_load_balancers(&f("enabled", FilterValue::Bool(true)))
        .await
        .unwrap();
    assert_eq!(got.len(), 5);
    let got = s
        .list_load_balancers(&f("vip_address", FilterValue::Text("10.0.0.10".into())))
        .await
        .unwrap();
    assert_eq!(got.len(), 6);

    let tq = |tags: TagFilter| ListQuery {
        tags,
        project_id: Some(PROJECT.into()),
        ..Default::default()
    };
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let got = s
        .list_load_balancers(&tq(TagFilter {
            all: v(&["red", "blue"]),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(names(&got), ["c"]);
    let got = s
        .list_load_balancers(&tq(TagFilter {
            any: v(&["green", "blue"]),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(names(&got), ["c", "a", "b"]);
    let got = s
        .list_load_balancers(&tq(TagFilter {
            not_all: v(&["red", "blue"]),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(names(&got), ["e", "a", "d", "b"]);
    let got = s
        .list_load_balancers(&tq(TagFilter {
            not_any: v(&["red"]),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(names(&got), ["a", "d"]);

    // Sort by name descending, paginate by 2.
    let sorted = |marker: Option<String>, reverse: bool| ListQuery {
        project_id: Some(PROJECT.into()),
        sort: vec![("name".into(), SortDir::Desc)],
        limit: Some(2),
        marker,
        page_reverse: reverse,
        ..Default::default()
    };
    let p1 = s.list_load_balancers(&sorted(None, false)).await.unwrap();
    assert_eq!(names(&p1), ["e", "d"]);
    let p2 = s
        .list_load_balancers(&sorted(Some(p1[1].id.to_string()), false))
        .await
        .unwrap();
    assert_eq!(names(&p2), ["c", "b"]);
    let p3 = s
        .list_load_balancers(&sorted(Some(p2[1].id.to_string()), false))
        .await
        .unwrap();
    assert_eq!(names(&p3), ["a"]);
    let back = s
        .list_load_balancers(&sorted(Some(p3[0].id.to_string()), true))
        .await
        .unwrap();
    assert_eq!(
        names(&back),
        ["c", "b"],
        "page_reverse returns the previous page in order"
    );

    // Ascending by enabled then name.
    let q = ListQuery {
        project_id: Some(PROJECT.into()),
        sort: vec![
            ("enabled".into(), SortDir::Asc),
            ("name".into(), SortDir::Asc),
        ],
        ..Default::default()
    };
    assert_eq!(
        names(&s.list_load_balancers(&q).await.unwrap()),
        ["c", "a", "b", "d", "e"]
    );
}

async fn list_rejects_bad_marker_key_and_filter(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    active_lb(s).await;
    let bad_marker = ListQuery {
        marker: Some(LoadBalancerId::new().to_string()),
        ..Default::default()
    };
    match s.list_load_balancers(&bad_marker).await {
        Err(DbError::Invalid(m)) => assert_eq!(m, "Invalid marker"),
        other => panic!("expected Invalid marker, got {other:?}"),
    }
    let bad_sort = ListQuery {
        sort: vec![("nope".into(), SortDir::Asc)],
        ..Default::default()
    };
    assert!(matches!(
        s.list_pools(&bad_sort).await,
        Err(DbError::Invalid(_))
    ));
    let bad_filter = ListQuery {
        filters: vec![Filter {
            column: "name; DROP TABLE pool".into(),
            value: FilterValue::Text("x".into()),
        }],
        ..Default::default()
    };
    assert!(matches!(
        s.list_listeners(&bad_filter).await,
        Err(DbError::Invalid(_))
    ));
    let bad_value = ListQuery {
        filters: vec![Filter {
            column: "protocol_port".into(),
            value: FilterValue::Text("eighty".into()),
        }],
        ..Default::default()
    };
    assert!(matches!(
        s.list_listeners(&bad_value).await,
        Err(DbError::Invalid(_))
    ));
    let amp_tags = ListQuery {
        tags: TagFilter {
            all: vec!["x".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(
        s.list_amphorae(&amp_tags).await,
        Err(DbError::Invalid(_))
    ));
    // The catalogue names Octavia's columns.
    let names: Vec<&str> = columns(ObjectKind::HealthMonitor)
        .iter()
        .map(|c| c.name)
        .collect();
    assert!(names.contains(&"rise_threshold") && names.contains(&"type"));
    assert!(columns(ObjectKind::LoadBalancer)
        .iter()
        .any(|c| c.name == "vip_subnet_id"));
}

async fn locked_load_balancer_conflicts(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let (l, _job) = s.create_load_balancer(&lb(PROJECT, "x")).await.unwrap();
    let e = s.update_load_balancer(&l, None).await.unwrap_err();
    assert_eq!(
        conflict_msg(e),
        format!(
            "Invalid state PENDING_CREATE of loadbalancer resource {}",
            l.id
        )
    );
    let e = s.delete_load_balancer(l.id, false).await.unwrap_err();
    assert_eq!(
        conflict_msg(e),
        format!(
            "Invalid state PENDING_CREATE of loadbalancer resource {}",
            l.id
        )
    );
    let e = s
        .create_listener(&listener(l.id, ListenerProtocol::Tcp, 80))
        .await
        .unwrap_err();
    assert_eq!(
        conflict_msg(e),
        format!("Load Balancer {} is immutable and cannot be updated.", l.id)
    );
    let e = s
        .create_pool(&pool(l.id, PoolProtocol::Tcp), None)
        .await
        .unwrap_err();
    assert_eq!(
        conflict_msg(e),
        format!("Load Balancer {} is immutable and cannot be updated.", l.id)
    );

    // expected_updated_at mismatch.
    let l = active_lb(s).await;
    let stale = Some(now() - chrono::Duration::seconds(60));
    assert!(matches!(
        s.update_load_balancer(&l, stale).await,
        Err(DbError::Conflict(_))
    ));
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Active);
    // ERROR is deletable but not mutable.
    let (_, job) = s.update_load_balancer(&l, l.updated_at).await.unwrap();
    let spec = s.get_job(job).await.unwrap().unwrap().spec;
    s.settle_failure(&spec).await.unwrap();
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Error);
    let e = s
        .create_listener(&listener(l.id, ListenerProtocol::Tcp, 80))
        .await
        .unwrap_err();
    assert!(conflict_msg(e).contains("immutable"));
    s.delete_load_balancer(l.id, false).await.unwrap();
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::PendingDelete);
}

async fn missing_parents_are_not_found(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let nf = |r: std::result::Result<JobId, DbError>| matches!(r, Err(DbError::NotFound { .. }));
    let nf2 = |r: octavia_db::Result<()>| matches!(r, Err(DbError::NotFound { .. }));
    let x = LoadBalancerId::new();
    assert!(nf2(s
        .create_listener(&listener(x, ListenerProtocol::Tcp, 1))
        .await
        .map(|_| ())));
    assert!(nf2(s
        .create_pool(&pool(x, PoolProtocol::Tcp), None)
        .await
        .map(|_| ())));
    assert!(nf2(s
        .create_member(&member(PoolId::new(), "1.1.1.1", 1))
        .await
        .map(|_| ())));
    assert!(nf2(s
        .create_health_monitor(&hm(PoolId::new()))
        .await
        .map(|_| ())));
    assert!(nf2(s
        .create_l7policy(&policy(ListenerId::new(), 1, None))
        .await
        .map(|_| ())));
    assert!(nf2(s
        .create_l7rule(&rule(L7PolicyId::new()))
        .await
        .map(|_| ())));
    assert!(nf(s.delete_load_balancer(x, true).await));
    assert!(nf(s.delete_listener(ListenerId::new()).await));
    assert!(nf(s.delete_pool(PoolId::new()).await));
    assert!(nf(s.delete_member(MemberId::new()).await));
    assert!(nf(s.delete_health_monitor(HealthMonitorId::new()).await));
    assert!(nf(s.delete_l7policy(L7PolicyId::new()).await));
    assert!(nf(s.delete_l7rule(L7RuleId::new()).await));
    assert!(matches!(
        s.load_balancer_stats(x).await,
        Err(DbError::NotFound { .. })
    ));
    // A default pool on another load balancer is not found either.
    let a = active_lb(s).await;
    let (other, _, p) = lb_listener_pool(s).await;
    assert_ne!(other.id, a.id);
    let mut l = listener(a.id, ListenerProtocol::Http, 81);
    l.default_pool_id = Some(p.id);
    assert!(nf2(s.create_listener(&l).await.map(|_| ())));
}

async fn child_conflicts(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let (l, li, p) = lb_listener_pool(s).await;

    // Same port in the TCP space (HTTP on 80 exists): TCP and HTTPS collide, UDP does not.
    let e = s
        .create_listener(&listener(l.id, ListenerProtocol::Tcp, 80))
        .await
        .unwrap_err();
    assert!(conflict_msg(e).contains("protocol_port 80"));
    let (u, job) = s
        .create_listener(&listener(l.id, ListenerProtocol::Udp, 80))
        .await
        .unwrap();
    settle(s, job).await;
    assert_eq!(u.protocol_port, 80);

    // Listener already has a default pool.
    let e = s
        .create_pool(&pool(l.id, PoolProtocol::Http), Some(li.id))
        .await
        .unwrap_err();
    assert_eq!(conflict_msg(e), "This listener already has a default pool");
    // Pool already default of another listener.
    let mut l2 = listener(l.id, ListenerProtocol::Http, 8080);
    l2.default_pool_id = Some(p.id);
    assert!(matches!(
        s.create_listener(&l2).await,
        Err(DbError::Conflict(_))
    ));
    // Incompatible default pool protocol.
    let (udp_pool, job) = s
        .create_pool(&pool(l.id, PoolProtocol::Udp), None)
        .await
        .unwrap();
    settle(s, job).await;
    l2.default_pool_id = Some(udp_pool.id);
    assert!(matches!(
        s.create_listener(&l2).await,
        Err(DbError::Invalid(_))
    ));

    // Duplicate member.
    let (_, job) = s
        .create_member(&member(p.id, "10.0.0.1", 80))
        .await
        .unwrap();
    settle(s, job).await;
    let e = s
        .create_member(&member(p.id, "10.0.0.1", 80))
        .await
        .unwrap_err();
    assert!(conflict_msg(e).contains("10.0.0.1"));

    // Second health monitor.
    let (_, job) = s.create_health_monitor(&hm(p.id)).await.unwrap();
    settle(s, job).await;
    assert!(matches!(
        s.create_health_monitor(&hm(p.id)).await,
        Err(DbError::Conflict(_))
    ));

    // Pool not ACTIVE → member writes conflict (even though the LB is ACTIVE).
    let mut pe = p.clone();
    pe.name = Some("x".into());
    let (_, job) = s.update_pool(&pe, None).await.unwrap();
    s.settle_failure(&s.get_job(job).await.unwrap().unwrap().spec)
        .await
        .unwrap();
    assert_eq!(
        s.get_pool(p.id).await.unwrap().unwrap().provisioning_status,
        ProvisioningStatus::Error
    );
    let e = s
        .create_member(&member(p.id, "10.0.0.9", 80))
        .await
        .unwrap_err();
    assert_eq!(
        conflict_msg(e),
        format!("Pool {} is immutable and cannot be updated.", p.id)
    );

    // Pool in use by an L7 policy cannot be deleted.
    let (y, job) = s
        .create_l7policy(&policy(li.id, 1, Some(udp_pool.id)))
        .await
        .unwrap();
    settle(s, job).await;
    let e = s.delete_pool(udp_pool.id).await.unwrap_err();
    assert!(conflict_msg(e).contains(&y.id.to_string()));

    // LB delete with children and no cascade.
    assert!(matches!(
        s.delete_load_balancer(l.id, false).await,
        Err(DbError::Invalid(_))
    ));
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Active);
}

async fn too_many_rules_per_policy(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let (_, li, _) = lb_listener_pool(s).await;
    let (y, job) = s.create_l7policy(&policy(li.id, 1, None)).await.unwrap();
    settle(s, job).await;
    for _ in 0..MAX_L7RULES_PER_POLICY {
        let (_, job) = s.create_l7rule(&rule(y.id)).await.unwrap();
        settle(s, job).await;
    }
    let e = s.create_l7rule(&rule(y.id)).await.unwrap_err();
    assert!(conflict_msg(e).contains("Too many rules"));
    // Policy not ACTIVE → rule writes conflict.
    let (_, job) = s.update_l7policy(&y, None).await.unwrap();
    let rules = s.list_l7rules(y.id, &ListQuery::default()).await.unwrap();
    assert_eq!(rules.len(), 50);
    s.settle_failure(&s.get_job(job).await.unwrap().unwrap().spec)
        .await
        .unwrap();
    let e = s.delete_l7rule(rules[0].id).await.unwrap_err();
    assert_eq!(
        conflict_msg(e),
        format!("L7 Policy {} is immutable and cannot be updated.", y.id)
    );
}

async fn failed_write_leaves_no_trace(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let (l, li, p) = lb_listener_pool(s).await;
    let (_, job) = s
        .create_member(&member(p.id, "10.0.0.1", 80))
        .await
        .unwrap();
    settle(s, job).await;
    let jobs_before = job_total(s).await;
    // The duplicate is detected after the LB, listener and pool were set PENDING_UPDATE
    // inside the transaction: all of it must roll back.
    assert!(s
        .create_member(&member(p.id, "10.0.0.1", 80))
        .await
        .is_err());
    // Quota failure after the status changes rolls back too.
    s.set_quota(&Quota {
        project_id: PROJECT.into(),
        member: Some(1),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(matches!(
        s.create_member(&member(p.id, "10.0.0.2", 80)).await,
        Err(DbError::QuotaExceeded(_))
    ));
    assert_eq!(job_total(s).await, jobs_before);
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Active);
    assert_eq!(
        s.get_listener(li.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::Active
    );
    assert_eq!(
        s.get_pool(p.id).await.unwrap().unwrap().provisioning_status,
        ProvisioningStatus::Active
    );
    assert_eq!(
        s.list_members(p.id, &ListQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
    // And the store still accepts the next valid write.
    s.delete_quota(PROJECT).await.unwrap();
    s.create_member(&member(p.id, "10.0.0.2", 80))
        .await
        .unwrap();
}

async fn concurrent_writers_one_wins(engine: Engine) {
    let t = TestStore::new(engine).await;
    let other = t.second_store().await;
    let s = &t.store;
    for round in 0..3 {
        let l = active_lb(s).await;
        let before = job_total(s).await;
        let mut tasks = Vec::new();
        for i in 0..12 {
            let st = if i % 2 == 0 { s.clone() } else { other.clone() };
            let li = listener(l.id, ListenerProtocol::Tcp, 1000 + i);
            let mut upd = l.clone();
            upd.name = Some(format!("n{i}"));
            tasks.push(tokio::spawn(async move {
                if (i + round) % 3 == 0 {
                    st.update_load_balancer(&upd, None).await.map(|r| r.1)
                } else {
                    st.create_listener(&li).await.map(|r| r.1)
                }
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(DbError::Conflict(_)) => {}
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!(ok, 1, "exactly one concurrent writer wins");
        assert_eq!(job_total(s).await, before + 1, "one job per winning write");
        assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::PendingUpdate);
    }
}

async fn quotas_are_enforced(engine: Engine) {
    let defaults = QuotaDefaults {
        listener: 1,
        ..QuotaDefaults::default()
    };
    let t = TestStore::with_quota_defaults(engine, defaults).await;
    let s = &t.store;
    assert_eq!(s.quota_defaults(), defaults);
    assert!(s.get_quota(PROJECT).await.unwrap().is_none());
    let q = s
        .set_quota(&Quota {
            project_id: PROJECT.into(),
            load_balancer: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(q.load_balancer, Some(1));
    assert_eq!(q.listener, None);
    let l = active_lb(s).await;
    match s.create_load_balancer(&lb(PROJECT, "2")).await {
        Err(DbError::QuotaExceeded(r)) => assert_eq!(r, "load_balancer"),
        other => panic!("expected quota error, got {other:?}"),
    }
    // Another project is unaffected; -1 means unlimited.
    s.create_load_balancer(&lb("p2", "x")).await.unwrap();
    s.set_quota(&Quota {
        project_id: PROJECT.into(),
        load_balancer: Some(-1),
        ..Default::default()
    })
    .await
    .unwrap();
    s.create_load_balancer(&lb(PROJECT, "3")).await.unwrap();
    // Default listener quota of 1 applies when the row has no value.
    let (_, job) = s
        .create_listener(&listener(l.id, ListenerProtocol::Tcp, 1))
        .await
        .unwrap();
    settle(s, job).await;
    assert!(matches!(
        s.create_listener(&listener(l.id, ListenerProtocol::Tcp, 2))
            .await,
        Err(DbError::QuotaExceeded(_))
    ));
    let all = s.list_quotas(&ListQuery::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    s.delete_quota(PROJECT).await.unwrap();
    s.delete_quota(PROJECT).await.unwrap();
    assert!(s.get_quota(PROJECT).await.unwrap().is_none());
}

fn job(class: JobClass) -> NewJob {
    NewJob {
        class,
        spec: JobSpec {
            action: Action::Failover,
            target_kind: ObjectKind::Amphora,
            target_id: uuid::Uuid::new_v4(),
            locks: LockSet::default(),
            cascade: false,
            members: None,
            amphora_id: Some(AmphoraId::new()),
        },
    }
}

async fn job_claim_order_and_caps(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let lease = Duration::from_secs(60);
    let none = ClassCaps::default();
    assert!(s.claim_job("w", lease, &none).await.unwrap().is_none());
    let notifier = s.job_notifier();
    let notified = notifier.notified();
    let op = s.enqueue_job(&job(JobClass::Operator)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), notified)
        .await
        .expect("enqueue notifies");
    let t1 = s.enqueue_job(&job(JobClass::Tenant)).await.unwrap();
    let t2 = s.enqueue_job(&job(JobClass::Tenant)).await.unwrap();
    let fo = s.enqueue_job(&job(JobClass::Failover)).await.unwrap();

    let caps = ClassCaps {
        tenant: Some(1),
        ..Default::default()
    };
    let a = s.claim_job("w1", lease, &caps).await.unwrap().unwrap();
    assert_eq!((a.id, a.class, a.attempt), (fo, JobClass::Failover, 1));
    let b = s.claim_job("w1", lease, &caps).await.unwrap().unwrap();
    assert_eq!(b.id, t1, "older tenant job first");
    let c = s.claim_job("w2", lease, &caps).await.unwrap().unwrap();
    assert_eq!(c.id, op, "tenant class at its cap is skipped");
    assert!(s.claim_job("w2", lease, &caps).await.unwrap().is_none());
    assert!(s.finish_job(t1, "w1", JobState::Done, None).await.unwrap());
    let d = s.claim_job("w2", lease, &caps).await.unwrap().unwrap();
    assert_eq!(d.id, t2, "slot freed by finishing");
    let rec = s.get_job(t2).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Running);
    assert_eq!(rec.lease_owner.as_deref(), Some("w2"));
    assert!(rec.started_at.is_some());
    let zero = ClassCaps {
        failover: Some(0),
        ..Default::default()
    };
    s.enqueue_job(&job(JobClass::Failover)).await.unwrap();
    assert!(s.claim_job("w3", lease, &zero).await.unwrap().is_none());
    let counts = s.job_counts().await.unwrap();
    assert!(counts
        .iter()
        .any(|c| c.0 == JobClass::Tenant && c.2 == JobState::Done && c.3 == 1));
    assert!(matches!(
        s.finish_job(t2, "w2", JobState::Queued, None).await,
        Err(DbError::Invalid(_))
    ));
}

/// Claim `id` as worker "dead" with a lease that is over at once; wait until it reads as
/// expired (the clock moves on), without claiming anything else.
async fn claim_and_die(s: &Store, id: JobId) {
    let job = s
        .claim_job("dead", Duration::ZERO, &ClassCaps::default())
        .await
        .unwrap()
        .expect("a job");
    assert_eq!(job.id, id);
    let until = Instant::now() + Duration::from_millis(2);
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// A job whose worker died and the queued jobs are one queue: most urgent class first,
/// then oldest first, whichever of the two sets a job is in.
async fn expired_leases_and_queue_heads_share_one_order(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let lease = Duration::from_secs(60);
    let caps = ClassCaps::default();
    let claim = || async {
        s.claim_job("w", lease, &caps)
            .await
            .unwrap()
            .expect("a job")
    };

    // An expired operator job waits behind a younger queued tenant job.
    let op = s.enqueue_job(&job(JobClass::Operator)).await.unwrap();
    claim_and_die(s, op).await;
    let t1 = s.enqueue_job(&job(JobClass::Tenant)).await.unwrap();
    assert_eq!(claim().await.id, t1);
    let resumed = claim().await;
    assert_eq!((resumed.id, resumed.attempt), (op, 2));

    // Same class: the older job first, expired or queued.
    let t2 = s.enqueue_job(&job(JobClass::Tenant)).await.unwrap();
    let t3 = s.enqueue_job(&job(JobClass::Tenant)).await.unwrap();
    claim_and_die(s, t2).await;
    assert_eq!(claim().await.id, t2);
    assert_eq!(claim().await.id, t3);

    // An expired failover job goes before an older queued tenant job...
    let t4 = s.enqueue_job(&job(JobClass::Tenant)).await.unwrap();
    let fo = s.enqueue_job(&job(JobClass::Failover)).await.unwrap();
    claim_and_die(s, fo).await;
    assert_eq!(claim().await.id, fo);
    // ...and a class at its cap is left out in both sets.
    let t5 = s.enqueue_job(&job(JobClass::Tenant)).await.unwrap();
    claim_and_die(s, t4).await;
    let no_tenant = ClassCaps {
        tenant: Some(0),
        ..Default::default()
    };
    assert!(s.claim_job("w", lease, &no_tenant).await.unwrap().is_none());
    assert_eq!(claim().await.id, t4);
    assert_eq!(claim().await.id, t5);
    assert!(s.claim_job("w", lease, &caps).await.unwrap().is_none());
}

/// Completing a job writes its end and the settlement of its objects together, and only
/// for the worker that owns it.
async fn complete_job_settles_with_the_finish_or_not_at_all(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let lease = Duration::from_secs(60);
    let lb_status = |id| async move {
        s.get_load_balancer(id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status
    };
    let (ok, ok_job) = s.create_load_balancer(&lb(PROJECT, "ok")).await.unwrap();
    let (bad, bad_job) = s.create_load_balancer(&lb(PROJECT, "bad")).await.unwrap();
    let first = s
        .claim_job("w", lease, &ClassCaps::default())
        .await
        .unwrap()
        .unwrap();
    let second = s
        .claim_job("w", lease, &ClassCaps::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.id, second.id), (ok_job, bad_job));

    // Not the owner: refused, and nothing moves.
    assert!(!s
        .complete_job(ok_job, "other", &first.spec, None)
        .await
        .unwrap());
    assert_eq!(lb_status(ok.id).await, ProvisioningStatus::PendingCreate);
    assert_eq!(
        s.get_job(ok_job).await.unwrap().unwrap().state,
        JobState::Running
    );

    assert!(s
        .complete_job(ok_job, "w", &first.spec, None)
        .await
        .unwrap());
    assert_eq!(lb_status(ok.id).await, ProvisioningStatus::Active);
    let rec = s.get_job(ok_job).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.error), (JobState::Done, None));
    assert!(rec.finished_at.is_some());
    // Once finished it cannot be completed again.
    assert!(!s
        .complete_job(ok_job, "w", &first.spec, Some("late"))
        .await
        .unwrap());
    assert_eq!(lb_status(ok.id).await, ProvisioningStatus::Active);

    assert!(s
        .complete_job(bad_job, "w", &second.spec, Some("boom"))
        .await
        .unwrap());
    assert_eq!(lb_status(bad.id).await, ProvisioningStatus::Error);
    let rec = s.get_job(bad_job).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.error.as_deref()),
        (JobState::Failed, Some("boom"))
    );
}

async fn lease_expiry_resumes_on_other_worker(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let other = t.second_store().await;
    let id = s.enqueue_job(&job(JobClass::Tenant)).await.unwrap();
    let caps = ClassCaps::default();
    let a = s
        .claim_job("A", Duration::ZERO, &caps)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.attempt, 1);
    assert!(s.record_step_done(id, "A", "step1").await.unwrap());
    assert!(
        !s.record_step_done(id, "B", "intruder").await.unwrap(),
        "owner checked"
    );
    // Poll (with a deadline) until the zero-length lease is seen as expired.
    let deadline = Instant::now() + Duration::from_secs(10);
    let b = loop {
        if let Some(j) = other
            .claim_job("B", Duration::from_secs(60), &caps)
            .await
            .unwrap()
        {
            break j;
        }
        assert!(Instant::now() < deadline, "expired job was never reclaimed");
        tokio::task::yield_now().await;
    };
    assert_eq!(b.id, id);
    assert_eq!(b.attempt, 2);
    assert_eq!(b.completed_steps, vec!["step1".to_string()]);
    assert!(!s
        .renew_lease(id, "A", Duration::from_secs(60))
        .await
        .unwrap());
    assert!(!s.record_step_done(id, "A", "late").await.unwrap());
    assert!(!s.finish_job(id, "A", JobState::Done, None).await.unwrap());
    assert!(other
        .renew_lease(id, "B", Duration::from_secs(60))
        .await
        .unwrap());
    assert!(other.record_step_done(id, "B", "step2").await.unwrap());
    assert!(other.record_step_reverted(id, "B", "step2").await.unwrap());
    assert!(other
        .finish_job(id, "B", JobState::Failed, Some("boom"))
        .await
        .unwrap());
    let rec = s.get_job(id).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Failed);
    assert_eq!(rec.error.as_deref(), Some("boom"));
    assert_eq!(
        rec.completed_steps,
        vec!["step1".to_string(), "step2".to_string()]
    );
    assert_eq!(rec.reverted_steps, vec!["step2".to_string()]);
    assert_eq!(rec.attempt, 2);
    assert!(rec.finished_at.is_some());
    assert!(
        !other
            .finish_job(id, "B", JobState::Done, None)
            .await
            .unwrap(),
        "finished once"
    );
    assert!(s
        .claim_job("C", Duration::ZERO, &caps)
        .await
        .unwrap()
        .is_none());
}

async fn settlement_success_per_kind(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let (l, li, p) = lb_listener_pool(s).await;
    let (m, job) = s
        .create_member(&member(p.id, "10.0.0.1", 80))
        .await
        .unwrap();
    settle(s, job).await;
    let (h, job) = s.create_health_monitor(&hm(p.id)).await.unwrap();
    settle(s, job).await;
    let (y, job) = s.create_l7policy(&policy(li.id, 1, None)).await.unwrap();
    settle(s, job).await;
    let (r, job) = s.create_l7rule(&rule(y.id)).await.unwrap();
    settle(s, job).await;

    // Updates: target and parents back to ACTIVE.
    let mut m2 = s.get_member(m.id).await.unwrap().unwrap();
    m2.weight = 7;
    let (got, job) = s.update_member(&m2, m2.updated_at).await.unwrap();
    assert_eq!(got.weight, 7);
    assert_eq!(got.provisioning_status, ProvisioningStatus::PendingUpdate);
    settle(s, job).await;
    assert_eq!(
        s.get_member(m.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::Active
    );
    assert_eq!(
        s.get_pool(p.id).await.unwrap().unwrap().provisioning_status,
        ProvisioningStatus::Active
    );
    assert_eq!(
        s.get_listener(li.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::Active
    );
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Active);

    let mut li2 = s.get_listener(li.id).await.unwrap().unwrap();
    li2.connection_limit = 100;
    li2.sni_container_refs = vec!["only".into()];
    let (got, job) = s.update_listener(&li2, None).await.unwrap();
    assert_eq!(got.connection_limit, 100);
    assert_eq!(got.sni_container_refs, vec!["only".to_string()]);
    settle(s, job).await;

    let mut r2 = s.get_l7rule(r.id).await.unwrap().unwrap();
    r2.enabled = true;
    let (_, job) = s.update_l7rule(&r2, None).await.unwrap();
    assert_eq!(
        s.get_l7policy(y.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::PendingUpdate
    );
    settle(s, job).await;
    let r2 = s.get_l7rule(r.id).await.unwrap().unwrap();
    assert_eq!(
        (r2.provisioning_status, r2.operating_status),
        (ProvisioningStatus::Active, OperatingStatus::Online)
    );
    assert_eq!(
        s.get_l7policy(y.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::Active
    );

    let mut h2 = s.get_health_monitor(h.id).await.unwrap().unwrap();
    h2.delay = 9;
    let (_, job) = s.update_health_monitor(&h2, None).await.unwrap();
    settle(s, job).await;
    assert_eq!(s.get_health_monitor(h.id).await.unwrap().unwrap().delay, 9);

    // Deletes: hard delete, HM delete resets members to NO_MONITOR.
    let job = s.delete_l7rule(r.id).await.unwrap();
    assert_eq!(
        s.get_l7rule(r.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::PendingDelete
    );
    settle(s, job).await;
    assert!(s.get_l7rule(r.id).await.unwrap().is_none());
    let job = s.delete_health_monitor(h.id).await.unwrap();
    settle(s, job).await;
    assert!(s.get_health_monitor(h.id).await.unwrap().is_none());
    assert_eq!(
        s.get_member(m.id).await.unwrap().unwrap().operating_status,
        OperatingStatus::NoMonitor
    );
    assert_eq!(
        s.get_pool(p.id).await.unwrap().unwrap().health_monitor_id,
        None
    );
    let (y2, job) = s.create_l7policy(&policy(li.id, 99, None)).await.unwrap();
    assert_eq!(y2.position, 2);
    settle(s, job).await;
    let job = s.delete_l7policy(y.id).await.unwrap();
    settle(s, job).await;
    assert!(s.get_l7policy(y.id).await.unwrap().is_none());
    assert_eq!(
        s.get_l7policy(y2.id).await.unwrap().unwrap().position,
        1,
        "renumbered"
    );
    let job = s.delete_member(m.id).await.unwrap();
    settle(s, job).await;
    assert!(s.get_member(m.id).await.unwrap().is_none());
    let job = s.delete_pool(p.id).await.unwrap();
    settle(s, job).await;
    assert!(s.get_pool(p.id).await.unwrap().is_none());
    assert_eq!(
        s.get_listener(li.id)
            .await
            .unwrap()
            .unwrap()
            .default_pool_id,
        None
    );
    let job = s.delete_listener(li.id).await.unwrap();
    settle(s, job).await;
    assert!(s.get_listener(li.id).await.unwrap().is_none());
    assert!(
        s.get_l7policy(y2.id).await.unwrap().is_none(),
        "policies go with their listener"
    );
    let l = s.get_load_balancer(l.id).await.unwrap().unwrap();
    assert_eq!(l.provisioning_status, ProvisioningStatus::Active);
    assert!(l.listener_ids.is_empty() && l.pool_ids.is_empty());
    let job = s.delete_load_balancer(l.id, false).await.unwrap();
    settle(s, job).await;
    assert!(s.get_load_balancer(l.id).await.unwrap().is_none());
}

async fn settlement_failure_per_kind(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    // LB create failure → LB ERROR.
    let (x, job) = s.create_load_balancer(&lb(PROJECT, "f")).await.unwrap();
    s.settle_failure(&s.get_job(job).await.unwrap().unwrap().spec)
        .await
        .unwrap();
    assert_eq!(lb_status(s, x.id).await, ProvisioningStatus::Error);

    let (l, li, p) = lb_listener_pool(s).await;
    let fail = |job: JobId| async move {
        let spec = s.get_job(job).await.unwrap().unwrap().spec;
        s.settle_failure(&spec).await.unwrap();
    };
    // Member create failure → member ERROR, parents ACTIVE.
    let (m, job) = s
        .create_member(&member(p.id, "10.0.0.1", 80))
        .await
        .unwrap();
    fail(job).await;
    assert_eq!(
        s.get_member(m.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::Error
    );
    assert_eq!(
        s.get_pool(p.id).await.unwrap().unwrap().provisioning_status,
        ProvisioningStatus::Active
    );
    assert_eq!(
        s.get_listener(li.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::Active
    );
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Active);
    // Listener update failure → listener ERROR, LB ACTIVE.
    let (_, job) = s.update_listener(&li, None).await.unwrap();
    fail(job).await;
    assert_eq!(
        s.get_listener(li.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::Error
    );
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Active);
    // L7 policy failure → policy ERROR, listener back to ACTIVE.
    let (y, job) = s.create_l7policy(&policy(li.id, 1, None)).await.unwrap();
    fail(job).await;
    assert_eq!(
        s.get_l7policy(y.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::Error
    );
    assert_eq!(
        s.get_listener(li.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::Active
    );
    // HM delete failure → HM ERROR (still present).
    let (h, job) = s.create_health_monitor(&hm(p.id)).await.unwrap();
    settle(s, job).await;
    let job = s.delete_health_monitor(h.id).await.unwrap();
    fail(job).await;
    assert_eq!(
        s.get_health_monitor(h.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::Error
    );
    // LB update failure → LB ERROR.
    let cur = s.get_load_balancer(l.id).await.unwrap().unwrap();
    let (_, job) = s.update_load_balancer(&cur, cur.updated_at).await.unwrap();
    fail(job).await;
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Error);
}

async fn load_balancer_cascade_delete(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let (l, li, p) = lb_listener_pool(s).await;
    let (m, job) = s
        .create_member(&member(p.id, "10.0.0.1", 80))
        .await
        .unwrap();
    settle(s, job).await;
    let (h, job) = s.create_health_monitor(&hm(p.id)).await.unwrap();
    settle(s, job).await;
    let (y, job) = s.create_l7policy(&policy(li.id, 1, None)).await.unwrap();
    settle(s, job).await;
    let (r, job) = s.create_l7rule(&rule(y.id)).await.unwrap();
    settle(s, job).await;
    let amp = amphora(Some(l.id));
    s.save_amphora(&amp).await.unwrap();

    let job = s.delete_load_balancer(l.id, true).await.unwrap();
    let rec = s.get_job(job).await.unwrap().unwrap();
    assert!(rec.spec.cascade);
    assert_eq!(rec.kind, "delete_load_balancer");
    let tree = s.load_balancer_tree(l.id).await.unwrap().unwrap();
    assert_eq!(
        tree.load_balancer.provisioning_status,
        ProvisioningStatus::PendingDelete
    );
    let pd = ProvisioningStatus::PendingDelete;
    assert!(tree.listeners.iter().all(|x| x.provisioning_status == pd));
    assert!(tree.pools.iter().all(|x| x.provisioning_status == pd));
    assert!(tree.members.iter().all(|x| x.provisioning_status == pd));
    assert!(tree
        .health_monitors
        .iter()
        .all(|x| x.provisioning_status == pd));
    assert!(tree.l7policies.iter().all(|x| x.provisioning_status == pd));
    assert!(tree.l7rules.iter().all(|x| x.provisioning_status == pd));
    assert_eq!(tree.l7rules.len(), 1);

    s.settle_success(&rec.spec).await.unwrap();
    assert!(s.get_load_balancer(l.id).await.unwrap().is_none());
    assert!(s.load_balancer_tree(l.id).await.unwrap().is_none());
    assert!(s.get_listener(li.id).await.unwrap().is_none());
    assert!(s.get_pool(p.id).await.unwrap().is_none());
    assert!(s.get_member(m.id).await.unwrap().is_none());
    assert!(s.get_health_monitor(h.id).await.unwrap().is_none());
    assert!(s.get_l7policy(y.id).await.unwrap().is_none());
    assert!(s.get_l7rule(r.id).await.unwrap().is_none());
    assert!(
        s.get_amphora(amp.id).await.unwrap().is_none(),
        "amphora soft-deleted"
    );
    assert!(s
        .list_load_balancers(&ListQuery::default())
        .await
        .unwrap()
        .is_empty());
    // Tags of removed children do not linger.
    let tagged = ListQuery {
        tags: TagFilter {
            any: vec!["pt".into(), "lt".into(), "mt".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(s.list_pools(&tagged).await.unwrap().is_empty());
}

async fn batch_member_update(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let (l, _, p) = lb_listener_pool(s).await;
    let (keep, job) = s
        .create_member(&member(p.id, "10.0.0.1", 80))
        .await
        .unwrap();
    settle(s, job).await;
    let (gone, job) = s
        .create_member(&member(p.id, "10.0.0.2", 80))
        .await
        .unwrap();
    settle(s, job).await;
    let mut keep2 = keep.clone();
    keep2.weight = 10;
    let new = member(p.id, "10.0.0.3", 80);
    let change = MemberBatchChange {
        create: vec![new.clone()],
        update: vec![keep2],
        delete: vec![gone.id],
    };
    let job = s.batch_update_members(p.id, &change).await.unwrap();
    let rec = s.get_job(job).await.unwrap().unwrap();
    assert_eq!(rec.kind, "batch_update_pool");
    let mb = rec.spec.members.clone().unwrap();
    assert_eq!(
        (mb.created, mb.updated, mb.deleted),
        (vec![new.id], vec![keep.id], vec![gone.id])
    );
    assert_eq!(
        s.get_member(gone.id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::PendingDelete
    );
    assert_eq!(s.get_member(keep.id).await.unwrap().unwrap().weight, 10);
    // LB locked meanwhile.
    assert!(matches!(
        s.batch_update_members(p.id, &MemberBatchChange::default())
            .await,
        Err(DbError::Conflict(_))
    ));
    s.settle_success(&rec.spec).await.unwrap();
    let ms = s.list_members(p.id, &ListQuery::default()).await.unwrap();
    assert_eq!(
        ms.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![keep.id, new.id]
    );
    assert!(ms
        .iter()
        .all(|m| m.provisioning_status == ProvisioningStatus::Active));
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Active);
    // Failure marks the batch's members ERROR.
    let change = MemberBatchChange {
        create: vec![member(p.id, "10.0.0.4", 80)],
        ..Default::default()
    };
    let job = s.batch_update_members(p.id, &change).await.unwrap();
    s.settle_failure(&s.get_job(job).await.unwrap().unwrap().spec)
        .await
        .unwrap();
    assert_eq!(
        s.get_member(change.create[0].id)
            .await
            .unwrap()
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::Error
    );
    assert_eq!(
        s.get_pool(p.id).await.unwrap().unwrap().provisioning_status,
        ProvisioningStatus::Active
    );
    // A member of another pool cannot be deleted through this pool.
    let (_, _, p2) = lb_listener_pool(s).await;
    let (other, job) = s
        .create_member(&member(p2.id, "10.0.0.1", 80))
        .await
        .unwrap();
    settle(s, job).await;
    let change = MemberBatchChange {
        delete: vec![other.id],
        ..Default::default()
    };
    assert!(matches!(
        s.batch_update_members(p.id, &change).await,
        Err(DbError::NotFound { .. })
    ));
}

fn amphora(lb: Option<LoadBalancerId>) -> Amphora {
    Amphora {
        id: AmphoraId::new(),
        load_balancer_id: lb,
        compute_id: Some("c1".into()),
        lb_network_ip: Some("192.168.0.5".into()),
        vrrp_ip: None,
        ha_ip: Some("10.0.0.10".into()),
        vrrp_port_id: None,
        ha_port_id: None,
        cert_expiration: Some(now()),
        cert_busy: false,
        role: Some(AmphoraRole::Standalone),
        status: ProvisioningStatus::Allocated,
        vrrp_interface: Some("eth1".into()),
        vrrp_id: Some(1),
        vrrp_priority: None,
        cached_zone: None,
        image_id: Some("img".into()),
        compute_flavor: None,
        created_at: now(),
        updated_at: None,
    }
}

async fn amphorae_and_stats(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let (l, li, _) = lb_listener_pool(s).await;
    let a1 = amphora(Some(l.id));
    let mut a2 = amphora(Some(l.id));
    a2.status = ProvisioningStatus::Ready;
    let spare = amphora(None);
    for a in [&a1, &a2, &spare] {
        s.save_amphora(a).await.unwrap();
    }
    assert_eq!(s.get_amphora(a1.id).await.unwrap().unwrap(), a1);
    let mut a1b = a1.clone();
    a1b.role = Some(AmphoraRole::Master);
    a1b.updated_at = Some(now());
    s.save_amphora(&a1b).await.unwrap();
    assert_eq!(s.get_amphora(a1.id).await.unwrap().unwrap(), a1b);
    let mine = ListQuery {
        project_id: Some(PROJECT.into()),
        ..Default::default()
    };
    assert_eq!(s.list_amphorae(&mine).await.unwrap().len(), 2);
    assert_eq!(
        s.list_amphorae(&ListQuery::default()).await.unwrap().len(),
        3
    );
    let by_status = ListQuery {
        filters: vec![Filter {
            column: "status".into(),
            value: FilterValue::Text("READY".into()),
        }],
        ..Default::default()
    };
    assert_eq!(s.list_amphorae(&by_status).await.unwrap()[0].id, a2.id);

    let st = |n: i64| ListenerStatistics {
        bytes_in: n,
        bytes_out: 2 * n,
        active_connections: 3 * n,
        total_connections: 4 * n,
        request_errors: n,
    };
    assert_eq!(
        s.listener_stats(li.id).await.unwrap(),
        ListenerStatistics::default()
    );
    s.save_listener_statistics(li.id, a1.id, &st(1))
        .await
        .unwrap();
    s.save_listener_statistics(li.id, a2.id, &st(10))
        .await
        .unwrap();
    s.save_listener_statistics(li.id, a1.id, &st(2))
        .await
        .unwrap();
    let got = s.load_balancer_stats(l.id).await.unwrap();
    assert_eq!(got.bytes_in, 12);
    assert_eq!(got.bytes_out, 24);
    assert_eq!(got.total_connections, 48);
    assert_eq!(got.request_errors, 12);
    assert_eq!(
        got.active_connections, 6,
        "only ALLOCATED amphorae count for active connections"
    );
    assert_eq!(s.listener_stats(li.id).await.unwrap(), got);
    assert!(matches!(
        s.listener_stats(ListenerId::new()).await,
        Err(DbError::NotFound { .. })
    ));
}

async fn failovers_lock_and_settle(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let l = active_lb(s).await;
    let amp = amphora(Some(l.id));
    s.save_amphora(&amp).await.unwrap();
    let job = s
        .failover_amphora(amp.id, JobClass::Failover)
        .await
        .unwrap();
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::PendingUpdate);
    let e = s
        .failover_amphora(amp.id, JobClass::Failover)
        .await
        .unwrap_err();
    assert!(conflict_msg(e).contains("Invalid state PENDING_UPDATE"));
    let e = s
        .failover_load_balancer(l.id, JobClass::Operator)
        .await
        .unwrap_err();
    assert_eq!(
        conflict_msg(e),
        format!(
            "Invalid state PENDING_UPDATE of loadbalancer resource {}",
            l.id
        )
    );
    let rec = s.get_job(job).await.unwrap().unwrap();
    assert_eq!(
        (rec.kind.as_str(), rec.class),
        ("failover_amphora", JobClass::Failover)
    );
    assert_eq!(rec.spec.amphora_id, Some(amp.id));
    s.settle_failure(&rec.spec).await.unwrap();
    assert_eq!(
        s.get_amphora(amp.id).await.unwrap().unwrap().status,
        ProvisioningStatus::Error
    );
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Active);

    // LB failover: failure → ERROR; ERROR may be failed over again; success → ACTIVE.
    let job = s
        .failover_load_balancer(l.id, JobClass::Operator)
        .await
        .unwrap();
    s.settle_failure(&s.get_job(job).await.unwrap().unwrap().spec)
        .await
        .unwrap();
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Error);
    let job = s
        .failover_load_balancer(l.id, JobClass::Operator)
        .await
        .unwrap();
    let rec = s.get_job(job).await.unwrap().unwrap();
    assert_eq!(
        (rec.kind.as_str(), rec.class),
        ("failover_load_balancer", JobClass::Operator)
    );
    s.settle_success(&rec.spec).await.unwrap();
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Active);
    assert!(matches!(
        s.failover_amphora(AmphoraId::new(), JobClass::Operator)
            .await,
        Err(DbError::NotFound { .. })
    ));
}

// ------------------------------------------------------------------ stale amphorae

/// A heartbeat of a seeded fleet member received at `at` (everything OPEN/ONLINE).
fn heartbeat(f: &FleetMember, at: Timestamp) -> HeartbeatRecord {
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

fn sweep_at(now: Timestamp, threshold: Option<usize>) -> SweepOptions {
    SweepOptions {
        stale_before: now - chrono::Duration::seconds(3),
        suspect_before: now - chrono::Duration::seconds(2),
        failover_threshold: threshold,
        max_claims: 10,
    }
}

async fn amphora_status(s: &Store, id: AmphoraId) -> ProvisioningStatus {
    s.get_amphora(id).await.unwrap().unwrap().status
}

/// Two health managers sweep at once: the one silent amphora gets exactly one failover job
/// (class Failover), its LB goes PENDING_UPDATE, the fresh one is left alone, and a claimed
/// amphora is never claimed again.
async fn stale_amphora_is_claimed_exactly_once(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let fleet = s.seed_heartbeat_fleet(2, PROJECT).await.unwrap();
    let t0 = now();
    s.record_heartbeats(&[
        heartbeat(&fleet[0], t0 - chrono::Duration::seconds(10)),
        heartbeat(&fleet[1], t0),
    ])
    .await
    .unwrap();
    let before = job_total(s).await;
    let (a, b) = tokio::join!(
        s.sweep_stale_amphorae(sweep_at(t0, None)),
        s.sweep_stale_amphorae(sweep_at(t0, None)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let claimed: Vec<_> = a.claimed.iter().chain(b.claimed.iter()).collect();
    assert_eq!(claimed.len(), 1, "{a:?} {b:?}");
    assert_eq!(claimed[0].0, fleet[0].amphora_id);
    assert_eq!(claimed[0].1, Some(fleet[0].load_balancer_id));
    assert_eq!(job_total(s).await, before + 1);
    let job = s.get_job(claimed[0].2).await.unwrap().unwrap();
    assert_eq!(job.spec.action, Action::Failover);
    assert_eq!(job.spec.amphora_id, Some(fleet[0].amphora_id));
    assert_eq!(
        lb_status(s, fleet[0].load_balancer_id).await,
        ProvisioningStatus::PendingUpdate
    );
    assert_eq!(
        lb_status(s, fleet[1].load_balancer_id).await,
        ProvisioningStatus::Active
    );
    let health = s
        .get_amphora_health(fleet[0].amphora_id)
        .await
        .unwrap()
        .unwrap();
    assert!(health.busy);
    // Settled or not, a claimed (busy) amphora is not claimed again.
    s.settle_success(&job.spec).await.unwrap();
    let again = s.sweep_stale_amphorae(sweep_at(now(), None)).await.unwrap();
    assert!(again.claimed.is_empty(), "{again:?}");
    assert_eq!(job_total(s).await, before + 1);
}

/// With failover_threshold 3, three silent amphorae go FAILOVER_STOPPED and none is failed
/// over; more going silent stay under the breaker too; each returns to ALLOCATED when its
/// heartbeats resume, still without failover. An operator can fail one over by hand.
/// (Time is synthetic: heartbeats and sweeps carry explicit timestamps.)
async fn circuit_breaker_stops_and_resumes(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let fleet = s.seed_heartbeat_fleet(5, PROJECT).await.unwrap();
    let t0 = now();
    let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
    let beats: Vec<_> = fleet
        .iter()
        .enumerate()
        .map(|(i, f)| heartbeat(f, if i < 3 { at(-10) } else { at(0) }))
        .collect();
    s.record_heartbeats(&beats).await.unwrap();
    let before = job_total(s).await;

    let out = s
        .sweep_stale_amphorae(sweep_at(at(0), Some(3)))
        .await
        .unwrap();
    assert!(out.claimed.is_empty(), "{out:?}");
    assert_eq!(out.stopped.len(), 3, "{out:?}");
    assert_eq!(out.failover_stopped, 3);
    for f in &fleet[..3] {
        assert_eq!(
            amphora_status(s, f.amphora_id).await,
            ProvisioningStatus::FailoverStopped
        );
    }
    // Four seconds later the other two are silent as well: 5 expired >= 3, the breaker
    // holds them too.
    let out = s
        .sweep_stale_amphorae(sweep_at(at(4), Some(3)))
        .await
        .unwrap();
    assert!(out.claimed.is_empty(), "{out:?}");
    let mut stopped = out.stopped.clone();
    stopped.sort();
    let mut want = vec![fleet[3].amphora_id, fleet[4].amphora_id];
    want.sort();
    assert_eq!(stopped, want);
    assert_eq!(job_total(s).await, before);

    // Heartbeats resume for all: back to ALLOCATED, no failover.
    let beats: Vec<_> = fleet.iter().map(|f| heartbeat(f, at(10))).collect();
    s.record_heartbeats(&beats).await.unwrap();
    let out = s
        .sweep_stale_amphorae(sweep_at(at(10), Some(3)))
        .await
        .unwrap();
    assert_eq!(out.resumed.len(), 5, "{out:?}");
    assert!(out.claimed.is_empty() && out.stopped.is_empty(), "{out:?}");
    assert_eq!(out.failover_stopped, 0);
    for f in &fleet {
        assert_eq!(
            amphora_status(s, f.amphora_id).await,
            ProvisioningStatus::Allocated
        );
    }
    assert_eq!(job_total(s).await, before);

    // Three go silent again; an operator fails one of them over by hand.
    let fresh: Vec<_> = fleet[3..].iter().map(|f| heartbeat(f, at(20))).collect();
    s.record_heartbeats(&fresh).await.unwrap();
    let out = s
        .sweep_stale_amphorae(sweep_at(at(20), Some(3)))
        .await
        .unwrap();
    assert_eq!(out.stopped.len(), 3, "{out:?}");
    s.failover_amphora(fleet[0].amphora_id, JobClass::Operator)
        .await
        .unwrap();
    assert_eq!(
        lb_status(s, fleet[0].load_balancer_id).await,
        ProvisioningStatus::PendingUpdate
    );
}

/// build_rate_limit = 1: ten operator failovers queued first, then a tenant create, then an
/// automatic failover. The one build slot goes to the automatic failover, then the create,
/// then the operator failovers in order; jobs that build nothing are not held back.
async fn build_slots_go_to_the_most_urgent(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let fleet = s.seed_heartbeat_fleet(11, PROJECT).await.unwrap();
    let mut operator = Vec::new();
    for f in &fleet[..10] {
        operator.push(
            s.failover_load_balancer(f.load_balancer_id, JobClass::Operator)
                .await
                .unwrap(),
        );
    }
    let (_, create) = s.create_load_balancer(&lb(PROJECT, "new")).await.unwrap();
    let auto = s
        .failover_amphora(fleet[10].amphora_id, JobClass::Failover)
        .await
        .unwrap();
    let caps = ClassCaps {
        builds: Some(1),
        ..Default::default()
    };
    let lease = Duration::from_secs(30);
    let mut order = Vec::new();
    for _ in 0..12 {
        let job = s
            .claim_job("w1", lease, &caps)
            .await
            .unwrap()
            .expect("a job");
        // The slot is taken: no other build starts meanwhile.
        assert!(s.claim_job("w2", lease, &caps).await.unwrap().is_none());
        order.push(job.id);
        assert!(s
            .finish_job(job.id, "w1", JobState::Done, None)
            .await
            .unwrap());
    }
    let mut want = vec![auto, create];
    want.extend(operator);
    assert_eq!(order, want);

    // A job that builds nothing runs beside a build.
    let (_, build) = s.create_load_balancer(&lb(PROJECT, "a")).await.unwrap();
    assert_eq!(
        s.claim_job("w1", lease, &caps).await.unwrap().unwrap().id,
        build
    );
    let update = s
        .enqueue_job(&NewJob {
            class: JobClass::Tenant,
            spec: JobSpec {
                action: Action::Update,
                target_kind: ObjectKind::Listener,
                target_id: uuid::Uuid::new_v4(),
                locks: LockSet::default(),
                cascade: false,
                members: None,
                amphora_id: None,
            },
        })
        .await
        .unwrap();
    assert_eq!(
        s.claim_job("w2", lease, &caps).await.unwrap().unwrap().id,
        update
    );
}

/// Amphorae silenced at one instant go stale up to a heartbeat interval apart. The first to
/// go stale is not failed over while the others, silent since their last heartbeat, count
/// as suspects: 1 stale + 2 suspects trip a threshold of 3. Only the stale one is stopped.
async fn breaker_counts_amphorae_about_to_go_stale(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let fleet = s.seed_heartbeat_fleet(4, PROJECT).await.unwrap();
    let t0 = now();
    let ms = |v: i64| t0 + chrono::Duration::milliseconds(v);
    // Stale (3.1 s), suspect (2.6 s, 2.2 s), fresh (0.2 s); timeout 3 s, interval 1 s.
    let beats = [ms(-3100), ms(-2600), ms(-2200), ms(-200)];
    let recs: Vec<_> = fleet
        .iter()
        .zip(beats)
        .map(|(f, at)| heartbeat(f, at))
        .collect();
    s.record_heartbeats(&recs).await.unwrap();
    let before = job_total(s).await;
    let out = s.sweep_stale_amphorae(sweep_at(t0, Some(3))).await.unwrap();
    assert!(out.claimed.is_empty(), "{out:?}");
    assert_eq!(out.stopped, vec![fleet[0].amphora_id]);
    assert_eq!(job_total(s).await, before);
    // Without the breaker the stale one is failed over at once.
    let t2 = TestStore::new(engine).await;
    let s2 = &t2.store;
    let fleet = s2.seed_heartbeat_fleet(4, PROJECT).await.unwrap();
    let recs: Vec<_> = fleet
        .iter()
        .zip(beats)
        .map(|(f, at)| heartbeat(f, at))
        .collect();
    s2.record_heartbeats(&recs).await.unwrap();
    let out = s2.sweep_stale_amphorae(sweep_at(t0, None)).await.unwrap();
    assert_eq!(out.claimed.len(), 1, "{out:?}");
    assert_eq!(out.claimed[0].0, fleet[0].amphora_id);
}

/// DELETE of an amphora: 404 unknown, 409 unless ERROR; an ERROR one goes PENDING_DELETE
/// with a delete_amphora job; success leaves it DELETED (row kept, health row gone).
async fn only_error_amphorae_are_deleted(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let fleet = s.seed_heartbeat_fleet(1, PROJECT).await.unwrap();
    let amp = fleet[0].amphora_id;
    s.record_heartbeats(&[heartbeat(&fleet[0], now())])
        .await
        .unwrap();
    assert!(matches!(
        s.delete_amphora(AmphoraId::new()).await,
        Err(DbError::NotFound { .. })
    ));
    let e = s.delete_amphora(amp).await.unwrap_err();
    assert!(conflict_msg(e).contains("Invalid state ALLOCATED of amphora"));
    let mut a = s.get_amphora(amp).await.unwrap().unwrap();
    a.status = ProvisioningStatus::Error;
    s.save_amphora(&a).await.unwrap();
    let job = s.delete_amphora(amp).await.unwrap();
    assert_eq!(
        amphora_status(s, amp).await,
        ProvisioningStatus::PendingDelete
    );
    let rec = s.get_job(job).await.unwrap().unwrap();
    assert_eq!(
        (rec.kind.as_str(), rec.class),
        ("delete_amphora", JobClass::Operator)
    );
    assert!(matches!(
        s.delete_amphora(amp).await,
        Err(DbError::Conflict(_))
    ));
    s.settle_success(&rec.spec).await.unwrap();
    assert!(s.get_amphora(amp).await.unwrap().is_none());
    assert_eq!(
        s.get_amphora_any(amp).await.unwrap().unwrap().status,
        ProvisioningStatus::Deleted
    );
    assert!(s.get_amphora_health(amp).await.unwrap().is_none());
    assert!(matches!(
        s.delete_amphora(amp).await,
        Err(DbError::NotFound { .. })
    ));
}
