//! Housekeeping: certificate renewal claims and purges of old rows.

use std::time::Duration;

use chrono::Duration as Span;
use octavia_db::*;
use octavia_model::housekeeping::PurgeCutoffs;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(
    due_certificates_are_claimed_once_and_released_by_settlement,
    a_ready_spares_certificate_is_renewed_too,
    one_amphora_is_claimed_for_renewal_whatever_its_expiry,
    purge_removes_only_rows_old_enough,
    concurrent_purges_delete_each_row_once,
);

async fn save(
    s: &Store,
    lb: LoadBalancerId,
    status: ProvisioningStatus,
    cert: Option<Timestamp>,
) -> AmphoraId {
    let a = Amphora {
        status,
        cert_expiration: cert,
        ..amphora(Some(lb))
    };
    s.save_amphora(&a).await.unwrap();
    a.id
}

/// Two housekeepers look at once: each due amphora (expiring inside the buffer, or with no
/// recorded expiry) gets exactly one renewal job (class Operator, no load balancer lock);
/// amphorae far from expiry, DELETED or not yet built are left alone. A claimed amphora is
/// not claimed again, even when a flow saves a copy it read before the claim; settling the
/// job, success or failure, releases it and changes no status.
async fn due_certificates_are_claimed_once_and_released_by_settlement(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let lb = active_lb(s).await;
    let t0 = now();
    let soon = save(
        s,
        lb.id,
        ProvisioningStatus::Allocated,
        Some(t0 + Span::hours(1)),
    )
    .await;
    let unknown = save(s, lb.id, ProvisioningStatus::Allocated, None).await;
    let far = save(
        s,
        lb.id,
        ProvisioningStatus::Allocated,
        Some(t0 + Span::days(30)),
    )
    .await;
    save(s, lb.id, ProvisioningStatus::Deleted, Some(t0)).await;
    save(s, lb.id, ProvisioningStatus::Booting, Some(t0)).await;
    let stale_copy = s.get_amphora(soon).await.unwrap().unwrap();

    let before = job_total(s).await;
    let buffer_end = t0 + Span::days(14);
    let (a, b) = tokio::join!(
        s.claim_certificate_renewals(buffer_end, 10),
        s.claim_certificate_renewals(buffer_end, 10),
    );
    let mut claimed: Vec<(AmphoraId, JobId)> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    claimed.sort_by_key(|(amp, _)| (*amp != unknown, amp.to_string()));
    let amps: Vec<AmphoraId> = claimed.iter().map(|(a, _)| *a).collect();
    assert_eq!(amps, vec![unknown, soon], "unknown expiry first, each once");
    assert_eq!(job_total(s).await, before + 2);
    for (amp, job) in &claimed {
        let job = s.get_job(*job).await.unwrap().unwrap();
        assert_eq!(job.spec.action, Action::RotateCertificate);
        assert_eq!(job.spec.kind(), "rotate_certificate_amphora");
        assert_eq!(job.spec.amphora_id, Some(*amp));
        assert_eq!(job.class, JobClass::Operator);
        assert!(s.get_amphora(*amp).await.unwrap().unwrap().cert_busy);
    }
    assert!(!s.get_amphora(far).await.unwrap().unwrap().cert_busy);
    assert_eq!(lb_status(s, lb.id).await, ProvisioningStatus::Active);

    // A flow saving what it read before the claim does not release it.
    s.save_amphora(&stale_copy).await.unwrap();
    assert!(s.get_amphora(soon).await.unwrap().unwrap().cert_busy);
    assert!(s
        .claim_certificate_renewals(buffer_end, 10)
        .await
        .unwrap()
        .is_empty());

    // Renewed: the new expiry is recorded, the claim released, nothing is due any more.
    let renewed_until = t0 + Span::days(30);
    s.record_cert_expiration(soon, renewed_until).await.unwrap();
    let job = s.get_job(claimed[1].1).await.unwrap().unwrap();
    s.settle_success(&job.spec).await.unwrap();
    let amp = s.get_amphora(soon).await.unwrap().unwrap();
    assert!(!amp.cert_busy);
    assert_eq!(amp.cert_expiration, Some(renewed_until));
    assert_eq!(amp.status, ProvisioningStatus::Allocated);

    // Failed: released too, status untouched, and due again at the next look.
    let job = s.get_job(claimed[0].1).await.unwrap().unwrap();
    s.settle_failure(&job.spec).await.unwrap();
    let amp = s.get_amphora(unknown).await.unwrap().unwrap();
    assert!(!amp.cert_busy);
    assert_eq!(amp.status, ProvisioningStatus::Allocated);
    assert_eq!(lb_status(s, lb.id).await, ProvisioningStatus::Active);
    let again = s.claim_certificate_renewals(buffer_end, 10).await.unwrap();
    assert_eq!(
        again.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        vec![unknown]
    );

    // `max` bounds one look.
    let more = save(s, lb.id, ProvisioningStatus::Allocated, Some(t0)).await;
    let other = save(s, lb.id, ProvisioningStatus::Allocated, Some(t0)).await;
    let one = s.claim_certificate_renewals(buffer_end, 1).await.unwrap();
    assert_eq!(one.len(), 1);
    assert!([more, other].contains(&one[0].0));
}

