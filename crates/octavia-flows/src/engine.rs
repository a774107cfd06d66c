//! The step/flow engine: run steps in order, persist progress, retry, revert, settle.
//!
//! A [`Flow`] is an ordered list of named [`Step`]s. The engine skips the steps a resumed
//! job already completed, records each step it completes through [`Progress`], retries
//! retryable failures with bounded backoff, and when a step fails for good reverts the
//! completed steps in reverse order (the failed step first if it ran), then settles.
//! Steps keep no state in memory: each reads what it needs from the store, so any step
//! can run in a process that did not run the ones before it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{debug, error, info, warn, Instrument};

use crate::failpoint::{FailAction, Failpoints};
use crate::{FlowError, Result};

/// One idempotent unit of work with its undo.
#[async_trait]
pub trait Step<C: Sync>: Send + Sync {
    /// Stable name: progress records, failpoints and tests use it.
    fn name(&self) -> &'static str;
    /// Do the work; running it again after a crash must be harmless.
    async fn execute(&self, ctx: &C) -> Result<()>;
    /// Undo the work; must be harmless when there is nothing (left) to undo.
    async fn revert(&self, ctx: &C) -> Result<()>;
}

/// An ordered list of steps under a name (the job kind).
pub struct Flow<C> {
    name: String,
    steps: Vec<Arc<dyn Step<C>>>,
}

impl<C: Sync> Flow<C> {
    /// An empty flow.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            steps: Vec::new(),
        }
    }

    /// Append a step.
    pub fn then(mut self, step: impl Step<C> + 'static) -> Self {
        self.steps.push(Arc::new(step));
        self
    }

    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The step names, in order.
    pub fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.name()).collect()
    }
}

/// Where the engine persists progress and settles the job. Every method answers `false`
/// when this runner no longer owns the job (lease lost): the engine then stops at once.
#[async_trait]
pub trait Progress: Send + Sync {
    /// `step` completed.
    async fn step_done(&self, step: &str) -> Result<bool>;
    /// `step` was reverted.
    async fn step_reverted(&self, step: &str) -> Result<bool>;
    /// Every step completed: settle the objects as successful and finish the job.
    async fn succeeded(&self) -> Result<bool>;
    /// The flow reverted after `error`: settle the objects as failed and finish the job.
    async fn failed(&self, error: &str) -> Result<bool>;
}

/// Where a resumed job stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    /// Steps completed by earlier attempts.
    pub completed: Vec<String>,
    /// Steps already reverted by earlier attempts (non-empty = the job was reverting).
    pub reverted: Vec<String>,
}

/// How a flow run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowOutcome {
    /// Every step completed and the job was settled as successful.
    Succeeded,
    /// `step` failed with `error`; completed steps were reverted and the job settled as failed.
    Reverted { step: String, error: String },
    /// The job was taken away (lease lost or abort): nothing was settled.
    Abandoned,
}

/// Bounded, incremental backoff for retryable step failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per step, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the second try.
    pub initial_delay: Duration,
    /// Added to the delay after every try.
    pub increment: Duration,
    /// Upper bound of the delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_delay: Duration::from_secs(1),
            increment: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed try number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let d = self.initial_delay + self.increment * attempt.saturating_sub(1);
        d.min(self.max_delay)
    }
}

/// Raised by the runner to make a running flow give up (lease lost, shutdown deadline).
#[derive(Debug)]
pub struct AbortHandle(watch::Sender<bool>);

/// The receiving side of an [`AbortHandle`].
#[derive(Debug, Clone)]
pub struct Abort(watch::Receiver<bool>);

impl AbortHandle {
    /// A fresh handle and its receiver.
    pub fn new() -> (AbortHandle, Abort) {
        let (tx, rx) = watch::channel(false);
        (AbortHandle(tx), Abort(rx))
    }
    /// Ask the flow to stop at the next opportunity (a running step is dropped).
    pub fn abort(&self) {
        self.0.send_replace(true);
    }
}

