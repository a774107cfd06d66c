//! The housekeeper (`octavia-housekeeping`, and a role of the all-in-one): two loops on the
//! store, each safe to run in any number of processes against one database.
//!
//! * cleanup, every `cleanup_interval`: purge DELETED amphorae and load balancers older
//!   than their expiry age, and finished jobs older than `job_expiry_age`
//!   ([`octavia_db::Store::purge_expired`]);
//! * certificate renewal, every `cert_interval`: claim the amphorae whose certificate
//!   expires within `cert_expiry_buffer` and queue a renewal job for each
//!   ([`octavia_db::Store::claim_certificate_renewals`]); a worker runs it.
//!
//! What is due is decided by `octavia_model::housekeeping`; this crate only keeps time,
//! logs and counts. *It never runs a flow and never calls a driver.*

use std::future::Future;
use std::time::Duration;

use octavia_db::Store;
use octavia_model::housekeeping::HousekeepingPolicy;

/// What the housekeeper does and how often (`[house_keeping]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HousekeepingSettings {
    /// The ages and the renewal buffer.
    pub policy: HousekeepingPolicy,
    /// Time between two cleanup passes.
    pub cleanup_interval: Duration,
    /// Time between two looks for certificates due for renewal.
    pub cert_interval: Duration,
    /// Most renewals queued per look.
    pub max_renewals: usize,
}

/// One cleanup pass at the current time; logged and counted.
pub async fn cleanup_once(
    store: &Store,
    policy: &HousekeepingPolicy,
) -> Result<octavia_db::PurgeReport, octavia_db::DbError> {
    let cutoffs = policy.purge_cutoffs(octavia_model::now());
    let report = store.purge_expired(cutoffs).await?;
    if report != octavia_db::PurgeReport::default() {
        tracing::info!(
            amphorae = report.amphorae,
            load_balancers = report.load_balancers,
            jobs = report.jobs,
            "purged expired rows"
        );
    }
    metrics::counter!("octavia_housekeeping_purged_total", "kind" => "amphora")
        .increment(report.amphorae);
    metrics::counter!("octavia_housekeeping_purged_total", "kind" => "load_balancer")
        .increment(report.load_balancers);
    metrics::counter!("octavia_housekeeping_purged_total", "kind" => "job").increment(report.jobs);
    Ok(report)
}

/// One look for certificates due for renewal at the current time: claims them and queues
/// their renewal jobs. Returns how many were queued.
pub async fn renew_certificates_once(
    store: &Store,
    settings: &HousekeepingSettings,
) -> Result<usize, octavia_db::DbError> {
    let before = settings.policy.renew_expiring_before(octavia_model::now());
    let claimed = store
        .claim_certificate_renewals(before, settings.max_renewals)
        .await?;
    for (amphora, job) in &claimed {
        tracing::info!(amphora_id = %amphora, job_id = %job, "amphora certificate renewal queued");
    }
    metrics::counter!("octavia_certificate_renewals_queued_total").increment(claimed.len() as u64);
    Ok(claimed.len())
}

/// Run both loops until `shutdown` resolves. A failed pass (the database away) is logged
/// and tried again at the next tick.
pub async fn run(store: Store, settings: HousekeepingSettings, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    tracing::info!(
        cleanup_interval = ?settings.cleanup_interval,
        cert_interval = ?settings.cert_interval,
        cert_expiry_buffer = ?settings.policy.cert_expiry_buffer,
        "housekeeping started"
    );
    let mut cleanup = tokio::time::interval(settings.cleanup_interval);
    let mut certs = tokio::time::interval(settings.cert_interval);
    for tick in [&mut cleanup, &mut certs] {
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("housekeeping stopped");
                return;
            }
            _ = cleanup.tick() => {
                if let Err(error) = cleanup_once(&store, &settings.policy).await {
                    tracing::warn!(%error, "cleanup pass failed; trying again next interval");
                }
            }
            _ = certs.tick() => {
                if let Err(error) = renew_certificates_once(&store, &settings).await {
                    tracing::warn!(%error, "certificate renewal pass failed; trying again next interval");
                }
            }
        }
    }
}