/// `certs rotate-ca` claims one amphora far from expiry: one job, once (a second claim,
/// concurrent or later, gets none while it runs); amphorae not ALLOCATED are not claimed.
async fn one_amphora_is_claimed_for_renewal_whatever_its_expiry(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let lb = active_lb(s).await;
    let far = now() + Span::days(300);
    let amp = save(s, lb.id, ProvisioningStatus::Allocated, Some(far)).await;
    let booting = save(s, lb.id, ProvisioningStatus::Booting, Some(far)).await;
    let before = job_total(s).await;
    let (a, b) = tokio::join!(
        s.claim_certificate_renewal_of(amp),
        s.claim_certificate_renewal_of(amp)
    );
    let jobs: Vec<JobId> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(jobs.len(), 1, "claimed once");
    assert_eq!(job_total(s).await, before + 1);
    let job = s.get_job(jobs[0]).await.unwrap().unwrap();
    assert_eq!(job.spec.kind(), "rotate_certificate_amphora");
    assert_eq!(job.spec.amphora_id, Some(amp));
    assert_eq!(job.class, JobClass::Operator);
    assert!(s.get_amphora(amp).await.unwrap().unwrap().cert_busy);
    assert_eq!(s.claim_certificate_renewal_of(booting).await.unwrap(), None);
    s.settle_success(&job.spec).await.unwrap();
    assert!(s.claim_certificate_renewal_of(amp).await.unwrap().is_some());
}