impl Abort {
    /// Whether abort was requested.
    pub fn is_aborted(&self) -> bool {
        *self.0.borrow()
    }
    /// Resolves when abort is requested (never if the handle is dropped unused).
    pub async fn aborted(&mut self) {
        if self.0.wait_for(|a| *a).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs flows.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    pub failpoints: Failpoints,
    pub retry: RetryPolicy,
}

enum StepEnd {
    Done,
    Failed { error: FlowError, ran: bool },
    Aborted,
}

impl Engine {
    /// An engine with these failpoints and retry policy.
    pub fn new(failpoints: Failpoints, retry: RetryPolicy) -> Self {
        Self { failpoints, retry }
    }

    /// Run `flow` to its end: success, reverted failure, or abandoned.
    ///
    /// An `Err` means the progress sink itself failed (the store is down): nothing more
    /// can be recorded, so the job is left to be resumed by whoever claims it next.
    pub async fn run<C: Sync>(
        &self,
        flow: &Flow<C>,
        ctx: &C,
        resume: &Resume,
        progress: &dyn Progress,
        mut abort: Abort,
    ) -> Result<FlowOutcome> {
        let mut completed: BTreeSet<&str> = resume.completed.iter().map(String::as_str).collect();
        let reverted: BTreeSet<&str> = resume.reverted.iter().map(String::as_str).collect();

        let failure = if !reverted.is_empty() {
            info!(flow = flow.name(), "resuming a flow that was reverting");
            Some((
                None,
                "reverting resumed after the previous worker stopped".to_string(),
            ))
        } else {
            let mut failure = None;
            for step in &flow.steps {
                let name = step.name();
                if completed.contains(name) {
                    debug!(flow = flow.name(), step = name, "step already completed");
                    continue;
                }
                let span = tracing::info_span!("step", step = name);
                match self
                    .execute_step(flow.name(), step.as_ref(), ctx, &mut abort)
                    .instrument(span)
                    .await
                {
                    StepEnd::Done => {
                        if !progress.step_done(name).await? {
                            return Ok(abandoned(flow.name(), name));
                        }
                        completed.insert(name);
                    }
                    StepEnd::Aborted => return Ok(abandoned(flow.name(), name)),
                    StepEnd::Failed { error, ran } => {
                        warn!(
                            flow = flow.name(),
                            step = name,
                            owner = %error.owner(),
                            error = %error,
                            "step failed, reverting"
                        );
                        failure = Some((Some((step, ran)), error.to_string()));
                        break;
                    }
                }
            }
            failure
        };

        let Some((failed, error)) = failure else {
            if !progress.succeeded().await? {
                return Ok(abandoned(flow.name(), "settle"));
            }
            info!(flow = flow.name(), "flow succeeded");
            return Ok(FlowOutcome::Succeeded);
        };

        let failed_name = failed.map(|(s, _)| s.name()).unwrap_or("resume");
        // The failed step first (if it ran, it may have done part of its work), then the
        // completed ones in reverse order.
        let mut to_revert: Vec<&Arc<dyn Step<C>>> = Vec::new();
        if let Some((step, true)) = failed {
            to_revert.push(step);
        }
        to_revert.extend(
            flow.steps
                .iter()
                .rev()
                .filter(|s| completed.contains(s.name())),
        );
        for step in to_revert {
            let name = step.name();
            if reverted.contains(name) {
                continue;
            }
            let span = tracing::info_span!("revert", step = name);
            if !self
                .revert_step(flow.name(), step.as_ref(), ctx, &mut abort)
                .instrument(span)
                .await
            {
                return Ok(abandoned(flow.name(), name));
            }
            if !progress.step_reverted(name).await? {
                return Ok(abandoned(flow.name(), name));
            }
        }
        if !progress.failed(&error).await? {
            return Ok(abandoned(flow.name(), "settle"));
        }
        info!(flow = flow.name(), step = failed_name, "flow reverted");
        Ok(FlowOutcome::Reverted {
            step: failed_name.to_string(),
            error,
        })
    }

