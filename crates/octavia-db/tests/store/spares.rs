//! The spare pool: the housekeeper's passes, takes by builds, silent spares.

use octavia_db::*;
use octavia_model::health::HealthReport;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(
    pools_fill_once_and_shrink_to_their_size,
    a_spare_is_taken_once_and_found_by_its_job,
    silent_spares_are_retired_never_failed_over,
);

fn zones(z: &[Option<&str>]) -> Vec<Option<String>> {
    z.iter().map(|z| z.map(str::to_string)).collect()
}

/// The workers' part of a spare build, done by hand: the queued row becomes READY with an
/// instance.
async fn build(s: &Store, id: AmphoraId) {
    let mut a = s.get_amphora(id).await.unwrap().unwrap();
    assert_eq!(a.status, ProvisioningStatus::PendingCreate);
    assert_eq!(a.load_balancer_id, None);
    a.compute_id = Some(format!("c-{}", &id.to_string()[..8]));
    a.lb_network_ip = Some("192.168.0.9".into());
    a.image_id = Some("img".into());
    a.status = ProvisioningStatus::Ready;
    s.save_amphora(&a).await.unwrap();
}

fn spare_heartbeat(id: AmphoraId, at: Timestamp) -> HeartbeatRecord {
    HeartbeatRecord {
        amphora_id: id,
        received_at: at,
        refresh_health: true,
        report: HealthReport::default(),
        stats: Vec::new(),
        stats_are_deltas: true,
        vip_held: None,
        heartbeat_key_id: None,
    }
}

/// Two housekeepers pass at once over two zones with size 2: exactly two spares per zone
/// are queued (build jobs of class Operator, rows PENDING_CREATE in their zone, counted
/// as building); passes after that queue nothing. Size 1 retires one READY spare per
/// zone (delete job, PENDING_DELETE); a zone no longer served gives up all its READY
/// spares; a spare still being built is never cut short.
async fn pools_fill_once_and_shrink_to_their_size(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let two = zones(&[Some("az1"), Some("az2")]);
    let before = job_total(s).await;
    let (a, b) = tokio::join!(s.keep_spare_pools(&two, 2), s.keep_spare_pools(&two, 2));
    let (a, b) = (a.unwrap(), b.unwrap());
    let queued: Vec<_> = a.queued.iter().chain(&b.queued).collect();
    assert_eq!(queued.len(), 4, "{a:?} {b:?}");
    assert_eq!(job_total(s).await, before + 4);
    for (amp, zone, job) in &queued {
        let job = s.get_job(*job).await.unwrap().unwrap();
        assert_eq!(job.spec.kind(), "create_amphora");
        assert_eq!(job.class, JobClass::Operator);
        assert!(job.spec.builds_amphorae());
        let row = s.get_amphora(*amp).await.unwrap().unwrap();
        assert_eq!(row.cached_zone, *zone);
        assert_eq!(row.status, ProvisioningStatus::PendingCreate);
    }
    let pools = s.spare_pools().await.unwrap();
    assert_eq!(
        pools,
        vec![
            SparePool {
                zone: Some("az1".into()),
                ready: 0,
                building: 2
            },
            SparePool {
                zone: Some("az2".into()),
                ready: 0,
                building: 2
            },
        ]
    );
    let again = s.keep_spare_pools(&two, 2).await.unwrap();
    assert!(
        again.queued.is_empty() && again.retired.is_empty(),
        "{again:?}"
    );

    for (amp, _, _) in &queued {
        build(s, *amp).await;
    }
    let shrunk = s.keep_spare_pools(&two, 1).await.unwrap();
    assert_eq!(shrunk.retired.len(), 2, "{shrunk:?}");
    for (amp, job) in &shrunk.retired {
        assert_eq!(
            s.get_amphora(*amp).await.unwrap().unwrap().status,
            ProvisioningStatus::PendingDelete
        );
        let job = s.get_job(*job).await.unwrap().unwrap();
        assert_eq!(job.spec.kind(), "delete_amphora");
        s.settle_success(&job.spec).await.unwrap();
    }
    let pools = s.spare_pools().await.unwrap();
    assert!(
        pools.iter().all(|p| p.ready == 1 && p.building == 0),
        "{pools:?}"
    );

    // az2 no longer served: its READY spare goes; az1's new one, still building, stays.
    let one = zones(&[Some("az1")]);
    let grown = s.keep_spare_pools(&one, 2).await.unwrap();
    assert_eq!(grown.queued.len(), 1, "{grown:?}");
    assert_eq!(grown.retired.len(), 1, "{grown:?}");
    let retired = s.get_amphora(grown.retired[0].0).await.unwrap().unwrap();
    assert_eq!(retired.cached_zone.as_deref(), Some("az2"));
    let none = s.keep_spare_pools(&one, 0).await.unwrap();
    assert_eq!(none.retired.len(), 1, "only the READY one: {none:?}");
    assert_eq!(
        s.spare_pools().await.unwrap(),
        vec![SparePool {
            zone: Some("az1".into()),
            ready: 0,
            building: 1
        }]
    );
}

