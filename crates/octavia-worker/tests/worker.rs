//! The worker daemon against a real store (SQLite, and PostgreSQL when configured):
//! end to end, resume after a lost lease, priorities and class caps, shutdown.

use std::time::Duration;

use octavia_db::{ClassCaps, JobRecord, Store};
use octavia_drivers::{CallLog, Drivers};
use octavia_flows::{
    AbortHandle, Engine, FailAction, Failpoints, FlowSettings, JobRunner, RetryPolicy,
};
use octavia_model::*;
use octavia_test_support::fixtures::{load_balancer, PROJECT};
use octavia_test_support::{engines, eventually, TestStore};
use octavia_worker::{queued_per_class, run, WorkerSettings};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(20);

fn settings(id: &str) -> WorkerSettings {
    WorkerSettings {
        poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(10),
        metrics_interval: Duration::from_millis(100),
        flow: FlowSettings {
            amp_boot_poll: Duration::from_millis(10),
            ..FlowSettings::default()
        },
        retry: RetryPolicy {
            max_attempts: 2,
            initial_delay: Duration::from_millis(5),
            increment: Duration::from_millis(5),
            max_delay: Duration::from_millis(10),
        },
        ..WorkerSettings::new(id)
    }
}

/// A running worker and the means to stop it.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), octavia_worker::WorkerError>>,
    log: CallLog,
}

impl Running {
    fn start(store: &Store, settings: WorkerSettings) -> Self {
        let (drivers, log) = Drivers::noop();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run(store.clone(), drivers, settings, async move {
            let _ = rx.await;
        }));
        Self {
            stop: Some(tx),
            task,
            log,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("worker stops within the deadline")
            .unwrap()
            .unwrap();
    }
}

async fn wait_job(store: &Store, id: JobId, state: JobState) -> JobRecord {
    eventually(format!("job {id} {state:?}"), DEADLINE, || async {
        store
            .get_job(id)
            .await
            .unwrap()
            .filter(|j| j.state == state)
    })
    .await
}

async fn lb_status(store: &Store, id: LoadBalancerId) -> ProvisioningStatus {
    store
        .get_load_balancer(id)
        .await
        .unwrap()
        .unwrap()
        .provisioning_status
}

fn lb_job(action: Action, lb: LoadBalancerId) -> JobSpec {
    JobSpec {
        action,
        target_kind: ObjectKind::LoadBalancer,
        target_id: lb.uuid(),
        locks: LockSet {
            load_balancer_id: Some(lb),
            ..LockSet::default()
        },
        cascade: false,
        members: None,
        amphora_id: None,
        rotation: None,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn worker_runs_jobs_as_they_arrive() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let w = Running::start(&ts.store, settings("w1"));
        let (lb, job) = ts
            .store
            .create_load_balancer(&load_balancer(PROJECT, Topology::Single))
            .await
            .unwrap();
        let rec = wait_job(&ts.store, job, JobState::Done).await;
        assert_eq!(rec.lease_owner.as_deref(), Some("w1"));
        assert_eq!(
            lb_status(&ts.store, lb.id).await,
            ProvisioningStatus::Active
        );
        assert_eq!(w.log.count("compute.build"), 1);

        // Another job for the same load balancer, woken by the notifier.
        let job = ts
            .store
            .update_load_balancer(
                &ts.store.get_load_balancer(lb.id).await.unwrap().unwrap(),
                None,
            )
            .await
            .unwrap()
            .1;
        wait_job(&ts.store, job, JobState::Done).await;
        assert_eq!(
            lb_status(&ts.store, lb.id).await,
            ProvisioningStatus::Active
        );
        w.stop().await;

        // A failing step (configured through the settings' failpoints) settles ERROR.
        let s = settings("w2");
        s.failpoints
            .set("update_load_balancer", "update_amphorae", FailAction::Error);
        let w = Running::start(&ts.store, s);
        let job = ts
            .store
            .update_load_balancer(
                &ts.store.get_load_balancer(lb.id).await.unwrap().unwrap(),
                None,
            )
            .await
            .unwrap()
            .1;
        let rec = wait_job(&ts.store, job, JobState::Failed).await;
        assert!(rec.error.unwrap().contains("update_amphorae"));
        assert_eq!(lb_status(&ts.store, lb.id).await, ProvisioningStatus::Error);
        w.stop().await;
    }
}

