//! The job queue: claim order, class and build caps, leases, completion.

use std::time::{Duration, Instant};

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::{eventually, TestStore};

use super::common::*;

engine_tests!(
    job_claim_order_and_caps,
    expired_leases_and_queue_heads_share_one_order,
    complete_job_settles_with_the_finish_or_not_at_all,
    lease_expiry_resumes_on_other_worker,
    build_slots_go_to_the_most_urgent,
);

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
            rotation: None,
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
    // Poll until the zero-length lease is seen as expired.
    let b = eventually(
        "the expired job to be reclaimed",
        Duration::from_secs(10),
        || async {
            other
                .claim_job("B", Duration::from_secs(60), &caps)
                .await
                .unwrap()
        },
    )
    .await;
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
                rotation: None,
            },
        })
        .await
        .unwrap();
    assert_eq!(
        s.claim_job("w2", lease, &caps).await.unwrap().unwrap().id,
        update
    );
}
