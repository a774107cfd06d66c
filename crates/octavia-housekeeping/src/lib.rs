//! The housekeeper (`octavia-housekeeping`, and a role of the all-in-one): two loops on the
//! store, each safe to run in any number of processes against one database.
//!
//! * cleanup, every `cleanup_interval`: purge DELETED amphorae and load balancers older
//!   than their expiry age, and finished jobs older than `job_expiry_age`
//!   ([`octavia_db::Store::purge_expired`]);
//! * certificate renewal, every `cert_interval`: claim the amphorae whose certificate
//!   expires within `cert_expiry_buffer` and queue a renewal job for each
//!   ([`octavia_db::Store::claim_certificate_renewals`]); a worker runs it;
//! * the spare pool, every `spare_check_interval` and whenever its settings change
//!   (SIGHUP): bring each pool to `spare_amphora_pool_size`
//!   ([`octavia_db::Store::keep_spare_pools`]: build jobs for the missing spares, delete
//!   jobs for the surplus); workers build them.
//!
//! What is due is decided by `octavia_model::housekeeping`; this crate only keeps time,
//! logs and counts. *It never runs a flow and never calls a driver.*

use std::future::Future;
use std::time::Duration;

use octavia_db::Store;
use octavia_model::housekeeping::HousekeepingPolicy;
use tokio::sync::watch;

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
    if let Some(soonest) = store.soonest_certificate_expiry().await? {
        metrics::gauge!("octavia_amphora_certificate_expiry_timestamp_seconds")
            .set(soonest.and_utc().timestamp() as f64);
    }
    Ok(claimed.len())
}

/// The spare pool (`[house_keeping] spare_amphora_pool_size`, `spare_check_interval`);
/// changes without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpareSettings {
    /// Spares kept per pool (0: no spare pool; the surplus of a smaller size is deleted).
    pub pool_size: usize,
    /// One pool per entry: the compute zones amphorae can be placed in (`None`: the pool
    /// of no zone, when the compute service has no zones).
    pub zones: Vec<Option<String>>,
    /// Time between two passes.
    pub check_interval: Duration,
}

/// One spare pool pass: build what is missing, delete the surplus; logged, counted and
/// the pools' sizes exported.
pub async fn keep_spares_once(
    store: &Store,
    settings: &SpareSettings,
) -> Result<octavia_db::SparePass, octavia_db::DbError> {
    let pass = store
        .keep_spare_pools(&settings.zones, settings.pool_size)
        .await?;
    for (amphora, zone, job) in &pass.queued {
        tracing::info!(amphora_id = %amphora, zone = zone.as_deref().unwrap_or("-"), job_id = %job, "spare amphora build queued");
    }
    for (amphora, job) in &pass.retired {
        tracing::info!(amphora_id = %amphora, job_id = %job, "surplus spare amphora delete queued");
    }
    metrics::counter!("octavia_spare_amphorae_queued_total").increment(pass.queued.len() as u64);
    metrics::counter!("octavia_spare_amphorae_retired_total", "reason" => "surplus")
        .increment(pass.retired.len() as u64);
    metrics::gauge!("octavia_spare_pool_size").set(settings.pool_size as f64);
    let mut zones: Vec<&Option<String>> = settings.zones.iter().collect();
    zones.extend(pass.pools.iter().map(|p| &p.zone));
    for zone in zones {
        let pool = pass.pools.iter().find(|p| &p.zone == zone);
        let label = zone.clone().unwrap_or_default();
        metrics::gauge!("octavia_spare_amphorae", "zone" => label.clone(), "state" => "ready")
            .set(pool.map_or(0, |p| p.ready) as f64);
        metrics::gauge!("octavia_spare_amphorae", "zone" => label, "state" => "building")
            .set(pool.map_or(0, |p| p.building) as f64);
    }
    Ok(pass)
}

/// Run the loops until `shutdown` resolves. A failed pass (the database away) is logged
/// and tried again at the next tick. `spares` carries the spare pool's settings; a change
/// takes effect at once.
pub async fn run(
    store: Store,
    settings: HousekeepingSettings,
    mut spares: watch::Receiver<SpareSettings>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    tracing::info!(
        cleanup_interval = ?settings.cleanup_interval,
        cert_interval = ?settings.cert_interval,
        cert_expiry_buffer = ?settings.policy.cert_expiry_buffer,
        "housekeeping started"
    );
    let mut cleanup = tokio::time::interval(settings.cleanup_interval);
    let mut certs = tokio::time::interval(settings.cert_interval);
    let mut spare_settings = spares.borrow_and_update().clone();
    let mut pool = tokio::time::interval(spare_settings.check_interval);
    for tick in [&mut cleanup, &mut certs, &mut pool] {
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut spares_open = true;
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
            changed = spares.changed(), if spares_open => {
                if changed.is_err() {
                    spares_open = false;
                    continue;
                }
                let new = spares.borrow_and_update().clone();
                if new.check_interval != spare_settings.check_interval {
                    pool = tokio::time::interval(new.check_interval);
                    pool.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                }
                tracing::info!(from = spare_settings.pool_size, to = new.pool_size, "spare pool settings changed");
                spare_settings = new;
                pool.reset_immediately();
            }
            _ = pool.tick() => {
                if let Err(error) = keep_spares_once(&store, &spare_settings).await {
                    tracing::warn!(%error, "spare pool pass failed; trying again next interval");
                }
            }
        }
    }
}
