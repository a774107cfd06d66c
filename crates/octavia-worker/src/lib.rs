//! Claims jobs from the store and runs their flows.
//!
//! [`run`] is the worker daemon as a library: a claim loop bounded by
//! [`WorkerSettings::concurrency`], one task per job with its own lease-renewal task (a lost
//! lease stops the job without settling; the next owner resumes it), a queue-depth gauge,
//! and graceful shutdown (stop claiming, give running jobs [`WorkerSettings::shutdown_grace`],
//! then abandon them to be resumed elsewhere). Failpoints come from the settings and from
//! `OCTAVIA_FAILPOINTS`.
//!
//! Metrics: counter `octavia_jobs_total{kind,result}` (result = succeeded, failed,
//! abandoned, error), histogram `octavia_job_duration_seconds{kind}`, gauge
//! `octavia_job_queue_depth{class}` (QUEUED jobs per class).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use octavia_db::{ClaimedJob, ClassCaps, DbError, Store};
use octavia_drivers::Drivers;
use octavia_flows::{
    AbortHandle, Engine, Failpoints, FlowError, FlowOutcome, FlowSettings, JobRunner, RetryPolicy,
};
use octavia_model::{JobClass, JobState};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn, Instrument};

/// Errors that stop the worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The settings are unusable (zero concurrency, zero lease).
    #[error("invalid worker settings: {0}")]
    Settings(String),
    /// The failpoint specification could not be parsed.
    #[error(transparent)]
    Failpoints(#[from] FlowError),
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Lease owner name; unique per worker process across the control plane (the `octavia`
    /// binaries use `<host>-<pid>`, `[DEFAULT] host` defaulting to the machine's hostname).
    pub worker_id: String,
    /// Lease length; renewed every third of it while a job runs.
    pub lease: Duration,
    /// How often to look for jobs when not woken by the in-process notifier.
    pub poll_interval: Duration,
    /// Jobs in flight in this worker at most.
    pub concurrency: usize,
    /// Per-class caps on running jobs across all workers.
    pub caps: ClassCaps,
    /// How long running jobs may go on after shutdown was requested.
    pub shutdown_grace: Duration,
    /// How often the queue-depth gauge is refreshed.
    pub metrics_interval: Duration,
    /// Flow knobs (image, flavor, timeouts).
    pub flow: FlowSettings,
    /// Retries of retryable step failures.
    pub retry: RetryPolicy,
    /// Failpoints (tests); those of `OCTAVIA_FAILPOINTS` are added by [`run`].
    pub failpoints: Failpoints,
}

impl WorkerSettings {
    /// Default lease.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
    /// Default poll interval.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
    /// Default concurrency.
    pub const DEFAULT_CONCURRENCY: usize = 8;
    /// Default shutdown grace.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

    /// Defaults under the given worker id.
    pub fn new(worker_id: impl Into<String>) -> Self {
        Self {
            worker_id: worker_id.into(),
            lease: Self::DEFAULT_LEASE,
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
            concurrency: Self::DEFAULT_CONCURRENCY,
            caps: ClassCaps::default(),
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            metrics_interval: Duration::from_secs(10),
            flow: FlowSettings::default(),
            retry: RetryPolicy::default(),
            failpoints: Failpoints::none(),
        }
    }

    /// How often a running job's lease is renewed.
    pub fn renew_interval(&self) -> Duration {
        self.lease / 3
    }
}

/// Run the worker until `shutdown` resolves and running jobs finished (or the grace ran out).
pub async fn run(
    store: Store,
    drivers: Drivers,
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    if settings.concurrency == 0 {
        return Err(WorkerError::Settings(
            "concurrency must be at least 1".into(),
        ));
    }
    if settings.lease < Duration::from_millis(30) {
        return Err(WorkerError::Settings("lease must be at least 30ms".into()));
    }
    settings.failpoints.extend_from_env()?;
    if !settings.failpoints.is_empty() {
        warn!(failpoints = %settings.failpoints.describe(), "failpoints active");
    }
    let runner = Arc::new(JobRunner {
        store: store.clone(),
        drivers,
        engine: Engine::new(settings.failpoints.clone(), settings.retry),
        settings: settings.flow.clone(),
        worker_id: settings.worker_id.clone(),
    });
    info!(worker_id = %settings.worker_id, concurrency = settings.concurrency, "worker started");

    // Raised when the shutdown grace is over: running jobs are abandoned.
    let (deadline_tx, deadline_rx) = watch::channel(false);
    let gauge = tokio::spawn(queue_depth_gauge(store.clone(), settings.metrics_interval));
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let notify = store.job_notifier();
    let mut jobs = JoinSet::new();
    tokio::pin!(shutdown);

    'claiming: loop {
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => break 'claiming,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break 'claiming,
            },
        };
        // Arm the wake-up before looking, so a job inserted meanwhile is not missed.
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match store
            .claim_job(&settings.worker_id, settings.lease, &settings.caps)
            .await
        {
            Ok(Some(job)) => {
                let runner = runner.clone();
                let settings = settings.clone();
                let deadline = deadline_rx.clone();
                jobs.spawn(async move {
                    run_job(&runner, &settings, job, deadline).await;
                    drop(permit);
                });
                // Reap finished tasks so the set does not grow without bound.
                while jobs.try_join_next().is_some() {}
                continue;
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break 'claiming,
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(settings.poll_interval) => {}
                }
            }
            Err(e) => {
                drop(permit);
                warn!(error = %e, "claiming a job failed");
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break 'claiming,
                    _ = tokio::time::sleep(settings.poll_interval) => {}
                }
            }
        }
    }

    info!(
        running = jobs.len(),
        "worker stopping: no new jobs are claimed"
    );
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        while jobs.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            running = jobs.len(),
            "shutdown grace over: abandoning running jobs to be resumed by another worker"
        );
        deadline_tx.send_replace(true);
        // Abandoning is prompt (steps are dropped at their next await); bound it anyway.
        if tokio::time::timeout(Duration::from_secs(5), async {
            while jobs.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            jobs.abort_all();
        }
    }
    gauge.abort();
    info!("worker stopped");
    Ok(())
}