#[tokio::test]
async fn job_of_a_worker_that_lost_its_lease_is_resumed_by_another() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let (lb, job_id) = ts
            .store
            .create_load_balancer(&load_balancer(PROJECT, Topology::Single))
            .await
            .unwrap();

        // Worker A claims with a short lease, runs up to plug_vip and stops there (as if
        // it hung or died): it never renews its lease.
        let a_lease = Duration::from_millis(300);
        let claimed = ts
            .store
            .claim_job("A", a_lease, &ClassCaps::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, job_id);
        let (a_drivers, a_log) = Drivers::noop();
        let a = JobRunner {
            store: ts.store.clone(),
            drivers: a_drivers,
            engine: Engine::new(
                Failpoints::parse("create_load_balancer/plug_vip=pause").unwrap(),
                RetryPolicy::default(),
            ),
            settings: settings("A").flow,
            worker_id: "A".into(),
        };
        let (a_abort, abort) = AbortHandle::new();
        let a_task = tokio::spawn(async move { a.run(&claimed, abort).await });
        eventually("worker A to complete three steps", DEADLINE, || async {
            let rec = ts.store.get_job(job_id).await.unwrap().unwrap();
            (rec.completed_steps.len() == 3).then_some(())
        })
        .await;
        assert!(!a_task.is_finished(), "A waits at the failpoint");

        // Worker B claims the job once A's lease has expired and runs only what is left.
        let b = Running::start(&ts.store, settings("B"));
        let rec = wait_job(&ts.store, job_id, JobState::Done).await;
        assert_eq!(rec.attempt, 2);
        assert_eq!(rec.lease_owner.as_deref(), Some("B"));
        assert_eq!(
            rec.completed_steps,
            strings(&[
                "allocate_vip",
                "build_amphora",
                "wait_for_agent",
                "plug_vip",
                "plug_member_networks",
                "update_amphorae",
                "configure_vrrp"
            ])
        );
        assert_eq!(
            lb_status(&ts.store, lb.id).await,
            ProvisioningStatus::Active
        );
        assert_eq!(a_log.count("compute.build"), 1);
        assert_eq!(b.log.count("compute.build"), 0, "B did not build again");
        assert_eq!(b.log.count("amphora.wait_for_connectivity"), 0);
        assert_eq!(b.log.count("network.plug_vip"), 1);
        assert_eq!(b.log.count("amphora.remove_config"), 1);

        // A no longer owns the job: its progress is refused, and once stopped (as its
        // lease-renewal task does on a lost lease) it has settled nothing.
        assert!(!ts
            .store
            .record_step_done(job_id, "A", "plug_vip")
            .await
            .unwrap());
        a_abort.abort();
        let out = a_task.await.unwrap().unwrap();
        assert_eq!(out, octavia_flows::FlowOutcome::Abandoned);
        assert_eq!(a_log.count("network.plug_vip"), 0);
        b.stop().await;
    }
}

/// Create `n` load balancers and bring them ACTIVE with a worker.
async fn active_lbs(store: &Store, n: usize) -> Vec<LoadBalancerId> {
    let w = Running::start(store, settings("setup"));
    let mut ids = Vec::new();
    for _ in 0..n {
        let (lb, job) = store
            .create_load_balancer(&load_balancer(PROJECT, Topology::Single))
            .await
            .unwrap();
        wait_job(store, job, JobState::Done).await;
        ids.push(lb.id);
    }
    w.stop().await;
    ids
}

