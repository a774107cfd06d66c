//! The control plane survives losing a node: three all-in-one `octavia` processes (API, worker
//! and health manager each) on one PostgreSQL database and one netns state directory, with
//! the amphorae sending heartbeats round robin to the three receivers. One node is killed
//! (kill -9) while it runs a create, an update and possibly the failover of an amphora whose
//! processes were killed; the other two finish every job, the failover runs once, no other
//! amphora is failed over although a third of the heartbeats now go nowhere, and their APIs
//! answer throughout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use octavia_db::{Engine, JobRecord};
use octavia_model::JobState;
use octavia_test_support::{engines, eventually, TestStore};
use reqwest::Method;
use serde_json::{json, Value};

use crate::fleet::{amphorae, kill_namespace_processes, serving_lb, wait_online};
use crate::lab::{can_run, namespaces_with, Lab, Traffic};
use crate::support::{free_port, wait_api, Proc};

/// The node killed: every job it claims stops before `update_amphorae` (after a create has
/// built its amphora and plugged its networks), so the kill lands in the middle of them.
const DOOMED_FAILPOINTS: &str = "*/update_amphorae=pause";

/// One control-plane node: an all-in-one with its own API and heartbeat ports.
struct Node {
    api: String,
    proc: Option<Proc>,
}

/// A client asking the surviving nodes' APIs for the load balancer list every 50 ms.
struct ApiPoller {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<(usize, Vec<String>)>>,
    task: tokio::task::JoinHandle<()>,
}

impl ApiPoller {
    fn start(lab: &Lab, apis: Vec<String>) -> ApiPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new((0, Vec::new())));
        let http = lab.http.clone();
        let task = {
            let (stop, seen) = (stop.clone(), seen.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let api = &apis[i % apis.len()];
                    i += 1;
                    let url = format!("{api}/v2/lbaas/loadbalancers");
                    let res = tokio::time::timeout(Duration::from_secs(5), http.get(&url).send());
                    let outcome = match res.await {
                        Ok(Ok(r)) if r.status().is_success() => Ok(()),
                        Ok(Ok(r)) => Err(format!("{url}: {}", r.status())),
                        Ok(Err(e)) => Err(format!("{url}: {e}")),
                        Err(_) => Err(format!("{url}: no answer within 5 s")),
                    };
                    let mut s = seen.lock().unwrap();
                    match outcome {
                        Ok(()) => s.0 += 1,
                        Err(e) => s.1.push(e),
                    }
                }
            })
        };
        ApiPoller { stop, seen, task }
    }

    /// Stop; (answers, errors).
    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.seen.lock().unwrap().clone()
    }
}

/// Send a request to the API at `api` (a node other than the lab's); the JSON answer.
async fn call_at(
    lab: &Lab,
    api: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    want: u16,
) -> Value {
    let mut req = lab.http.request(method.clone(), format!("{api}{path}"));
    if let Some(b) = &body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("API request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(
        status, want,
        "{method} {api}{path} answered {status}: {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A single-call create: a load balancer with an HTTP listener whose default pool has every
/// lab member.
fn tree(lab: &Lab, name: &str) -> Value {
    let members: Vec<Value> = (0..lab.members.len()).map(|i| lab.member_body(i)).collect();
    json!({"loadbalancer": {
        "name": name,
        "vip_subnet_id": lab.subnet_id,
        "listeners": [{"protocol": "HTTP", "protocol_port": 80,
                       "default_pool": {"name": "web", "protocol": "HTTP",
                                        "lb_algorithm": "ROUND_ROBIN",
                                        "members": members}}]
    }})
}

fn job_of<'a>(jobs: &'a [JobRecord], kind: &str, target: &str) -> Option<&'a JobRecord> {
    jobs.iter()
        .find(|j| j.kind == kind && j.spec.target_id.to_string() == target)
}

