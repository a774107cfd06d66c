//! The data plane end to end: load balancers built by the all-in-one with the real drivers
//! (amphorae in network namespaces running our agent and HAProxy) serve real HTTP/TCP traffic
//! to member web servers in their own namespaces; member health comes back through heartbeats.

use std::future::ready;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use octavia_test_support::{describe, eventually};
use reqwest::Method;
use serde_json::{json, Value};

use crate::lab::{can_run, Lab, Traffic};

const HM_DELAY: u64 = 1;
const HM_RETRIES_DOWN: u64 = 2;
const HEARTBEAT_INTERVAL: u64 = 1;
/// Slack on top of delay × max_retries_down + heartbeat_interval for the health manager's
/// write and our polling.
const MARGIN: Duration = Duration::from_secs(3);

fn find<'a>(items: &'a Value, id: &str) -> &'a Value {
    items
        .as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == id))
        .unwrap_or(&Value::Null)
}

/// The operating status of every object in the status tree, by id.
fn operating(tree: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let lb = &tree["statuses"]["loadbalancer"];
    out.push((
        lb["id"].as_str().unwrap_or("").to_string(),
        lb["operating_status"].as_str().unwrap_or("").to_string(),
    ));
    for l in lb["listeners"].as_array().into_iter().flatten() {
        out.push((
            l["id"].as_str().unwrap_or("").into(),
            l["operating_status"].as_str().unwrap_or("").into(),
        ));
        for p in l["pools"].as_array().into_iter().flatten() {
            out.push((
                p["id"].as_str().unwrap_or("").into(),
                p["operating_status"].as_str().unwrap_or("").into(),
            ));
            for m in p["members"].as_array().into_iter().flatten() {
                out.push((
                    m["id"].as_str().unwrap_or("").into(),
                    m["operating_status"].as_str().unwrap_or("").into(),
                ));
            }
        }
    }
    out
}

fn member_status(tree: &Value, pool: &str, member: &str) -> String {
    let lb = &tree["statuses"]["loadbalancer"];
    for l in lb["listeners"].as_array().into_iter().flatten() {
        let p = find(&l["pools"], pool);
        if !p.is_null() {
            return find(&p["members"], member)["operating_status"]
                .as_str()
                .unwrap_or("")
                .to_string();
        }
    }
    String::new()
}

fn pool_status(tree: &Value, pool: &str) -> String {
    let lb = &tree["statuses"]["loadbalancer"];
    for l in lb["listeners"].as_array().into_iter().flatten() {
        let p = find(&l["pools"], pool);
        if !p.is_null() {
            return p["operating_status"].as_str().unwrap_or("").to_string();
        }
    }
    String::new()
}

/// Requests sent back to back in the background until stopped; counts failures and which
/// member answered, with the time of each answer.
struct Background {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    fn start(traffic: Traffic) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (stop, ok, failures, seen) =
                (stop.clone(), ok.clone(), failures.clone(), seen.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match traffic.one().await {
                        Ok((200, body)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            seen.lock().unwrap().push((Instant::now(), body));
                        }
                        Ok((status, body)) => {
                            failures.lock().unwrap().push(format!("{status} {body}"))
                        }
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        Background {
            stop,
            ok,
            failures,
            seen,
            task,
        }
    }

    /// Wait until `n` more requests succeeded (panics after 20 s).
    async fn wait_more(&self, n: usize) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        let stalled = describe(|| {
            format!(
                "{n} more requests served (traffic stalled: failures {:?})",
                self.failures.lock().unwrap()
            )
        });
        eventually(stalled, Duration::from_secs(20), || {
            ready((self.ok.load(Ordering::Relaxed) >= target).then_some(()))
        })
        .await;
    }

    async fn finish(self) -> (usize, Vec<String>, Vec<(Instant, String)>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let failures = self.failures.lock().unwrap().clone();
        let seen = self.seen.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures, seen)
    }
}

/// The load balancer's live amphorae (id, status), sorted.
async fn amphora_ids(lab: &Lab, lb: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = crate::fleet::amphorae(lab, lb)
        .await
        .into_iter()
        .filter(|(_, status, _)| status != "DELETED")
        .map(|(id, status, _)| (id, status))
        .collect();
    out.sort();
    out
}