    async fn execute_step<C: Sync>(
        &self,
        flow: &str,
        step: &dyn Step<C>,
        ctx: &C,
        abort: &mut Abort,
    ) -> StepEnd {
        let name = step.name();
        match self.failpoints.check(flow, name) {
            Some(FailAction::Error) => {
                warn!(flow, step = name, "failpoint active: failing step");
                return StepEnd::Failed {
                    error: FlowError::Failpoint(format!("{flow}/{name}")),
                    ran: false,
                };
            }
            Some(FailAction::Pause) => {
                warn!(flow, step = name, "failpoint active: pausing before step");
                abort.aborted().await;
                return StepEnd::Aborted;
            }
            None => {}
        }
        let max = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            if abort.is_aborted() {
                return StepEnd::Aborted;
            }
            debug!(flow, step = name, attempt, "executing step");
            let result = tokio::select! {
                r = step.execute(ctx) => r,
                _ = abort.aborted() => return StepEnd::Aborted,
            };
            match result {
                Ok(()) => return StepEnd::Done,
                Err(e) if e.is_retryable() && attempt < max => {
                    let delay = self.retry.delay(attempt);
                    warn!(flow, step = name, attempt, owner = %e.owner(), error = %e,
                        delay_ms = delay.as_millis() as u64, "step failed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = abort.aborted() => return StepEnd::Aborted,
                    }
                    attempt += 1;
                }
                Err(error) => return StepEnd::Failed { error, ran: true },
            }
        }
    }

    /// Revert one step, retrying retryable failures; `false` if aborted. A revert that
    /// fails for good is logged and the flow goes on reverting the others.
    async fn revert_step<C: Sync>(
        &self,
        flow: &str,
        step: &dyn Step<C>,
        ctx: &C,
        abort: &mut Abort,
    ) -> bool {
        let name = step.name();
        let max = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            if abort.is_aborted() {
                return false;
            }
            debug!(flow, step = name, attempt, "reverting step");
            let result = tokio::select! {
                r = step.revert(ctx) => r,
                _ = abort.aborted() => return false,
            };
            match result {
                Ok(()) => return true,
                Err(e) if e.is_retryable() && attempt < max => {
                    let delay = self.retry.delay(attempt);
                    warn!(flow, step = name, attempt, error = %e, "revert failed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = abort.aborted() => return false,
                    }
                    attempt += 1;
                }
                Err(e) => {
                    error!(flow, step = name, owner = %e.owner(), error = %e,
                        "revert failed; resources may be left behind");
                    return true;
                }
            }
        }
    }
}