#[tokio::test]
async fn failover_runs_before_tenant_before_operator() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let lbs = active_lbs(&ts.store, 3).await;
        // Enqueued least urgent first.
        let mut jobs = Vec::new();
        for (class, action, lb) in [
            (JobClass::Operator, Action::Failover, lbs[0]),
            (JobClass::Tenant, Action::Update, lbs[1]),
            (JobClass::Failover, Action::Failover, lbs[2]),
        ] {
            let spec = lb_job(action, lb);
            jobs.push(ts.store.enqueue_job(&NewJob { class, spec }).await.unwrap());
        }
        let depth = queued_per_class(&ts.store).await.unwrap();
        assert_eq!(
            depth,
            [
                (JobClass::Failover, 1),
                (JobClass::Tenant, 1),
                (JobClass::Operator, 1)
            ]
        );

        let w = Running::start(
            &ts.store,
            WorkerSettings {
                concurrency: 1,
                ..settings("w1")
            },
        );
        let mut started = Vec::new();
        for job in &jobs {
            started.push(wait_job(&ts.store, *job, JobState::Done).await.started_at);
        }
        w.stop().await;
        let (operator, tenant, failover) = (started[0], started[1], started[2]);
        assert!(failover < tenant, "{failover:?} {tenant:?}");
        assert!(tenant < operator, "{tenant:?} {operator:?}");
    }
}

#[tokio::test]
async fn a_class_at_its_cap_is_not_claimed() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let lbs = active_lbs(&ts.store, 2).await;
        let tenant = ts
            .store
            .enqueue_job(&NewJob {
                class: JobClass::Tenant,
                spec: lb_job(Action::Update, lbs[0]),
            })
            .await
            .unwrap();
        let operator = ts
            .store
            .enqueue_job(&NewJob {
                class: JobClass::Operator,
                spec: lb_job(Action::Failover, lbs[1]),
            })
            .await
            .unwrap();
        // Tenant jobs are capped at zero: the operator job (normally after the tenant
        // one) runs, the tenant job stays queued.
        let w = Running::start(
            &ts.store,
            WorkerSettings {
                caps: ClassCaps {
                    tenant: Some(0),
                    ..ClassCaps::default()
                },
                ..settings("w1")
            },
        );
        wait_job(&ts.store, operator, JobState::Done).await;
        w.stop().await;
        let rec = ts.store.get_job(tenant).await.unwrap().unwrap();
        assert_eq!(rec.state, JobState::Queued);
        assert_eq!(rec.attempt, 0);

        // Without the cap it runs.
        let w = Running::start(&ts.store, settings("w2"));
        wait_job(&ts.store, tenant, JobState::Done).await;
        w.stop().await;
    }
}

#[tokio::test]
async fn shutdown_abandons_a_paused_job_which_another_worker_finishes() {
    for engine in engines() {
        let ts = TestStore::new(engine).await;
        let s = WorkerSettings {
            lease: Duration::from_millis(300),
            shutdown_grace: Duration::from_millis(100),
            ..settings("A")
        };
        s.failpoints
            .set("create_load_balancer", "wait_for_agent", FailAction::Pause);
        let a = Running::start(&ts.store, s);
        let (lb, job) = ts
            .store
            .create_load_balancer(&load_balancer(PROJECT, Topology::Single))
            .await
            .unwrap();
        eventually("worker A to pause after two steps", DEADLINE, || async {
            let rec = ts.store.get_job(job).await.unwrap().unwrap();
            (rec.completed_steps.len() == 2).then_some(())
        })
        .await;
        // Stopping gives the paused job its grace, then abandons it unsettled.
        a.stop().await;
        let rec = ts.store.get_job(job).await.unwrap().unwrap();
        assert_eq!(rec.state, JobState::Running);
        assert_eq!(
            lb_status(&ts.store, lb.id).await,
            ProvisioningStatus::PendingCreate
        );

        let b = Running::start(&ts.store, settings("B"));
        let rec = wait_job(&ts.store, job, JobState::Done).await;
        assert_eq!(rec.attempt, 2);
        assert_eq!(
            lb_status(&ts.store, lb.id).await,
            ProvisioningStatus::Active
        );
        assert_eq!(b.log.count("compute.build"), 0);
        assert_eq!(b.log.count("amphora.wait_for_connectivity"), 1);
        b.stop().await;
    }
}
