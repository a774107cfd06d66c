//! Running one claimed job: its flow, with progress and settlement in the store.

use async_trait::async_trait;
use octavia_db::{ClaimedJob, Store};
use octavia_drivers::Drivers;
use octavia_model::{JobId, JobSpec};
use tracing::warn;

use crate::context::{FlowSettings, JobContext};
use crate::engine::{Abort, Engine, FlowOutcome, Progress, Resume};
use crate::flows::flow_for;
use crate::Result;

/// Everything needed to run claimed jobs.
#[derive(Debug, Clone)]
pub struct JobRunner {
    pub store: Store,
    pub drivers: Drivers,
    pub engine: Engine,
    pub settings: FlowSettings,
    /// The lease owner name this runner claims jobs under.
    pub worker_id: String,
}

/// Progress of one job in the store, owner-checked against the worker's lease.
struct StoreProgress<'a> {
    store: &'a Store,
    job_id: JobId,
    worker_id: &'a str,
    spec: &'a JobSpec,
}

#[async_trait]
impl Progress for StoreProgress<'_> {
    async fn step_done(&self, step: &str) -> Result<bool> {
        Ok(self
            .store
            .record_step_done(self.job_id, self.worker_id, step)
            .await?)
    }

    async fn step_reverted(&self, step: &str) -> Result<bool> {
        Ok(self
            .store
            .record_step_reverted(self.job_id, self.worker_id, step)
            .await?)
    }

    async fn succeeded(&self) -> Result<bool> {
        Ok(self
            .store
            .complete_job(self.job_id, self.worker_id, self.spec, None)
            .await?)
    }

    async fn failed(&self, error: &str) -> Result<bool> {
        Ok(self
            .store
            .complete_job(self.job_id, self.worker_id, self.spec, Some(error))
            .await?)
    }
}

impl JobRunner {
    /// Run a claimed job to its end (or until `abort`/a lost lease takes it away).
    pub async fn run(&self, job: &ClaimedJob, abort: Abort) -> Result<FlowOutcome> {
        let progress = StoreProgress {
            store: &self.store,
            job_id: job.id,
            worker_id: &self.worker_id,
            spec: &job.spec,
        };
        let flow = match flow_for(&job.spec) {
            Ok(flow) => flow,
            Err(e) => {
                warn!(job_id = %job.id, kind = %job.spec.kind(), error = %e, "job cannot run");
                let error = e.to_string();
                return Ok(if progress.failed(&error).await? {
                    FlowOutcome::Reverted {
                        step: "none".into(),
                        error,
                    }
                } else {
                    FlowOutcome::Abandoned
                });
            }
        };
        let mut resume = Resume {
            completed: job.completed_steps.clone(),
            reverted: Vec::new(),
        };
        if job.attempt > 1 {
            if let Some(record) = self.store.get_job(job.id).await? {
                resume.reverted = record.reverted_steps;
            }
        }
        let ctx = JobContext {
            store: self.store.clone(),
            drivers: self.drivers.clone(),
            job_id: job.id,
            spec: job.spec.clone(),
            settings: self.settings.clone(),
            replacement_role: None,
        };
        self.engine
            .run(&flow, &ctx, &resume, &progress, abort)
            .await
    }
}
