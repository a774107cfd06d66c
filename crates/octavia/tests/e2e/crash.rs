//! Crash safety with the real `octavia-api` and `octavia-worker` processes, on both engines.

use std::time::Duration;

use octavia_db::{Engine, JobRecord, Store};
use octavia_model::{JobState, LoadBalancerId, ProvisioningStatus};
use octavia_test_support::{engines, eventually, TestStore};
use serde_json::json;

use crate::support::{free_port, wait_api, write_config, Proc};

const WORKER_CONFIG: &str =
    "[task_flow]\njobboard_expiration_time = \"2s\"\npoll_interval = \"100ms\"\n";

async fn create_lb(base: &str) -> LoadBalancerId {
    let r = reqwest::Client::new()
        .post(format!("{base}/v2/lbaas/loadbalancers"))
        .header("X-Project-Id", "crash-test")
        .json(&json!({"loadbalancer": {
            "name": "crash",
            "vip_subnet_id": "0b4b2c1e-7f0a-4d53-9a47-3f8e6c2d1a10"
        }}))
        .send()
        .await
        .expect("POST load balancer");
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    v["loadbalancer"]["id"].as_str().unwrap().parse().unwrap()
}

async fn lb_job(store: &Store, lb: LoadBalancerId) -> Option<JobRecord> {
    store
        .list_jobs(Some(lb))
        .await
        .ok()
        .and_then(|jobs| jobs.into_iter().find(|j| j.kind == "create_load_balancer"))
}

async fn lb_status(store: &Store, lb: LoadBalancerId) -> Option<ProvisioningStatus> {
    store
        .get_load_balancer(lb)
        .await
        .ok()
        .flatten()
        .map(|l| l.provisioning_status)
}

async fn kill9_mid_flow_then_resume(engine: Engine) {
    let ts = TestStore::new(engine).await;
    let store = ts.store.clone();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let api_cfg = write_config(dir.path(), "api", &ts.url, port, "");
    let metrics_port = free_port();
    let worker_cfg = write_config(
        dir.path(),
        "worker",
        &ts.url,
        free_port(),
        &format!("{WORKER_CONFIG}\n[metrics]\nworker_port = {metrics_port}\n"),
    );

    let _api = Proc::start("api", env!("CARGO_BIN_EXE_octavia-api"), &api_cfg, &[]);
    wait_api(&base).await;
    let mut a = Proc::start(
        "worker-a",
        env!("CARGO_BIN_EXE_octavia-worker"),
        &worker_cfg,
        &[("OCTAVIA_FAILPOINTS", "create_load_balancer/plug_vip=pause")],
    );
    let lb = create_lb(&base).await;

    // Worker A runs the flow up to the failpoint and holds it there.
    let held = eventually(
        "worker A to reach plug_vip",
        Duration::from_secs(30),
        || async {
            lb_job(&store, lb).await.filter(|j| {
                j.state == JobState::Running
                    && j.completed_steps.last().map(String::as_str) == Some("wait_for_agent")
            })
        },
    )
    .await;
    assert_eq!(held.attempt, 1);
    assert_eq!(
        lb_status(&store, lb).await,
        Some(ProvisioningStatus::PendingCreate)
    );
    a.kill9();

    // Nobody owns it now; it stays PENDING_CREATE until a worker resumes it.
    assert_eq!(
        lb_status(&store, lb).await,
        Some(ProvisioningStatus::PendingCreate)
    );
    let _b = Proc::start(
        "worker-b",
        env!("CARGO_BIN_EXE_octavia-worker"),
        &worker_cfg,
        &[],
    );
    eventually(
        "the load balancer to become ACTIVE",
        Duration::from_secs(30),
        || async {
            (lb_status(&store, lb).await == Some(ProvisioningStatus::Active)).then_some(())
        },
    )
    .await;
    let done = lb_job(&store, lb).await.expect("job row");
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.attempt, 2, "resumed by a second claim");
    assert_eq!(
        done.completed_steps,
        [
            "allocate_vip",
            "build_amphora",
            "wait_for_agent",
            "plug_vip",
            "plug_member_networks",
            "update_amphorae",
            "configure_vrrp"
        ],
        "each step recorded exactly once across both workers"
    );
    assert!(done.reverted_steps.is_empty());

    // The worker's own metrics endpoint counts the job it finished.
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("scrape the worker")
        .text()
        .await
        .expect("metrics text");
    assert!(
        text.lines()
            .any(|l| l.starts_with("octavia_jobs_total") && l.contains("create_load_balancer")),
        "no finished job counted in:\n{text}"
    );
}

async fn failing_step_reverts_in_reverse(engine: Engine) {
    let ts = TestStore::new(engine).await;
    let store = ts.store.clone();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let cfg = write_config(dir.path(), "aio", &ts.url, port, WORKER_CONFIG);
    let _aio = Proc::start(
        "all-in-one",
        env!("CARGO_BIN_EXE_octavia"),
        &cfg,
        &[("OCTAVIA_FAILPOINTS", "create_load_balancer/plug_vip=error")],
    );
    wait_api(&base).await;
    let lb = create_lb(&base).await;
    eventually(
        "the load balancer to go to ERROR",
        Duration::from_secs(30),
        || async { (lb_status(&store, lb).await == Some(ProvisioningStatus::Error)).then_some(()) },
    )
    .await;
    let job = lb_job(&store, lb).await.expect("job row");
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.completed_steps,
        ["allocate_vip", "build_amphora", "wait_for_agent"]
    );
    let mut reversed = job.completed_steps.clone();
    reversed.reverse();
    assert_eq!(job.reverted_steps, reversed, "reverts run in reverse order");
    assert!(job.error.unwrap_or_default().contains("plug_vip"));

    // The failure is visible to monitoring: jobs by kind and result, API latency by route.
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("octavia_jobs_total")
            && l.contains("kind=\"create_load_balancer\"")
            && l.contains("result=\"failed\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains("octavia_api_request_duration_seconds")
            && metrics.contains("route=\"/v2/loadbalancers\""),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_worker_mid_flow_is_resumed_by_another_worker() {
    for engine in engines() {
        kill9_mid_flow_then_resume(engine).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_step_leaves_error_after_reverse_revert() {
    for engine in engines() {
        failing_step_reverts_in_reverse(engine).await;
    }
}