async fn wait_status(
    lab: &Lab,
    lb: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let tree = lab.status(lb).await;
        if pred(&tree) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; status tree: {tree}\n{}",
            lab.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// LB + HTTP listener + ROUND_ROBIN pool + two members + HTTP monitor: traffic reaches both,
/// the tree goes ONLINE; a member that stops goes ERROR (pool DEGRADED) in time with zero failed
/// requests, and comes back ONLINE; a member added under traffic serves within 1 s of its
/// ACTIVE and one deleted under traffic costs no request; `/stats` counts what was sent; the
/// control plane killed and restarted keeps the LB serving and managed; cascade delete leaves
/// nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_load_balancer_end_to_end() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("a", 1, 3, "").await;
    // Member 3 exists as a server but joins the pool later.
    let (lb, vip) = lab.create_lb("e2e-http").await;
    let (listener, pool) = lab.http_listener_and_pool(&lb, 80).await;
    let member_ids = lab.add_members(&lb, &pool, 0..2).await;
    lab.create(
        &lb,
        "/v2/lbaas/healthmonitors",
        "healthmonitor",
        json!({"pool_id": pool, "type": "HTTP", "delay": HM_DELAY, "timeout": 1,
               "max_retries": 1, "max_retries_down": HM_RETRIES_DOWN, "url_path": "/"}),
    )
    .await;

    // 100 requests through the VIP reach both members.
    let traffic = Traffic::new(&vip, 80, "/");
    let tally = traffic.run(100).await;
    assert_eq!(tally.failed, 0, "failed requests: {:?}", tally.errors);
    assert_eq!(tally.ok, 100);
    assert!(
        tally.by_body.get("member-1").copied().unwrap_or(0) > 0
            && tally.by_body.get("member-2").copied().unwrap_or(0) > 0,
        "both members serve: {:?}",
        tally.by_body
    );
    wait_status(
        &lab,
        &lb,
        "everything ONLINE",
        Duration::from_secs(20),
        |t| {
            let all = operating(t);
            all.len() == 5 && all.iter().all(|(_, s)| s == "ONLINE")
        },
    )
    .await;

    // Stop member 1: ERROR + DEGRADED in time, no failed request meanwhile.
    let bg = Background::start(Traffic::new(&vip, 80, "/"));
    lab.members[0].stop();
    let bound = Duration::from_secs(HM_DELAY * HM_RETRIES_DOWN + HEARTBEAT_INTERVAL) + MARGIN;
    let took = wait_status(&lab, &lb, "member 1 ERROR and pool DEGRADED", bound, |t| {
        member_status(t, &pool, &member_ids[0]) == "ERROR" && pool_status(t, &pool) == "DEGRADED"
    })
    .await;
    eprintln!("member down detected in {took:?} (bound {bound:?})");
    lab.members[0].start().await;
    wait_status(
        &lab,
        &lb,
        "member 1 ONLINE again",
        Duration::from_secs(15),
        |t| {
            member_status(t, &pool, &member_ids[0]) == "ONLINE" && pool_status(t, &pool) == "ONLINE"
        },
    )
    .await;
    let (ok, failures, _) = bg.finish().await;
    assert!(
        failures.is_empty(),
        "{} failed requests while a member was down: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 0);

    // Add member 3 under traffic: it serves within 1 s of its ACTIVE; nothing fails.
    let bg = Background::start(Traffic::new(&vip, 80, "/"));
    let created = lab
        .call(
            Method::POST,
            &format!("/v2/lbaas/pools/{pool}/members"),
            Some(json!({ "member": lab.member_body(2) })),
            201,
        )
        .await;
    let m3_id = created["member"]["id"]
        .as_str()
        .expect("member id")
        .to_string();
    let active_at = loop {
        let v = lab
            .call(
                Method::GET,
                &format!("/v2/lbaas/pools/{pool}/members/{m3_id}"),
                None,
                200,
            )
            .await;
        if v["member"]["provisioning_status"] == "ACTIVE" {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let deadline = active_at + Duration::from_secs(1);
    let first_m3 = loop {
        let hit = bg
            .seen
            .lock()
            .unwrap()
            .iter()
            .find(|(_, b)| b == "member-3")
            .map(|(t, _)| *t);
        if let Some(t) = hit {
            break t;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(2),
            "member 3 never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let lag = first_m3.saturating_duration_since(active_at);
    eprintln!("member add: first request served {lag:?} after ACTIVE");
    assert!(
        first_m3 <= deadline,
        "member 3 first served {lag:?} after its ACTIVE (> 1 s)"
    );
    // Delete member 2 under traffic.
    lab.call(
        Method::DELETE,
        &format!("/v2/lbaas/pools/{pool}/members/{}", member_ids[1]),
        None,
        204,
    )
    .await;
    lab.wait_lb_active(&lb, Duration::from_secs(30)).await;
    let deleted_at = Instant::now();
    // Keep sending a while longer, then check member 2 got nothing after its removal applied.
    bg.wait_more(20).await;
    let (_, failures, seen) = bg.finish().await;
    assert!(
        failures.is_empty(),
        "{} failed requests while adding/deleting members: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        !seen.iter().any(|(t, b)| *t > deleted_at && b == "member-2"),
        "the deleted member still served after the delete applied"
    );

    // /stats counts what was sent.
    let before = lab
        .call(
            Method::GET,
            &format!("/v2/lbaas/listeners/{listener}/stats"),
            None,
            200,
        )
        .await;
    let base_conns = before["stats"]["total_connections"].as_i64().unwrap_or(0);
    let tally = traffic.run(50).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    let stats = eventually(
        "listener stats to count 50 more connections",
        Duration::from_secs(10),
        || {
            let lab = &lab;
            let listener = listener.clone();
            async move {
                let v = lab
                    .call(
                        Method::GET,
                        &format!("/v2/lbaas/listeners/{listener}/stats"),
                        None,
                        200,
                    )
                    .await;
                let conns = v["stats"]["total_connections"].as_i64().unwrap_or(0);
                (conns >= base_conns + 50).then_some(v)
            }
        },
    )
    .await;
    assert!(
        stats["stats"]["bytes_in"].as_i64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(
        stats["stats"]["bytes_out"].as_i64().unwrap_or(0) > 0,
        "{stats}"
    );
    let lb_stats = lab
        .call(
            Method::GET,
            &format!("/v2/lbaas/loadbalancers/{lb}/stats"),
            None,
            200,
        )
        .await;
    assert!(
        lb_stats["stats"]["total_connections"].as_i64().unwrap_or(0) >= base_conns + 50,
        "{lb_stats}"
    );

    // Kill the control plane and start it again: the LB serves throughout and is still managed.
    let amphorae_before = amphora_ids(&lab, &lb).await;
    let bg = Background::start(Traffic::new(&vip, 80, "/"));
    lab.kill_control_plane();
    bg.wait_more(20).await; // the VIP keeps answering while the control plane is down
    lab.start_control_plane().await;
    // Update a member: weight 0 on member 1 drains it; the change applies.
    lab.call(
        Method::PUT,
        &format!("/v2/lbaas/pools/{pool}/members/{}", member_ids[0]),
        Some(json!({"member": {"weight": 0}})),
        200,
    )
    .await;
    lab.wait_lb_active(&lb, Duration::from_secs(30)).await;
    let tally = traffic.run(40).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    assert_eq!(
        tally.by_body.get("member-1"),
        None,
        "weight 0 member still served: {:?}",
        tally.by_body
    );
    // The restarted health manager judged its amphorae (a sweep ran: the gauge is exported)
    // and failed none over: the restart itself triggers no failover.
    eventually(
        "the restarted health manager's first stale check",
        Duration::from_secs(20),
        || {
            let lab = &lab;
            async move {
                let text = lab
                    .http
                    .get(format!("{}/metrics", lab.api))
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                text.lines()
                    .any(|l| l.starts_with("octavia_stale_amphorae "))
                    .then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        amphora_ids(&lab, &lb).await,
        amphorae_before,
        "the control-plane restart caused a failover\n{}",
        lab.log()
    );
    let (_, failures, _) = bg.finish().await;
    assert!(
        failures.is_empty(),
        "{} failed requests across the control-plane restart: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // Cascade delete: nothing of the LB remains.
    lab.delete_cascade(&lb).await;
    let left = lab.amphora_leftovers();
    assert!(
        left.is_empty(),
        "left behind after cascade delete: {left:?}"
    );
}

/// TCP listener; SOURCE_IP session persistence; an L7 REDIRECT_TO_POOL rule on PATH and a
/// REJECT rule, each proven with real requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_persistence_and_l7_rules() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("b", 2, 3, "").await;
    let (lb, vip) = lab.create_lb("e2e-l7").await;

    // TCP listener on 8000 with a SOURCE_IP-persistent pool of members 1 and 2.
    let tcp = lab
        .create(
            &lb,
            "/v2/lbaas/listeners",
            "listener",
            json!({"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 8000}),
        )
        .await;
    let tcp_pool = lab
        .create(&lb, "/v2/lbaas/pools", "pool", json!({"listener_id": tcp, "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN", "session_persistence": {"type": "SOURCE_IP"}}))
        .await;
    lab.add_members(&lb, &tcp_pool, 0..2).await;
    let tally = Traffic::new(&vip, 8000, "/").run(30).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    assert_eq!(
        tally.by_body.len(),
        1,
        "SOURCE_IP persistence sends one client to one member: {:?}",
        tally.by_body
    );

    // HTTP listener on 80: default pool member 1; /api/* goes to a pool of member 3; /forbidden is rejected.
    let (http, default_pool) = lab.http_listener_and_pool(&lb, 80).await;
    lab.add_members(&lb, &default_pool, [0]).await;
    let api_pool = lab
        .create(
            &lb,
            "/v2/lbaas/pools",
            "pool",
            json!({"loadbalancer_id": lb, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}),
        )
        .await;
    lab.add_members(&lb, &api_pool, [2]).await;
    let redirect = lab
        .create(&lb, "/v2/lbaas/l7policies", "l7policy", json!({"listener_id": http, "action": "REDIRECT_TO_POOL", "redirect_pool_id": api_pool, "position": 1}))
        .await;
    lab.create(
        &lb,
        &format!("/v2/lbaas/l7policies/{redirect}/rules"),
        "rule",
        json!({"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"}),
    )
    .await;
    let reject = lab
        .create(
            &lb,
            "/v2/lbaas/l7policies",
            "l7policy",
            json!({"listener_id": http, "action": "REJECT", "position": 2}),
        )
        .await;
    lab.create(
        &lb,
        &format!("/v2/lbaas/l7policies/{reject}/rules"),
        "rule",
        json!({"type": "PATH", "compare_type": "EQUAL_TO", "value": "/forbidden"}),
    )
    .await;

    // Member 3 answers /api/ with its own page, so a routed request is recognisable.
    std::fs::create_dir_all(lab.dir.path().join("www3/api")).unwrap();
    std::fs::write(lab.dir.path().join("www3/api/index.html"), "member-3-api\n").unwrap();
    let plain = Traffic::new(&vip, 80, "/").run(10).await;
    assert_eq!(plain.failed, 0, "{:?}", plain.errors);
    assert_eq!(
        plain.by_body.keys().collect::<Vec<_>>(),
        vec!["member-1"],
        "{:?}",
        plain.by_body
    );
    let routed = Traffic::new(&vip, 80, "/api/").run(5).await;
    assert_eq!(routed.failed, 0, "{:?}", routed.errors);
    assert_eq!(
        routed.by_body.keys().collect::<Vec<_>>(),
        vec!["member-3-api"],
        "{:?}",
        routed.by_body
    );
    let rejected = Traffic::new(&vip, 80, "/forbidden")
        .one()
        .await
        .expect("forbidden request");
    assert_eq!(rejected.0, 403, "REJECT answers 403: {rejected:?}");
}

/// `PUT /pools/{id}/members` replaces two members by a new one under continuous traffic:
/// no request fails during the change, and afterwards only the new member answers
/// (regression: the batch job found no flow and left every member in ERROR). Then a
/// PROMETHEUS listener serves the load balancer's metrics through the VIP (regression: it was
/// accepted, went ERROR, and wedged every later job of its load balancer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_batch_update_replaces_members_under_traffic() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("k", 12, 3, "").await;
    let (lb, vip) = lab.create_lb("e2e-batch").await;
    let (listener, pool) = lab.http_listener_and_pool(&lb, 80).await;
    let members = format!("/v2/lbaas/pools/{pool}/members");
    lab.add_members(&lb, &pool, 0..2).await;
    let tally = Traffic::new(&vip, 80, "/").run(20).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    assert_eq!(
        tally.by_body.keys().cloned().collect::<Vec<_>>(),
        ["member-1", "member-2"]
    );

    let bg = Background::start(Traffic::new(&vip, 80, "/"));
    bg.wait_more(10).await;
    lab.call(
        Method::PUT,
        &members,
        Some(json!({"members": [lab.member_body(2)]})),
        202,
    )
    .await;
    lab.wait_lb_active(&lb, Duration::from_secs(60)).await;
    let listed = lab.call(Method::GET, &members, None, 200).await;
    let listed = listed["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["address"], lab.members[2].ip.as_str());
    assert_eq!(listed[0]["provisioning_status"], "ACTIVE");
    let changed = Instant::now();
    bg.wait_more(30).await;
    let (ok, failures, seen) = bg.finish().await;
    assert!(
        failures.is_empty(),
        "requests failed during the change: {failures:?}"
    );
    assert!(ok >= 40);
    let after: Vec<&String> = seen
        .iter()
        .filter(|(at, _)| *at > changed)
        .map(|(_, body)| body)
        .collect();
    assert!(after.len() >= 30, "{}", after.len());
    assert!(
        after.iter().all(|b| *b == "member-3"),
        "after the batch update only the new member answers: {after:?}"
    );
    let tally = Traffic::new(&vip, 80, "/").run(20).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    assert_eq!(
        tally.by_body.get("member-3"),
        Some(&20),
        "{:?}",
        tally.by_body
    );

    // A PROMETHEUS listener on the same load balancer serves its metrics under Octavia's
    // names, through the agent's metrics proxy inside the amphora.
    lab.create(
        &lb,
        "/v2/lbaas/listeners",
        "listener",
        json!({"loadbalancer_id": lb, "protocol": "PROMETHEUS", "protocol_port": 9100}),
    )
    .await;
    let metrics = Traffic::new(&vip, 9100, "/metrics");
    let (status, text) = metrics.one().await.expect("metrics answer");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(&format!(
            "octavia_listener_bytes_in_total{{listener=\"{listener}\"}}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("pool=\"{pool}:{listener}\"")),
        "{text}"
    );
    assert!(text.contains("octavia_loadbalancer_cpu "), "{text}");
    assert!(!text.contains("haproxy_"), "{text}");
    let tally = Traffic::new(&vip, 80, "/").run(5).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);

    lab.delete_cascade(&lb).await;
    let left = lab.amphora_leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A load balancer whose create failed is deleted, and leaves no namespace, veth, address or
/// process behind: a VIP the network could not allocate (nothing built), and a create that
/// failed after its amphora was built and plugged (regression: every delete of such a load
/// balancer failed again, because reading its VIP allocated one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers_whose_create_failed_are_deleted_without_leftovers() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("l", 13, 1, "").await;

    // The requested VIP address is a member server's: the network refuses it.
    let taken = lab.members[0].ip.clone();
    failed_create_is_deleted_without_leftovers(
        &lab,
        json!({"name": "taken-vip", "vip_subnet_id": lab.subnet_id, "vip_address": taken}),
    )
    .await;

    // A create that fails at its last step, after the amphora was built and the VIP plugged.
    lab.kill_control_plane();
    lab.start_control_plane_with(&[(
        "OCTAVIA_FAILPOINTS",
        "create_load_balancer/update_amphorae=error",
    )])
    .await;
    failed_create_is_deleted_without_leftovers(
        &lab,
        json!({"name": "failed", "vip_subnet_id": lab.subnet_id}),
    )
    .await;
}

/// POST the load balancer `body` (accepted), wait for its create to fail (ERROR), delete it:
/// nothing of it is left on the host.
async fn failed_create_is_deleted_without_leftovers(lab: &Lab, body: Value) {
    let v = lab
        .call(
            Method::POST,
            "/v2/lbaas/loadbalancers",
            Some(json!({ "loadbalancer": body })),
            201,
        )
        .await;
    let lb = v["loadbalancer"]["id"].as_str().expect("id").to_string();
    wait_lb_status(lab, &lb, "ERROR").await;
    lab.delete_cascade(&lb).await;
    let left = lab.amphora_leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Poll until the load balancer's provisioning status is `want`.
async fn wait_lb_status(lab: &Lab, lb: &str, want: &str) {
    eventually(
        &format!("load balancer {lb} to be {want}"),
        Duration::from_secs(60),
        || async move {
            let v = lab
                .call(
                    Method::GET,
                    &format!("/v2/lbaas/loadbalancers/{lb}"),
                    None,
                    200,
                )
                .await;
            (v["loadbalancer"]["provisioning_status"] == want).then_some(())
        },
    )
    .await;
}

/// A flavor and an availability zone take effect on real amphorae: the flavor's
/// `amp_image_tag` picks the image they boot and its `compute_flavor` is recorded, the zone's
/// `compute_zone` puts them on the one host of that zone (`[netns] host_zones`), and a zone
/// no host is in fails the create, which leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flavor_and_zone_pick_the_image_and_the_hosts() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("z", 14, 0, "host_zones = { \"host-b\" = \"zone-b\" }\n").await;
    let gold = lab.register_image("gold");
    let made = |path: &'static str, key: &'static str, body: Value, id: &'static str| {
        let lab = &lab;
        async move {
            let v = lab
                .call(Method::POST, path, Some(json!({ key: body })), 201)
                .await;
            v[key][id]
                .as_str()
                .expect("id of the new record")
                .to_string()
        }
    };
    let flavor = lab
        .create_flavor(
            "gold",
            r#"{"amp_image_tag": "gold", "compute_flavor": "m1.gold"}"#,
        )
        .await;
    for (zone, compute_zone) in [("east", "zone-b"), ("nowhere", "zone-x")] {
        let azp = made(
            "/v2/lbaas/availabilityzoneprofiles",
            "availability_zone_profile",
            json!({"name": zone, "provider_name": "amphora",
                   "availability_zone_data": format!(r#"{{"compute_zone": "{compute_zone}"}}"#)}),
            "id",
        )
        .await;
        made(
            "/v2/lbaas/availabilityzones",
            "availability_zone",
            json!({"name": zone, "availability_zone_profile_id": azp}),
            "name",
        )
        .await;
    }
    let create = |name: &'static str, zone: &'static str| {
        let lab = &lab;
        let flavor = flavor.clone();
        async move {
            let v = lab
                .call(
                    Method::POST,
                    "/v2/lbaas/loadbalancers",
                    Some(
                        json!({"loadbalancer": {"name": name, "vip_subnet_id": lab.subnet_id,
                                                 "flavor_id": flavor, "availability_zone": zone}}),
                    ),
                    201,
                )
                .await;
            v["loadbalancer"]["id"].as_str().expect("lb id").to_string()
        }
    };

    let lb = create("gold-east", "east").await;
    lab.wait_lb_active(&lb, Duration::from_secs(60)).await;
    let amps = lab
        .call(
            Method::GET,
            &format!("/v2/octavia/amphorae?loadbalancer_id={lb}"),
            None,
            200,
        )
        .await;
    let amp = &amps["amphorae"][0];
    assert_eq!(amp["image_id"], json!(gold), "the flavor's image: {amp}");
    assert_eq!(amp["compute_flavor"], "m1.gold", "{amp}");
    assert_eq!(amp["cached_zone"], "zone-b", "on the zone's host: {amp}");

    let stranded = create("gold-nowhere", "nowhere").await;
    eventually(
        "the create in a zone without hosts to fail",
        Duration::from_secs(60),
        || {
            let lab = &lab;
            let stranded = stranded.clone();
            async move {
                let v = lab
                    .call(
                        Method::GET,
                        &format!("/v2/lbaas/loadbalancers/{stranded}"),
                        None,
                        200,
                    )
                    .await;
                (v["loadbalancer"]["provisioning_status"] == "ERROR").then_some(())
            }
        },
    )
    .await;
    assert!(
        lab.log().contains("zone-x"),
        "the failure names the zone:\n{}",
        lab.log()
    );

    lab.delete_cascade(&stranded).await;
    lab.delete_cascade(&lb).await;
    assert_eq!(lab.amphora_leftovers(), Vec::<String>::new());
}
