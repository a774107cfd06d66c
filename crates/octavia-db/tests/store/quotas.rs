//! Project quotas.

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(quotas_are_enforced,);

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
