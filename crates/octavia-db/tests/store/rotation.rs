//! Image rotation jobs: queued without locking, held back per load balancer and by the
//! batch's rate, locked when they start, skipped when there is nothing left to rotate,
//! withdrawn by `--cancel` only while queued.

use std::time::Duration;

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(
    rotations_start_one_per_load_balancer_in_order,
    rotations_wait_for_the_rate_and_skip_the_deleted,
    cancel_withdraws_only_queued_rotations,
);

fn batch(rate_per_minute: Option<u32>) -> Rotation {
    Rotation {
        batch: uuid::Uuid::new_v4(),
        rate_per_minute,
    }
}

fn with_role(lb: LoadBalancerId, role: AmphoraRole) -> Amphora {
    Amphora {
        role: Some(role),
        ..amphora(Some(lb))
    }
}

async fn claim(s: &Store) -> Option<ClaimedJob> {
    s.claim_job("w", Duration::from_secs(60), &ClassCaps::default())
        .await
        .unwrap()
}

/// Finish the jobs the fixtures left queued (their objects are settled already).
async fn drain(s: &Store) {
    while let Some(j) = claim(s).await {
        assert!(s.finish_job(j.id, "w", JobState::Done, None).await.unwrap());
    }
}

async fn rotations_start_one_per_load_balancer_in_order(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let pair = active_lb(s).await;
    let single = active_lb(s).await;
    let backup = with_role(pair.id, AmphoraRole::Backup);
    let master = with_role(pair.id, AmphoraRole::Master);
    let alone = amphora(Some(single.id));
    for a in [&backup, &master, &alone] {
        s.save_amphora(a).await.unwrap();
    }
    drain(s).await;
    let b = batch(None);
    let jobs = s
        .queue_rotations(b, &[backup.id, master.id, alone.id])
        .await
        .unwrap();
    assert_eq!(jobs.len(), 3);
    // Queued rotations lock nothing: the tenant may still write.
    assert_eq!(lb_status(s, pair.id).await, ProvisioningStatus::Active);
    // A tenant job queued after them runs before them.
    let (_, tenant) = s.update_load_balancer(&pair, None).await.unwrap();
    let first = claim(s).await.unwrap();
    assert_eq!(first.id, tenant, "tenant operations go before rotations");
    // While the tenant's job holds the pair, only the SINGLE's rotation may start.
    let second = claim(s).await.unwrap();
    assert_eq!(second.id, jobs[2]);
    assert_eq!(second.spec.rotation, Some(b));
    assert_eq!(
        lb_status(s, single.id).await,
        ProvisioningStatus::PendingUpdate
    );
    assert!(claim(s).await.is_none(), "the pair is busy");
    assert!(s
        .complete_job(first.id, "w", &first.spec, None)
        .await
        .unwrap());
    // BACKUP before MASTER, and the MASTER only once the BACKUP's job finished.
    let third = claim(s).await.unwrap();
    assert_eq!(
        (third.id, third.spec.amphora_id),
        (jobs[0], Some(backup.id))
    );
    assert_eq!(
        lb_status(s, pair.id).await,
        ProvisioningStatus::PendingUpdate
    );
    assert!(
        claim(s).await.is_none(),
        "one amphora of a load balancer at a time"
    );
    assert!(s
        .complete_job(third.id, "w", &third.spec, None)
        .await
        .unwrap());
    assert_eq!(lb_status(s, pair.id).await, ProvisioningStatus::Active);
    let fourth = claim(s).await.unwrap();
    assert_eq!(
        (fourth.id, fourth.spec.amphora_id),
        (jobs[1], Some(master.id))
    );
    let states: Vec<JobState> = s
        .rotation_jobs(Some(b.batch))
        .await
        .unwrap()
        .iter()
        .map(|j| j.state)
        .collect();
    assert_eq!(
        states,
        [JobState::Done, JobState::Running, JobState::Running]
    );
    // A failed rotation settles as an amphora failover does: amphora ERROR, LB ACTIVE.
    assert!(s
        .complete_job(second.id, "w", &second.spec, Some("boom"))
        .await
        .unwrap());
    assert_eq!(lb_status(s, single.id).await, ProvisioningStatus::Active);
    assert_eq!(amphora_status(s, alone.id).await, ProvisioningStatus::Error);
}

