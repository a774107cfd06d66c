//! Connecting, migrating, and objects read back as written (derived fields included).

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(
    migrate_is_idempotent_and_concurrent,
    load_balancer_round_trip,
    children_round_trip_with_derived_fields,
    load_balancer_derived_fields_follow_writes,
);

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
