//! The store side: collect decoded heartbeats into batches (up to `batch_max`, waiting at
//! most `batch_window` after the first), write each batch in one store call, count and log
//! what the store reports back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use octavia_db::{DbError, HeartbeatOutcome, HeartbeatRecord, Store};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::ratelog::RateLog;
use crate::{Counters, HealthSettings, Reject, ZombieSink, ZOMBIE_REPORT_INTERVAL};
use octavia_model::AmphoraId;

/// A decoded heartbeat waiting for the writer, with its arrival instant.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) rec: HeartbeatRecord,
    pub(crate) at: Instant,
}

/// Writes batches until the receiver side closes the channel and it is drained. Up to
/// `settings.writers` batches are written at once (separate transactions): on PostgreSQL a
/// batch spends most of its time waiting for round trips, so two in flight nearly double the
/// rate. Rows are written in id order in every statement, so concurrent batches lock rows in
/// the same order and cannot deadlock; health timestamps only move forward and counters are
/// added, so the order in which two batches commit does not matter.
pub(crate) async fn run(
    store: Store,
    settings: HealthSettings,
    mut rx: mpsc::Receiver<Item>,
    counters: Arc<Counters>,
    zombies: Option<ZombieSink>,
) {
    let zombies = Arc::new(Mutex::new(zombies.map(|sink| Zombies {
        sink,
        reported: HashMap::new(),
    })));
    let holders = Arc::new(Mutex::new(Holders::default()));
    let max = settings.batch_max;
    // SQLite has one writer at a time anyway: concurrent batches would only queue on its lock.
    let writers = match store.engine() {
        octavia_db::Engine::Sqlite => 1,
        octavia_db::Engine::Postgres => settings.writers.max(1),
    };
    let permits = Arc::new(Semaphore::new(writers));
    let log = Arc::new(Mutex::new(RateLog::new(Duration::from_secs(10))));
    let mut tasks = JoinSet::new();
    let mut batch: Vec<Item> = Vec::with_capacity(max);
    loop {
        if rx.recv_many(&mut batch, max).await == 0 {
            break;
        }
        let deadline = tokio::time::Instant::now() + settings.batch_window;
        while batch.len() < max {
            let room = max - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let records = take_records(&mut batch, &settings, &counters);
        let (store, counters, log, zombies, holders) = (
            store.clone(),
            counters.clone(),
            log.clone(),
            zombies.clone(),
            holders.clone(),
        );
        let span = tracing::info_span!("heartbeat_batch", size = records.len());
        tasks.spawn(
            async move {
                let out = write(&store, &records, &counters, &log).await;
                if let Some(out) = out {
                    if let Some(z) = zombies.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                        z.report(
                            out.unknown_amphorae
                                .iter()
                                .chain(&out.without_load_balancer),
                        );
                    }
                    let new = lock(&holders).update(&records, &out);
                    record_holders(&store, &holders, new).await;
                }
                drop(permit);
            }
            .instrument(span),
        );
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a VIP holder's role is taken as recorded before its heartbeats ask the store
/// again: a flow may rewrite roles behind the health manager's back (a failover's
/// replacement is built as MASTER while its peer holds the VIP), and this bounds how long
/// the API shows that.
const ROLE_RECHECK: Duration = Duration::from_secs(10);

/// The amphorae last seen holding their keepalived VIP, so the store is asked to move the
/// MASTER role when a heartbeat says something new (after a takeover, or the first
/// heartbeat after this process started) and every [`ROLE_RECHECK`], not for every
/// heartbeat.
#[derive(Default)]
struct Holders {
    known: HashMap<AmphoraId, Instant>,
}

impl Holders {
    /// Takes in a written batch; returns the amphorae whose role as VIP holder is to be
    /// recorded.
    fn update(&mut self, records: &[HeartbeatRecord], out: &HeartbeatOutcome) -> Vec<AmphoraId> {
        self.update_at(records, out, Instant::now())
    }

    fn update_at(
        &mut self,
        records: &[HeartbeatRecord],
        out: &HeartbeatOutcome,
        now: Instant,
    ) -> Vec<AmphoraId> {
        let dropped: HashSet<&AmphoraId> = out
            .unknown_amphorae
            .iter()
            .chain(&out.without_load_balancer)
            .collect();
        let mut due = Vec::new();
        for r in records {
            if dropped.contains(&r.amphora_id) || r.vip_held != Some(true) {
                self.known.remove(&r.amphora_id);
                continue;
            }
            let fresh = self
                .known
                .get(&r.amphora_id)
                .is_some_and(|at| now.duration_since(*at) < ROLE_RECHECK);
            if !fresh && !due.contains(&r.amphora_id) {
                self.known.insert(r.amphora_id, now);
                due.push(r.amphora_id);
            }
        }
        due
    }

    /// Forget `id`, so its next heartbeat tries again.
    fn forget(&mut self, id: &AmphoraId) {
        self.known.remove(id);
    }
}

/// Records each VIP holder as MASTER (its peers BACKUP); a no-op in the store when the roles
/// are already true.
async fn record_holders(store: &Store, holders: &Mutex<Holders>, new: Vec<AmphoraId>) {
    for id in new {
        match store.record_vip_holder(id).await {
            Ok(0) => {}
            Ok(changed) => {
                tracing::info!(amphora_id = %id, changed, "amphora holds the VIP: recorded as MASTER, its peers as BACKUP");
            }
            Err(error) => {
                lock(holders).forget(&id);
                tracing::warn!(amphora_id = %id, %error, "cannot record the VIP holder's role; retried on its next heartbeat");
            }
        }
    }
}

/// Zombie reports, each amphora at most once per [`ZOMBIE_REPORT_INTERVAL`].
struct Zombies {
    sink: ZombieSink,
    reported: HashMap<AmphoraId, Instant>,
}

impl Zombies {
    fn report<'a>(&mut self, ids: impl Iterator<Item = &'a AmphoraId>) {
        let now = Instant::now();
        self.reported
            .retain(|_, at| now.duration_since(*at) < ZOMBIE_REPORT_INTERVAL);
        for id in ids {
            if self.reported.contains_key(id) {
                continue;
            }
            // Never block heartbeat writing on the reaper: a full queue retries later.
            if self.sink.try_send(*id).is_ok() {
                self.reported.insert(*id, now);
            }
        }
    }
}

/// Drains `batch`, marking heartbeats that waited a whole interval as too slow.
fn take_records(
    batch: &mut Vec<Item>,
    settings: &HealthSettings,
    counters: &Counters,
) -> Vec<HeartbeatRecord> {
    let now = Instant::now();
    let mut slow = 0;
    let records = batch
        .drain(..)
        .map(|mut i| {
            if now.duration_since(i.at) >= settings.heartbeat_interval.max(crate::SLOW_FLOOR) {
                i.rec.refresh_health = false;
                slow += 1;
            }
            i.rec
        })
        .collect();
    if slow > 0 {
        counters.reject(Reject::TooSlow, slow);
        tracing::warn!(
            count = slow,
            "heartbeats processed too slowly, health timestamps not refreshed"
        );
    }
    records
}

async fn write(
    store: &Store,
    records: &[HeartbeatRecord],
    counters: &Counters,
    log: &Mutex<RateLog>,
) -> Option<HeartbeatOutcome> {
    let n = records.len() as u64;
    let start = Instant::now();
    let mut result = store.record_heartbeats(records).await;
    if result.as_ref().is_err_and(DbError::is_retryable) {
        result = store.record_heartbeats(records).await;
    }
    let elapsed = start.elapsed();
    metrics::histogram!("octavia_heartbeat_batch_write_seconds").record(elapsed.as_secs_f64());
    metrics::histogram!("octavia_heartbeat_batch_size").record(n as f64);
    match result {
        Ok(out) => {
            let dropped = account(
                records,
                &out,
                counters,
                &mut log.lock().unwrap_or_else(|e| e.into_inner()),
            );
            counters.written.fetch_add(n - dropped, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                size = n,
                refreshed = out.refreshed,
                status_writes = out.status_writes,
                elapsed_ms = elapsed.as_millis() as u64,
                "heartbeat batch written"
            );
            Some(out)
        }
        Err(e) => {
            counters.reject(Reject::DbError, n);
            let allowed = log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .allow(Reject::DbError.label());
            if let Some(suppressed) = allowed {
                tracing::warn!(error = %e, size = n, suppressed, "heartbeat batch not written");
            }
            None
        }
    }
}

/// Counts and logs what the store reported; returns how many records were dropped.
fn account(
    records: &[HeartbeatRecord],
    out: &HeartbeatOutcome,
    counters: &Counters,
    log: &mut RateLog,
) -> u64 {
    let mut dropped = 0;
    for (ids, reason, what) in [
        (
            &out.unknown_amphorae,
            Reject::UnknownAmphora,
            "heartbeat from an unknown or deleted amphora",
        ),
        (
            &out.without_load_balancer,
            Reject::NoLoadBalancer,
            "heartbeat from an amphora without a load balancer",
        ),
    ] {
        if ids.is_empty() {
            continue;
        }
        let set: HashSet<_> = ids.iter().collect();
        let n = records
            .iter()
            .filter(|r| set.contains(&r.amphora_id))
            .count() as u64;
        dropped += n;
        counters.reject(reason, n);
        if let Some(suppressed) = log.allow(reason.label()) {
            tracing::warn!(amphora_id = %ids[0], count = n, suppressed, "{what}");
        }
    }
    for m in &out.listener_count_mismatches {
        if let Some(suppressed) = log.allow("listener_count") {
            tracing::warn!(
                amphora_id = %m.amphora_id,
                lb_id = %m.load_balancer_id,
                expected = m.expected,
                reported = m.reported,
                suppressed,
                "listener count mismatch, health timestamp not refreshed"
            );
        }
    }
    for (amp, value) in &out.unknown_values {
        if let Some(suppressed) = log.allow("unknown_status") {
            tracing::warn!(amphora_id = %amp, value = %value, suppressed, "unknown status in heartbeat");
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use octavia_model::now;

    fn beat(id: AmphoraId, vip_held: Option<bool>) -> HeartbeatRecord {
        HeartbeatRecord {
            amphora_id: id,
            received_at: now(),
            refresh_health: true,
            report: Default::default(),
            stats: Vec::new(),
            stats_are_deltas: true,
            vip_held,
            heartbeat_key_id: None,
        }
    }

    #[test]
    fn holders_are_recorded_when_new_and_rechecked_after_a_while() {
        let (a, b, gone) = (AmphoraId::new(), AmphoraId::new(), AmphoraId::new());
        let mut h = Holders::default();
        let out = HeartbeatOutcome {
            unknown_amphorae: vec![gone],
            ..Default::default()
        };
        let t0 = Instant::now();
        let batch = [
            beat(a, Some(true)),
            beat(a, Some(true)),
            beat(b, Some(false)),
            beat(gone, Some(true)),
        ];
        assert_eq!(h.update_at(&batch, &out, t0), vec![a]);
        // Known and fresh: nothing to record.
        assert!(h.update_at(&[beat(a, Some(true))], &out, t0).is_empty());
        // The VIP moved to b: b is recorded at once.
        let moved = [beat(a, Some(false)), beat(b, Some(true))];
        assert_eq!(h.update_at(&moved, &out, t0), vec![b]);
        // a takes it back: recorded again, although a was recorded a moment ago.
        assert_eq!(h.update_at(&[beat(a, Some(true))], &out, t0), vec![a]);
        // After ROLE_RECHECK the holder is recorded again (a flow may have rewritten roles).
        let later = t0 + ROLE_RECHECK;
        assert_eq!(h.update_at(&[beat(a, Some(true))], &out, later), vec![a]);
        // No keepalived: never recorded.
        assert!(h.update_at(&[beat(b, None)], &out, later).is_empty());
        h.forget(&a);
        assert_eq!(h.update_at(&[beat(a, Some(true))], &out, later), vec![a]);
    }
}