/// DELETED amphorae and load balancers go once older than their cutoff (an amphora with a
/// heartbeat newer than its cutoff stays), finished jobs once finished before theirs; live
/// rows, queued jobs and younger rows stay.
async fn purge_removes_only_rows_old_enough(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let fleet = s.seed_heartbeat_fleet(1, PROJECT).await.unwrap();
    let t0 = now();
    s.record_heartbeats(&[heartbeat(&fleet[0], t0)])
        .await
        .unwrap();
    let old = t0 - Span::days(10);
    let deleted_old = |id: AmphoraId, lb: Option<LoadBalancerId>| Amphora {
        status: ProvisioningStatus::Deleted,
        updated_at: Some(old),
        ..Amphora { id, ..amphora(lb) }
    };
    // Heartbeated at t0: stays although DELETED long ago.
    let heard = s.get_amphora(fleet[0].amphora_id).await.unwrap().unwrap();
    s.save_amphora(&Amphora {
        status: ProvisioningStatus::Deleted,
        updated_at: Some(old),
        ..heard
    })
    .await
    .unwrap();
    let gone = AmphoraId::new();
    s.save_amphora(&deleted_old(gone, None)).await.unwrap();
    let live = Amphora {
        updated_at: Some(old),
        ..amphora(None)
    };
    s.save_amphora(&live).await.unwrap();

    // A load balancer deleted now, with a DELETED amphora of its own that stays.
    let lb = active_lb(s).await;
    let young = Amphora {
        status: ProvisioningStatus::Deleted,
        ..amphora(Some(lb.id))
    };
    s.save_amphora(&young).await.unwrap();
    let delete = s.delete_load_balancer(lb.id, false).await.unwrap();
    settle(s, delete).await;
    let kept_lb = active_lb(s).await;

    // One finished job (already settled above: only its row ends), the rest stay queued.
    let caps = ClassCaps::default();
    let claimed = s
        .claim_job("hk-test", Duration::from_secs(30), &caps)
        .await
        .unwrap()
        .expect("a queued job");
    assert!(s
        .finish_job(claimed.id, "hk-test", JobState::Done, None)
        .await
        .unwrap());
    let queued_before = job_total(s).await - 1;

    // Cutoffs one day back: only the old DELETED amphora without fresh heartbeat goes.
    let day_ago = t0 - Span::days(1);
    let report = s
        .purge_expired(PurgeCutoffs {
            amphorae_before: day_ago,
            load_balancers_before: day_ago,
            jobs_before: day_ago,
        })
        .await
        .unwrap();
    assert_eq!(
        report,
        PurgeReport {
            amphorae: 1,
            load_balancers: 0,
            jobs: 0
        }
    );
    assert!(s.get_amphora_any(gone).await.unwrap().is_none());
    assert!(s
        .get_amphora_any(fleet[0].amphora_id)
        .await
        .unwrap()
        .is_some());
    assert!(s.get_amphora_any(live.id).await.unwrap().is_some());

    // Cutoffs in the future: the deleted load balancer and the finished job go too.
    let later = now() + Span::seconds(5);
    let report = s
        .purge_expired(PurgeCutoffs {
            amphorae_before: t0 - Span::days(1),
            load_balancers_before: later,
            jobs_before: later,
        })
        .await
        .unwrap();
    assert_eq!(
        report,
        PurgeReport {
            amphorae: 0,
            load_balancers: 1,
            jobs: 1
        }
    );
    assert!(s.get_load_balancer(lb.id).await.unwrap().is_none());
    assert_eq!(lb_status(s, kept_lb.id).await, ProvisioningStatus::Active);
    let orphan = s.get_amphora_any(young.id).await.unwrap().unwrap();
    assert_eq!(
        orphan.load_balancer_id, None,
        "the reference goes with the row"
    );
    assert!(s.get_job(claimed.id).await.unwrap().is_none());
    assert_eq!(job_total(s).await, queued_before);
}

/// Two housekeepers purge at once: every old row is deleted once, and the two reports add
/// up to exactly what there was.
async fn concurrent_purges_delete_each_row_once(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let old = now() - Span::days(10);
    for _ in 0..30 {
        s.save_amphora(&Amphora {
            status: ProvisioningStatus::Deleted,
            updated_at: Some(old),
            ..amphora(None)
        })
        .await
        .unwrap();
    }
    let cutoffs = PurgeCutoffs {
        amphorae_before: now() - Span::days(1),
        load_balancers_before: now() - Span::days(1),
        jobs_before: now() - Span::days(1),
    };
    let (a, b) = tokio::join!(s.purge_expired(cutoffs), s.purge_expired(cutoffs));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.amphorae + b.amphorae, 30, "{a:?} {b:?}");
    let again = s.purge_expired(cutoffs).await.unwrap();
    assert_eq!(again, PurgeReport::default());
}

/// A READY spare (no load balancer) may wait weeks to be taken: its certificate is renewed
/// like an allocated amphora's.
async fn a_ready_spares_certificate_is_renewed_too(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let spare = Amphora {
        status: ProvisioningStatus::Ready,
        role: None,
        cert_expiration: Some(now() + Span::hours(1)),
        ..amphora(None)
    };
    s.save_amphora(&spare).await.unwrap();
    let claimed = s
        .claim_certificate_renewals(now() + Span::days(14), 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        vec![spare.id]
    );
}
