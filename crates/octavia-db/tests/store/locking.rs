//! The status locks of tenant writes: conflicts, missing parents, atomicity, concurrent writers.

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(
    locked_load_balancer_conflicts,
    missing_parents_are_not_found,
    child_conflicts,
    too_many_rules_per_policy,
    failed_write_leaves_no_trace,
    concurrent_writers_one_wins,
);

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
