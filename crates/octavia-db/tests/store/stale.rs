//! The stale-amphora sweep: claims and the circuit breaker.

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(
    stale_amphora_is_claimed_exactly_once,
    circuit_breaker_stops_and_resumes,
    breaker_counts_amphorae_about_to_go_stale,
);

fn sweep_at(now: Timestamp, threshold: Option<usize>) -> SweepOptions {
    SweepOptions {
        stale_before: now - chrono::Duration::seconds(3),
        suspect_before: now - chrono::Duration::seconds(2),
        failover_threshold: threshold,
        max_claims: 10,
    }
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