fn held_by(job: &JobRecord, owner: &str) -> bool {
    job.state == JobState::Running
        && job
            .lease_owner
            .as_deref()
            .is_some_and(|o| o.starts_with(owner))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_survives_losing_a_node() {
    if !can_run() {
        return;
    }
    if !engines().contains(&Engine::Postgres) {
        eprintln!("skipped: several control-plane nodes need OCTAVIA_TEST_PG_URL");
        return;
    }
    // Dropped last (locals drop in reverse order): the nodes are killed first, then the lab
    // removes what they built, then the database goes.
    let db = TestStore::new(Engine::Postgres).await;
    let api_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let hb_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let receivers: Vec<String> = hb_ports
        .iter()
        .map(|p| format!("\"10.215.40.1:{p}\""))
        .collect();
    let mut lab = Lab::without_control_plane(
        "cpn",
        40,
        2,
        &format!("controller_ip_port_list = [{}]", receivers.join(", ")),
        &db.url,
    )
    .await;
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..3 {
        let config = lab.node_config(
            &format!("node{i}"),
            api_ports[i],
            hb_ports[i],
            &format!("[DEFAULT]\nhost = \"node{i}\"\n"),
        );
        nodes.push(Node {
            api: format!("http://127.0.0.1:{}", api_ports[i]),
            proc: None,
        });
        // Node 0, the one killed, joins once the load balancers that exist before the storm
        // are built (it would hold their creates too).
        if i > 0 {
            nodes[i].proc = Some(Proc::start(
                &format!("node{i}"),
                env!("CARGO_BIN_EXE_octavia"),
                &config,
                &[("RUST_LOG", "info,sqlx=warn,octavia_drivers=debug")],
            ));
            wait_api(&nodes[i].api).await;
        }
    }
    lab.api = nodes[1].api.clone();

    // Before: one load balancer to fail over, one to update; their heartbeats already miss
    // node 0's receiver (not started yet).
    let (f, _) = serving_lb(&lab, "cp-failover").await;
    let (u, _) = serving_lb(&lab, "cp-update").await;
    wait_online(&lab, &f).await;
    wait_online(&lab, &u).await;
    let amps_f = amphorae(&lab, &f).await;
    let amps_u = amphorae(&lab, &u).await;
    assert_eq!(
        (amps_f.len(), amps_u.len()),
        (1, 1),
        "{amps_f:?} {amps_u:?}"
    );
    let (old_f, _, old_f_compute) = amps_f[0].clone();

    let node0_config = lab.dir.path().join("node0.toml");
    nodes[0].proc = Some(Proc::start(
        "node0",
        env!("CARGO_BIN_EXE_octavia"),
        &node0_config,
        &[
            ("RUST_LOG", "info,sqlx=warn,octavia_drivers=debug"),
            ("OCTAVIA_FAILPOINTS", DOOMED_FAILPOINTS),
        ],
    ));
    wait_api(&nodes[0].api).await;
    // Node 0 must win the claims of the jobs sent through it. Its start-up burst (the
    // housekeeper's first cleanup and spare pool passes, each on a database connection of
    // its own) must be over first, or its worker opens a fresh connection to claim while
    // the warm nodes 1 and 2, woken by the same notification, take the jobs.
    let node0_metrics = format!("{}/metrics", nodes[0].api);
    eventually(
        "node 0's first housekeeping passes",
        Duration::from_secs(30),
        || async {
            let text = reqwest::get(&node0_metrics).await.ok()?.text().await.ok()?;
            let done = text.contains("octavia_spare_pool_size")
                && text.contains("octavia_housekeeping_purged_total");
            done.then_some(())
        },
    )
    .await;
    let poller = ApiPoller::start(&lab, vec![nodes[1].api.clone(), nodes[2].api.clone()]);

    // The storm: a create and an update through node 0 (its worker claims them at once, its
    // notifier wakes it), a create through node 2, and an amphora whose processes die.
    let n0 = &nodes[0].api;
    let v = call_at(
        &lab,
        n0,
        Method::POST,
        "/v2/lbaas/loadbalancers",
        Some(tree(&lab, "cp-new-0")),
        201,
    )
    .await;
    let new0 = v["loadbalancer"]["id"].as_str().expect("lb id").to_string();
    let update = json!({"loadbalancer": {"description": "updated while node 0 dies"}});
    call_at(
        &lab,
        n0,
        Method::PUT,
        &format!("/v2/lbaas/loadbalancers/{u}"),
        Some(update),
        200,
    )
    .await;
    let n2 = &nodes[2].api;
    let v = call_at(
        &lab,
        n2,
        Method::POST,
        "/v2/lbaas/loadbalancers",
        Some(tree(&lab, "cp-new-2")),
        201,
    )
    .await;
    let new2 = v["loadbalancer"]["id"].as_str().expect("lb id").to_string();
    kill_namespace_processes(&old_f_compute);

    // Kill node 0 once its create is half done (amphora built and plugged), its update
    // runs, and the dead amphora's failover is claimed (by whichever health manager).
    let store = &db.store;
    let jobs = eventually(
        "node 0 to hold the create and the update, and the failover to be queued",
        Duration::from_secs(90),
        || async {
            let jobs = store.list_jobs(None).await.ok()?;
            let create = job_of(&jobs, "create_load_balancer", &new0)?;
            let ready = held_by(create, "node0-")
                && create
                    .completed_steps
                    .iter()
                    .any(|s| s == "plug_member_networks")
                && held_by(job_of(&jobs, "update_load_balancer", &u)?, "node0-")
                && jobs.iter().any(|j| {
                    // Claimed by any health manager; on node 0 it stops once the
                    // replacement is built and holds the VIP.
                    j.kind == "failover_amphora"
                        && (j.state == JobState::Done || !j.completed_steps.is_empty())
                });
            ready.then_some(jobs)
        },
    )
    .await;
    nodes[0].proc.take().expect("node 0 runs").kill9();
    let killed_at = Instant::now();
    let held: Vec<String> = jobs
        .iter()
        .filter(|j| held_by(j, "node0-"))
        .map(|j| format!("{} after {:?}", j.kind, j.completed_steps))
        .collect();
    let failover_state = jobs
        .iter()
        .find(|j| j.kind == "failover_amphora")
        .map(|j| format!("{:?} on {:?}", j.state, j.lease_owner));
    eprintln!("node 0 killed holding {held:?}; failover then {failover_state:?}");

    // Every job finishes on the surviving nodes.
    let jobs = eventually("every job to finish", Duration::from_secs(120), || async {
        let jobs = store.list_jobs(None).await.ok()?;
        if let Some(failed) = jobs.iter().find(|j| j.state == JobState::Failed) {
            panic!(
                "job {} {} failed: {:?}",
                failed.kind, failed.id, failed.error
            );
        }
        jobs.iter()
            .all(|j| j.state == JobState::Done)
            .then_some(jobs)
    })
    .await;
    let finished_after = killed_at.elapsed();
    for lb in [&f, &u, &new0, &new2] {
        wait_online(&lab, lb).await;
    }
    // An observation window, not a synchronisation: the surviving health managers sweep for
    // twice the heartbeat timeout (3 s) with node 0's receiver dead, so an amphora judged by
    // the heartbeats one receiver missed would have been failed over by now.
    eventually(
        "two heartbeat timeouts since the kill",
        Duration::from_secs(30),
        || async { (killed_at.elapsed() > Duration::from_secs(6)).then_some(()) },
    )
    .await;
    let (answers, errors) = poller.finish().await;

    // The failover ran once, for the killed amphora, and nothing else was failed over.
    let jobs_now = store.list_jobs(None).await.expect("list jobs");
    assert_eq!(
        jobs_now.len(),
        jobs.len(),
        "jobs queued after all finished: {jobs_now:?}"
    );
    let failovers: Vec<&JobRecord> = jobs_now
        .iter()
        .filter(|j| j.kind.starts_with("failover"))
        .collect();
    assert_eq!(failovers.len(), 1, "failover jobs: {failovers:?}");
    assert_eq!(
        failovers[0].spec.amphora_id.map(|a| a.to_string()),
        Some(old_f.clone()),
        "the failover is the killed amphora's"
    );
    let amps_f = amphorae(&lab, &f).await;
    assert!(
        amps_f.len() == 1 && amps_f[0].1 == "ALLOCATED" && amps_f[0].0 != old_f,
        "one replacement for the killed amphora: {amps_f:?}"
    );
    let old = store
        .get_amphora_any(old_f.parse().expect("amphora id"))
        .await
        .expect("read the old amphora")
        .expect("the old amphora's row");
    assert_eq!(old.status.to_string(), "DELETED", "{old:?}");
    assert!(
        namespaces_with(&old_f_compute).is_empty(),
        "the old amphora's instance remains"
    );
    assert_eq!(
        amphorae(&lab, &u).await,
        amps_u,
        "the updated LB kept its amphora"
    );
    for lb in [&new0, &new2] {
        let amps = amphorae(&lab, lb).await;
        assert!(
            amps.len() == 1 && amps[0].1 == "ALLOCATED",
            "one amphora for {lb}: {amps:?}"
        );
    }
    let namespaces = namespaces_with(&lab.amp_prefix());
    assert_eq!(
        namespaces.len(),
        4,
        "one instance per live amphora: {namespaces:?}"
    );

    // Every load balancer is ACTIVE, as both surviving APIs say, and serves.
    let mut vips = Vec::new();
    for api in [&nodes[1].api, &nodes[2].api] {
        let path = "/v2/lbaas/loadbalancers";
        let v = call_at(&lab, api, Method::GET, path, None, 200).await;
        let lbs = v["loadbalancers"].as_array().expect("list");
        assert_eq!(lbs.len(), 4, "{v}");
        for lb in lbs {
            assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
            vips.push(lb["vip_address"].as_str().expect("vip").to_string());
        }
    }
    for vip in &vips[..4] {
        let tally = Traffic::new(vip, 80, "/").run(4).await;
        assert_eq!(tally.failed, 0, "{vip}: {:?}", tally.errors);
    }
    eprintln!(
        "control plane: {} jobs done, the last {finished_after:?} after node 0's kill; \
         failover attempt {} on {:?}; API poller: {answers} answers, {} errors",
        jobs_now.len(),
        failovers[0].attempt,
        failovers[0].lease_owner,
        errors.len()
    );
    assert!(errors.is_empty(), "the surviving APIs failed: {errors:?}");
}
