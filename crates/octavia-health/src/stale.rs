//! The stale-amphora checker (reference §6): every `health_check_interval` it asks the store
//! to sweep — resume FAILOVER_STOPPED amphorae that heartbeat again, trip the circuit breaker
//! when too many are silent at once, else claim each silent amphora and queue its failover
//! (class Failover, before every tenant and operator job).
//!
//! It judges no one during its first `heartbeat_timeout` (it has not been listening long
//! enough to know who is silent), nor during the first `heartbeat_timeout` after the database
//! comes back from an outage (heartbeats of that time were not recorded).
//!
//! Metrics: `octavia_stale_amphorae` (gauge, expired in the last sweep),
//! `octavia_failover_stopped_amphorae` (gauge), `octavia_failover_circuit_open` (gauge, 1
//! while the breaker holds amphorae), `octavia_failovers_queued_total{cause="heartbeat"}`.

use std::future::Future;
use std::time::Duration;

use octavia_db::{Store, SweepOptions};
use tokio::time::Instant;

/// Settings of the checker (`[health_manager]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleSettings {
    /// An amphora whose newest heartbeat is older than this is stale (`heartbeat_timeout`).
    pub heartbeat_timeout: Duration,
    /// Time between sweeps (`health_check_interval`).
    pub health_check_interval: Duration,
    /// The circuit breaker (`failover_threshold`); `None` disables it.
    pub failover_threshold: Option<usize>,
    /// Most failovers queued per sweep (`failover_threads`).
    pub max_claims: usize,
    /// How often amphorae heartbeat (`heartbeat_interval`): one that missed its last
    /// heartbeat is suspect and counts towards the circuit breaker.
    pub heartbeat_interval: Duration,
}

impl Default for StaleSettings {
    fn default() -> Self {
        Self {
            heartbeat_timeout: Duration::from_secs(60),
            health_check_interval: Duration::from_secs(3),
            failover_threshold: None,
            max_claims: 10,
            heartbeat_interval: Duration::from_secs(10),
        }
    }
}

/// Run the checker until `shutdown` resolves.
///
/// `settings` may change while it runs (the daemon re-read its configuration): each sweep
/// uses the newest.
pub async fn run_stale_checker(
    store: Store,
    mut live: tokio::sync::watch::Receiver<StaleSettings>,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let mut settings = *live.borrow_and_update();
    // When the checker may judge: one heartbeat_timeout after it (or the database) came up.
    let mut judge_from = Some(Instant::now() + settings.heartbeat_timeout);
    tracing::info!(
        heartbeat_timeout = ?settings.heartbeat_timeout,
        health_check_interval = ?settings.health_check_interval,
        failover_threshold = ?settings.failover_threshold,
        "stale amphora checker started; judging after one heartbeat timeout"
    );
    // Amphorae whose failover waits for their busy load balancer, warned about once.
    let mut deferred = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(settings.health_check_interval) => {}
        }
        if live.has_changed().unwrap_or(false) {
            settings = *live.borrow_and_update();
            tracing::info!(
                heartbeat_timeout = ?settings.heartbeat_timeout,
                health_check_interval = ?settings.health_check_interval,
                failover_threshold = ?settings.failover_threshold,
                "stale amphora checker settings changed"
            );
        }
        match judge_from {
            None => {
                // The database was lost: wait for it, then for one more timeout.
                if store.ping().await.is_ok() {
                    tracing::info!(
                        "database is back; judging amphorae after one heartbeat timeout"
                    );
                    judge_from = Some(Instant::now() + settings.heartbeat_timeout);
                }
                continue;
            }
            Some(t) if Instant::now() < t => continue,
            Some(_) => {}
        }
        if let Err(error) = sweep(&store, &settings, &mut deferred).await {
            tracing::warn!(%error, "stale amphora check failed; waiting for the database");
            judge_from = None;
        }
    }
}

/// One sweep, logged and counted. An amphora whose failover must wait for its busy load
/// balancer is warned about once while it waits (`deferred` remembers it), not every sweep.
async fn sweep(
    store: &Store,
    settings: &StaleSettings,
    deferred: &mut std::collections::HashSet<octavia_model::AmphoraId>,
) -> Result<(), octavia_db::DbError> {
    let timeout =
        chrono::Duration::from_std(settings.heartbeat_timeout).unwrap_or(chrono::Duration::MAX);
    let suspect = settings
        .heartbeat_timeout
        .saturating_sub(settings.heartbeat_interval);
    let suspect = chrono::Duration::from_std(suspect).unwrap_or(timeout);
    let now = octavia_model::now();
    let out = store
        .sweep_stale_amphorae(SweepOptions {
            stale_before: now - timeout,
            suspect_before: now - suspect,
            failover_threshold: settings.failover_threshold,
            max_claims: settings.max_claims,
        })
        .await?;
    for amp in &out.resumed {
        tracing::info!(amphora_id = %amp, "heartbeats resumed; amphora FAILOVER_STOPPED -> ALLOCATED");
    }
    if !out.stopped.is_empty() {
        tracing::error!(
            threshold = settings.failover_threshold.unwrap_or(0),
            stopped = out.stopped.len(),
            "Stale amphora count reached the threshold ({}). {} amphorae were set into \
             FAILOVER_STOPPED status.",
            settings.failover_threshold.unwrap_or(0),
            out.stopped.len()
        );
    }
    for (amp, lb, job) in &out.claimed {
        tracing::info!(
            amphora_id = %amp,
            load_balancer_id = ?lb,
            job_id = %job,
            "Stale amphora's id is: {amp}; failover queued"
        );
    }
    let waiting: std::collections::HashSet<_> = out.deferred.iter().map(|(a, _)| *a).collect();
    for (amp, why) in &out.deferred {
        if deferred.contains(amp) {
            tracing::debug!(amphora_id = %amp, reason = %why, "stale amphora's load balancer still busy");
        } else {
            tracing::warn!(amphora_id = %amp, reason = %why, "stale amphora's load balancer is busy; its failover waits until the load balancer is free");
        }
    }
    *deferred = waiting;
    // A silent spare is replaced, never failed over: its delete is queued and the
    // housekeeper's next pass builds another. Not while the circuit breaker holds
    // amphorae: silence everywhere is more likely this side's network than dead spares.
    if out.failover_stopped == 0 {
        for amp in store.retire_silent_spares(now - timeout).await? {
            tracing::warn!(amphora_id = %amp, "spare amphora stopped heartbeating; its delete is queued and the spare pool builds another");
            metrics::counter!("octavia_spare_amphorae_retired_total", "reason" => "silent")
                .increment(1);
        }
    }
    metrics::gauge!("octavia_stale_amphorae").set(out.stale as f64);
    metrics::gauge!("octavia_failover_stopped_amphorae").set(out.failover_stopped as f64);
    metrics::gauge!("octavia_failover_circuit_open").set(if out.failover_stopped > 0 {
        1.0
    } else {
        0.0
    });
    if !out.claimed.is_empty() {
        metrics::counter!("octavia_failovers_queued_total", "cause" => "heartbeat")
            .increment(out.claimed.len() as u64);
    }
    Ok(())
}