/// Run one claimed job with a lease-renewal companion; record metrics.
async fn run_job(
    runner: &JobRunner,
    settings: &WorkerSettings,
    job: ClaimedJob,
    mut deadline: watch::Receiver<bool>,
) {
    let kind = job.spec.kind();
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        kind = %kind,
        attempt = job.attempt,
        class = job.class.as_str()
    );
    let started = Instant::now();
    let (abort_handle, abort) = AbortHandle::new();
    let store = runner.store.clone();
    let (job_id, worker_id, lease, every) = (
        job.id,
        settings.worker_id.clone(),
        settings.lease,
        settings.renew_interval(),
    );
    let renewal = tokio::spawn(
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    r = deadline.wait_for(|d| *d) => {
                        if r.is_ok() {
                            abort_handle.abort();
                        }
                        return;
                    }
                }
                match store.renew_lease(job_id, &worker_id, lease).await {
                    Ok(true) => debug!("lease renewed"),
                    Ok(false) => {
                        warn!("lease lost: stopping the job without settling");
                        abort_handle.abort();
                        return;
                    }
                    // Keep trying: if the lease expires meanwhile, the next renewal says so.
                    Err(e) => warn!(error = %e, "renewing the lease failed"),
                }
            }
        }
        .instrument(span.clone()),
    );

    info!(parent: &span, "job started");
    let failover = failover_subject(&job);
    if let Some(what) = &failover {
        info!(parent: &span, "Performing failover for {what}");
    }
    let outcome = runner.run(&job, abort).instrument(span.clone()).await;
    renewal.abort();
    let result = match &outcome {
        Ok(FlowOutcome::Succeeded) => {
            info!(parent: &span, "job succeeded");
            "succeeded"
        }
        Ok(FlowOutcome::Reverted { step, error }) => {
            info!(parent: &span, step = %step, error = %error, "job failed and was reverted");
            "failed"
        }
        Ok(FlowOutcome::Abandoned) => "abandoned",
        Err(e) => {
            error!(parent: &span, error = %e, "job stopped: progress could not be recorded");
            "error"
        }
    };
    if let Some(what) = &failover {
        match &outcome {
            Ok(FlowOutcome::Succeeded) => {
                info!(parent: &span, "Successfully completed the failover for {what}")
            }
            Ok(FlowOutcome::Reverted { step, error }) => {
                error!(parent: &span, step = %step, "{what} failover exception: {error}")
            }
            _ => {}
        }
        let cause = match job.class {
            octavia_model::JobClass::Failover => "heartbeat",
            _ => "operator",
        };
        metrics::counter!("octavia_failovers_total", "cause" => cause, "result" => result)
            .increment(1);
    }
    metrics::counter!("octavia_jobs_total", "kind" => kind.clone(), "result" => result)
        .increment(1);
    metrics::histogram!("octavia_job_duration_seconds", "kind" => kind)
        .record(started.elapsed().as_secs_f64());
}

/// "amphora <id> (load balancer <id>)" or "load balancer <id>" for failover jobs.
fn failover_subject(job: &ClaimedJob) -> Option<String> {
    use octavia_model::{Action, ObjectKind};
    if job.spec.action != Action::Failover {
        return None;
    }
    let lb = job.spec.locks.load_balancer_id;
    Some(match (job.spec.target_kind, job.spec.amphora_id, lb) {
        (ObjectKind::Amphora, Some(amp), Some(lb)) => {
            format!("amphora {amp} (load balancer {lb})")
        }
        (ObjectKind::Amphora, Some(amp), None) => format!("amphora {amp}"),
        _ => format!("load balancer {}", job.spec.target_id),
    })
}

/// Refresh `octavia_job_queue_depth{class}` forever.
async fn queue_depth_gauge(store: Store, every: Duration) {
    loop {
        match queued_per_class(&store).await {
            Ok(depths) => {
                for (class, n) in depths {
                    metrics::gauge!("octavia_job_queue_depth", "class" => class.as_str())
                        .set(n as f64);
                }
            }
            Err(e) => debug!(error = %e, "reading the job queue depth failed"),
        }
        tokio::time::sleep(every).await;
    }
}

/// QUEUED jobs per class (every class present, zero included).
pub async fn queued_per_class(store: &Store) -> Result<Vec<(JobClass, i64)>, DbError> {
    let counts = store.job_counts().await?;
    Ok(JobClass::ALL
        .iter()
        .map(|class| {
            let n = counts
                .iter()
                .filter(|(c, _, s, _)| c == class && *s == JobState::Queued)
                .map(|(_, _, _, n)| *n)
                .sum();
            (*class, n)
        })
        .collect())
}
