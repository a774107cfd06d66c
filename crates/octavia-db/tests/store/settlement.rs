//! Settlement of finished jobs per kind, cascade deletes and member batches.

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(
    settlement_success_per_kind,
    settlement_failure_per_kind,
    load_balancer_cascade_delete,
    batch_member_update,
);

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