fn abandoned(flow: &str, at: &str) -> FlowOutcome {
    warn!(flow, step = at, "job abandoned: lease lost or aborted");
    FlowOutcome::Abandoned
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use octavia_drivers::{DriverError, FaultOwner};

    use super::*;

    /// Test context: a journal of what happened, and per-step scripted failures.
    #[derive(Default)]
    struct Ctx {
        journal: Mutex<Vec<String>>,
        /// step name → how many times it fails (retryable) before it succeeds
        flaky: Mutex<Vec<(&'static str, u32)>>,
        /// step that fails permanently
        broken: Option<&'static str>,
    }

    impl Ctx {
        fn journal(&self) -> Vec<String> {
            self.journal.lock().unwrap().clone()
        }
    }

    struct TestStep(&'static str);

    #[async_trait]
    impl Step<Ctx> for TestStep {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn execute(&self, ctx: &Ctx) -> Result<()> {
            ctx.journal.lock().unwrap().push(format!("do {}", self.0));
            if ctx.broken == Some(self.0) {
                return Err(DriverError::permanent(FaultOwner::Compute, "build", "no host").into());
            }
            let mut flaky = ctx.flaky.lock().unwrap();
            if let Some((_, left)) = flaky.iter_mut().find(|(n, l)| *n == self.0 && *l > 0) {
                *left -= 1;
                return Err(DriverError::retryable(FaultOwner::Agent, "connect", "refused").into());
            }
            Ok(())
        }
        async fn revert(&self, ctx: &Ctx) -> Result<()> {
            ctx.journal.lock().unwrap().push(format!("undo {}", self.0));
            Ok(())
        }
    }

    /// In-memory progress sink; `lose_after` makes the n-th step_done report a lost lease.
    #[derive(Default)]
    struct Memory {
        events: Mutex<Vec<String>>,
        lose_after: Option<usize>,
    }

    impl Memory {
        fn events(&self) -> Vec<String> {
            self.events.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Progress for Memory {
        async fn step_done(&self, step: &str) -> Result<bool> {
            let mut ev = self.events.lock().unwrap();
            let done = ev.iter().filter(|e| e.starts_with("done ")).count();
            if self.lose_after == Some(done) {
                return Ok(false);
            }
            ev.push(format!("done {step}"));
            Ok(true)
        }
        async fn step_reverted(&self, step: &str) -> Result<bool> {
            self.events.lock().unwrap().push(format!("reverted {step}"));
            Ok(true)
        }
        async fn succeeded(&self) -> Result<bool> {
            self.events.lock().unwrap().push("succeeded".into());
            Ok(true)
        }
        async fn failed(&self, error: &str) -> Result<bool> {
            self.events.lock().unwrap().push(format!("failed: {error}"));
            Ok(true)
        }
    }

    fn flow() -> Flow<Ctx> {
        Flow::new("create_thing")
            .then(TestStep("a"))
            .then(TestStep("b"))
            .then(TestStep("c"))
            .then(TestStep("d"))
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(1),
            increment: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    fn never() -> Abort {
        let (h, a) = AbortHandle::new();
        std::mem::forget(h);
        a
    }

    #[tokio::test]
    async fn runs_steps_in_order_and_settles_success() {
        let ctx = Ctx::default();
        let mem = Memory::default();
        let out = Engine::new(Failpoints::none(), fast())
            .run(&flow(), &ctx, &Resume::default(), &mem, never())
            .await
            .unwrap();
        assert_eq!(out, FlowOutcome::Succeeded);
        assert_eq!(ctx.journal(), ["do a", "do b", "do c", "do d"]);
        assert_eq!(
            mem.events(),
            ["done a", "done b", "done c", "done d", "succeeded"]
        );
    }

    #[tokio::test]
    async fn failpoint_error_reverts_completed_steps_in_reverse() {
        let ctx = Ctx::default();
        let mem = Memory::default();
        let fp = Failpoints::parse("create_thing/c=error").unwrap();
        let out = Engine::new(fp, fast())
            .run(&flow(), &ctx, &Resume::default(), &mem, never())
            .await
            .unwrap();
        assert_eq!(
            out,
            FlowOutcome::Reverted {
                step: "c".into(),
                error: "failpoint create_thing/c triggered".into()
            }
        );
        assert_eq!(ctx.journal(), ["do a", "do b", "undo b", "undo a"]);
        assert_eq!(
            mem.events(),
            [
                "done a",
                "done b",
                "reverted b",
                "reverted a",
                "failed: failpoint create_thing/c triggered"
            ]
        );
    }

    #[tokio::test]
    async fn a_step_that_ran_and_failed_is_reverted_first() {
        let ctx = Ctx {
            broken: Some("b"),
            ..Ctx::default()
        };
        let mem = Memory::default();
        let out = Engine::new(Failpoints::none(), fast())
            .run(&flow(), &ctx, &Resume::default(), &mem, never())
            .await
            .unwrap();
        assert!(matches!(out, FlowOutcome::Reverted { ref step, .. } if step == "b"));
        assert_eq!(ctx.journal(), ["do a", "do b", "undo b", "undo a"]);
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_within_bounds() {
        let ctx = Ctx::default();
        ctx.flaky.lock().unwrap().push(("b", 2));
        let mem = Memory::default();
        let out = Engine::new(Failpoints::none(), fast())
            .run(&flow(), &ctx, &Resume::default(), &mem, never())
            .await
            .unwrap();
        assert_eq!(out, FlowOutcome::Succeeded);
        assert_eq!(
            ctx.journal(),
            ["do a", "do b", "do b", "do b", "do c", "do d"]
        );

        // One failure more than the policy allows: the step is given up and reverted.
        let ctx = Ctx::default();
        ctx.flaky.lock().unwrap().push(("b", 3));
        let mem = Memory::default();
        let out = Engine::new(Failpoints::none(), fast())
            .run(&flow(), &ctx, &Resume::default(), &mem, never())
            .await
            .unwrap();
        assert!(matches!(out, FlowOutcome::Reverted { ref step, .. } if step == "b"));
        assert_eq!(
            ctx.journal(),
            ["do a", "do b", "do b", "do b", "undo b", "undo a"]
        );
    }

    #[tokio::test]
    async fn resume_skips_completed_steps() {
        let ctx = Ctx::default();
        let mem = Memory::default();
        let resume = Resume {
            completed: vec!["a".into(), "b".into()],
            reverted: vec![],
        };
        let out = Engine::default()
            .run(&flow(), &ctx, &resume, &mem, never())
            .await
            .unwrap();
        assert_eq!(out, FlowOutcome::Succeeded);
        assert_eq!(ctx.journal(), ["do c", "do d"]);
        assert_eq!(mem.events(), ["done c", "done d", "succeeded"]);
    }

    #[tokio::test]
    async fn resume_of_a_reverting_job_finishes_the_revert() {
        let ctx = Ctx::default();
        let mem = Memory::default();
        let resume = Resume {
            completed: vec!["a".into(), "b".into(), "c".into()],
            reverted: vec!["c".into()],
        };
        let out = Engine::default()
            .run(&flow(), &ctx, &resume, &mem, never())
            .await
            .unwrap();
        assert!(matches!(out, FlowOutcome::Reverted { .. }));
        assert_eq!(ctx.journal(), ["undo b", "undo a"]);
    }

    #[tokio::test]
    async fn lost_lease_stops_without_settling() {
        let ctx = Ctx::default();
        let mem = Memory {
            lose_after: Some(2),
            ..Memory::default()
        };
        let out = Engine::default()
            .run(&flow(), &ctx, &Resume::default(), &mem, never())
            .await
            .unwrap();
        assert_eq!(out, FlowOutcome::Abandoned);
        assert_eq!(ctx.journal(), ["do a", "do b", "do c"]);
        assert_eq!(mem.events(), ["done a", "done b"]);
    }

    #[tokio::test]
    async fn pause_failpoint_holds_until_abort() {
        let ctx = Arc::new(Ctx::default());
        let fp = Failpoints::parse("create_thing/b=pause").unwrap();
        let (handle, abort) = AbortHandle::new();
        let mem = Arc::new(Memory::default());
        let task = {
            let (ctx, mem) = (ctx.clone(), mem.clone());
            tokio::spawn(async move {
                Engine::new(fp, fast())
                    .run(&flow(), &*ctx, &Resume::default(), &*mem, abort)
                    .await
            })
        };
        // Wait until step a is recorded; the flow must then sit at the failpoint.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while mem.events().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "step a never completed"
            );
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!task.is_finished());
        assert_eq!(ctx.journal(), ["do a"]);
        handle.abort();
        assert_eq!(task.await.unwrap().unwrap(), FlowOutcome::Abandoned);
        assert_eq!(ctx.journal(), ["do a"]);
        assert_eq!(mem.events(), ["done a"]);
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1), Duration::from_secs(1));
        assert_eq!(p.delay(2), Duration::from_secs(2));
        assert_eq!(p.delay(9), Duration::from_secs(5));
    }
}