async fn rotations_wait_for_the_rate_and_skip_the_deleted(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let (one, two, three) = (active_lb(s).await, active_lb(s).await, active_lb(s).await);
    let (a1, a2) = (amphora(Some(one.id)), amphora(Some(two.id)));
    let gone = amphora(Some(three.id));
    for a in [&gone, &a1, &a2] {
        s.save_amphora(a).await.unwrap();
    }
    drain(s).await;
    // A rotation whose amphora was replaced meanwhile (an automatic failover) is done
    // with nothing to do, and locks nothing.
    let skipped = s.queue_rotations(batch(None), &[gone.id]).await.unwrap();
    s.save_amphora(&Amphora {
        status: ProvisioningStatus::Deleted,
        ..gone.clone()
    })
    .await
    .unwrap();
    assert!(claim(s).await.is_none());
    let rec = s.get_job(skipped[0]).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Done);
    assert!(
        rec.error.as_deref().unwrap_or("").starts_with("skipped"),
        "{rec:?}"
    );
    assert_eq!(lb_status(s, three.id).await, ProvisioningStatus::Active);

    // One start a minute: the second waits although its load balancer is free.
    let b = batch(Some(1));
    let jobs = s.queue_rotations(b, &[a1.id, a2.id]).await.unwrap();
    assert_eq!(claim(s).await.unwrap().id, jobs[0]);
    assert!(claim(s).await.is_none(), "the rate holds the second back");
    assert_eq!(
        s.get_job(jobs[1]).await.unwrap().unwrap().state,
        JobState::Queued
    );
    // Another batch without a rate is not held back by it.
    let a3 = amphora(Some(three.id));
    s.save_amphora(&a3).await.unwrap();

    let other = s.queue_rotations(batch(None), &[a3.id]).await.unwrap();
    assert_eq!(claim(s).await.unwrap().id, other[0]);

    // Only live amphorae of a load balancer can be queued.
    assert!(matches!(
        s.queue_rotations(batch(None), &[gone.id]).await,
        Err(DbError::NotFound { .. })
    ));
    let spare = amphora(None);
    s.save_amphora(&spare).await.unwrap();
    assert!(matches!(
        s.queue_rotations(batch(None), &[a1.id, spare.id]).await,
        Err(DbError::Conflict(_))
    ));
}

async fn cancel_withdraws_only_queued_rotations(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let l = active_lb(s).await;
    let backup = with_role(l.id, AmphoraRole::Backup);
    let master = with_role(l.id, AmphoraRole::Master);
    for a in [&backup, &master] {
        s.save_amphora(a).await.unwrap();
    }
    drain(s).await;
    let b = batch(None);
    let jobs = s.queue_rotations(b, &[backup.id, master.id]).await.unwrap();
    let running = claim(s).await.unwrap();
    assert_eq!(running.id, jobs[0]);
    // Another batch's queued rotation is left alone by a cancel of this batch.
    let other_lb = active_lb(s).await;
    let other_amp = amphora(Some(other_lb.id));
    s.save_amphora(&other_amp).await.unwrap();
    // The new load balancer's create job: claimed and finished.
    let create = claim(s).await.unwrap();
    assert!(s
        .finish_job(create.id, "w", JobState::Done, None)
        .await
        .unwrap());
    let other = batch(None);
    s.queue_rotations(other, &[other_amp.id]).await.unwrap();

    assert_eq!(s.cancel_rotations(Some(b.batch)).await.unwrap(), 1);
    let left: Vec<JobId> = s
        .rotation_jobs(Some(b.batch))
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(left, [jobs[0]], "the running rotation finishes");
    assert_eq!(s.rotation_jobs(Some(other.batch)).await.unwrap().len(), 1);
    assert_eq!(s.cancel_rotations(None).await.unwrap(), 1);
    assert!(s.rotation_jobs(Some(other.batch)).await.unwrap().is_empty());
    assert_eq!(s.cancel_rotations(None).await.unwrap(), 0);
    assert!(s
        .complete_job(running.id, "w", &running.spec, None)
        .await
        .unwrap());
    assert_eq!(lb_status(s, l.id).await, ProvisioningStatus::Active);
    // Nothing else was left to claim.
    assert!(claim(s).await.is_none());
}
