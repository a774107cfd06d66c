//! Amphora rows, statistics, failovers and operator deletes.

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(
    amphorae_and_stats,
    failovers_lock_and_settle,
    only_error_amphorae_are_deleted,
    the_vip_holder_becomes_master,
);

/// `record_vip_holder`: the amphora that reports holding the VIP becomes MASTER and its live
/// peer BACKUP; nothing changes when the roles are already true, for a SINGLE amphora, or for
/// an amphora of another load balancer; a peer being deleted keeps its role.
async fn the_vip_holder_becomes_master(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let (l, _, _) = lb_listener_pool(s).await;
    let (other, _, _) = lb_listener_pool(s).await;
    let with_role = |lb, role, priority| Amphora {
        role: Some(role),
        vrrp_priority: Some(priority),
        ..amphora(Some(lb))
    };
    let master = with_role(l.id, AmphoraRole::Master, 100);
    let backup = with_role(l.id, AmphoraRole::Backup, 90);
    let mut going = with_role(l.id, AmphoraRole::Backup, 90);
    going.status = ProvisioningStatus::PendingDelete;
    let other_master = with_role(other.id, AmphoraRole::Master, 100);
    let single = amphora(Some(other.id));
    for a in [&master, &backup, &going, &other_master, &single] {
        s.save_amphora(a).await.unwrap();
    }
    let role = |id| async move { s.get_amphora_any(id).await.unwrap().unwrap().role };

    assert_eq!(s.record_vip_holder(master.id).await.unwrap(), 0);
    assert_eq!(s.record_vip_holder(single.id).await.unwrap(), 0);
    assert_eq!(role(single.id).await, Some(AmphoraRole::Standalone));

    // keepalived moved the VIP to the BACKUP.
    assert_eq!(s.record_vip_holder(backup.id).await.unwrap(), 2);
    assert_eq!(role(backup.id).await, Some(AmphoraRole::Master));
    assert_eq!(role(master.id).await, Some(AmphoraRole::Backup));
    assert_eq!(role(going.id).await, Some(AmphoraRole::Backup));
    assert_eq!(role(other_master.id).await, Some(AmphoraRole::Master));
    // The priority stays what the amphora's keepalived runs with until the next push.
    let b = s.get_amphora(backup.id).await.unwrap().unwrap();
    assert_eq!(b.vrrp_priority, Some(90));
    assert_eq!(s.record_vip_holder(backup.id).await.unwrap(), 0);

    // A holder being deleted changes nothing.
    assert_eq!(s.record_vip_holder(going.id).await.unwrap(), 0);
    assert_eq!(role(backup.id).await, Some(AmphoraRole::Master));
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