/// Two jobs race for the one READY spare: one takes it (ALLOCATED, on its load balancer
/// with the role's VRRP settings), the other gets `false` and changes nothing; the winner
/// finds it by job. A taken spare is no longer offered nor counted in its pool.
async fn a_spare_is_taken_once_and_found_by_its_job(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let lb = active_lb(s).await;
    let pass = s.keep_spare_pools(&[None], 1).await.unwrap();
    let spare = pass.queued[0].0;
    build(s, spare).await;
    s.record_heartbeats(&[spare_heartbeat(spare, now())])
        .await
        .unwrap();
    let offered = s.ready_spares().await.unwrap();
    assert_eq!(offered.len(), 1);
    assert_eq!(offered[0].amphora.id, spare);
    assert_eq!(offered[0].pool, None);
    assert!(
        offered[0].last_heartbeat.is_some(),
        "a READY spare's heartbeat is recorded"
    );

    let (j1, j2) = (JobId::new(), JobId::new());
    let take = |job| SpareTake {
        job,
        load_balancer: lb.id,
        role: AmphoraRole::Master,
        vrrp_priority: Some(100),
        vrrp_id: Some(1),
    };
    let (a, b) = tokio::join!(s.take_spare(spare, take(j1)), s.take_spare(spare, take(j2)));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a ^ b, "exactly one take wins: {a} {b}");
    let (winner, loser) = if a { (j1, j2) } else { (j2, j1) };
    assert_eq!(
        s.spares_taken_by(winner).await.unwrap(),
        vec![(AmphoraRole::Master, spare)]
    );
    assert!(s.spares_taken_by(loser).await.unwrap().is_empty());
    let row = s.get_amphora(spare).await.unwrap().unwrap();
    assert_eq!(row.status, ProvisioningStatus::Allocated);
    assert_eq!(row.load_balancer_id, Some(lb.id));
    assert_eq!(row.role, Some(AmphoraRole::Master));
    assert_eq!((row.vrrp_priority, row.vrrp_id), (Some(100), Some(1)));
    assert!(s.ready_spares().await.unwrap().is_empty());
    assert!(s.spare_pools().await.unwrap().is_empty());
    // The next pass builds a replacement.
    assert_eq!(
        s.keep_spare_pools(&[None], 1).await.unwrap().queued.len(),
        1
    );
}

/// A READY spare whose heartbeats stopped (or never came) is retired — PENDING_DELETE and
/// a delete job, never a failover — while a heartbeating one stays; the silent-amphora
/// sweep never claims a spare.
async fn silent_spares_are_retired_never_failed_over(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let pass = s.keep_spare_pools(&[None], 2).await.unwrap();
    let (quiet, alive) = (pass.queued[0].0, pass.queued[1].0);
    build(s, quiet).await;
    build(s, alive).await;
    let t0 = now();
    s.record_heartbeats(&[
        spare_heartbeat(quiet, t0 - chrono::Duration::seconds(60)),
        spare_heartbeat(alive, t0),
    ])
    .await
    .unwrap();
    let sweep = s
        .sweep_stale_amphorae(SweepOptions {
            stale_before: t0 - chrono::Duration::seconds(30),
            suspect_before: t0 - chrono::Duration::seconds(20),
            failover_threshold: None,
            max_claims: 10,
        })
        .await
        .unwrap();
    assert!(sweep.claimed.is_empty(), "{sweep:?}");
    let retired = s
        .retire_silent_spares(t0 - chrono::Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(retired, vec![quiet]);
    assert_eq!(
        s.get_amphora(quiet).await.unwrap().unwrap().status,
        ProvisioningStatus::PendingDelete
    );
    assert_eq!(
        s.get_amphora(alive).await.unwrap().unwrap().status,
        ProvisioningStatus::Ready
    );
    // Retired once.
    assert!(s
        .retire_silent_spares(t0 - chrono::Duration::seconds(30))
        .await
        .unwrap()
        .is_empty());
}
