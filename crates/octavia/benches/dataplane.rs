//! Data-plane benchmark (not a test): with the real drivers, how long until a load balancer
//! created through the REST API serves traffic, and how long until an added member does.
//!
//! ```sh
//! cargo build --release -p amphora-agent && cargo bench -p octavia --bench dataplane
//! ```
//! (or `cargo build -p amphora-agent && cargo bench --profile dev -p octavia --bench dataplane`
//! against the debug binaries, without a release build).
//!
//! Needs root, iproute2, HAProxy and python3 (it builds the same lab as the end-to-end tests:
//! amphorae and member web servers in namespaces it creates and removes). Prints, over
//! `OCTAVIA_BENCH_RUNS` runs (default 20):
//!
//! * create LB + HTTP listener + pool + 2 members (each POST waits for ACTIVE, as a client would)
//!   → first request answered by a member through the VIP;
//! * member add → first request answered by the new member;
//!
//! next to a baseline measured in the same run: a bare HAProxy started on loopback in front of
//! the same member until it answers, i.e. the floor any control plane adds its work to.

#[path = "../tests/e2e/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/e2e/lab.rs"]
#[allow(dead_code)]
mod lab;

#[path = "support/report.rs"]
mod report;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use lab::{Lab, Traffic};
use report::report;

fn runs() -> usize {
    std::env::var("OCTAVIA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20)
}

/// Requests every 10 ms until one is answered with a body that `want` accepts.
async fn until_served(traffic: &Traffic, want: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, body)) = traffic.one().await {
            if want(&body) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{} never served", traffic.url);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn member_body(lab: &Lab, i: usize) -> (String, String, String) {
    let m = &lab.members[i];
    (m.ip.clone(), m.name.clone(), lab.subnet_id.clone())
}

/// LB + listener + pool + 2 members, sequentially as a client does; returns
/// (lb, pool, vip, time until a member answers through the VIP).
async fn create_tree(lab: &Lab, run: usize) -> (String, String, Duration) {
    let started = Instant::now();
    let v = lab
        .call(
            Method::POST,
            "/v2/lbaas/loadbalancers",
            Some(json!({"loadbalancer": {
                "name": format!("bench-{run}"), "vip_subnet_id": lab.subnet_id}})),
            201,
        )
        .await;
    let lb = v["loadbalancer"]["id"].as_str().expect("lb id").to_string();
    lab.wait_lb_active(&lb, Duration::from_secs(60)).await;
    let (_, pool) = lab.http_listener_and_pool(&lb, 80).await;
    for i in 0..2 {
        let (ip, name, subnet) = member_body(lab, i);
        lab.create(
            &lb,
            &format!("/v2/lbaas/pools/{pool}/members"),
            "member",
            json!({"address": ip, "protocol_port": 8080, "subnet_id": subnet, "name": name}),
        )
        .await;
    }
    let v = lab
        .call(
            Method::GET,
            &format!("/v2/lbaas/loadbalancers/{lb}"),
            None,
            200,
        )
        .await;
    let vip = v["loadbalancer"]["vip_address"]
        .as_str()
        .expect("vip")
        .to_string();
    until_served(&Traffic::new(&vip, 80, "/"), |b| b.starts_with("member-")).await;
    (lb, pool, started.elapsed())
}

/// Baseline: a bare HAProxy on loopback in front of member 1, from spawn to first answer.
async fn haproxy_baseline(lab: &Lab) -> Duration {
    let port = support::free_port();
    let member = &lab.members[0];
    let cfg = lab.dir.path().join("baseline-haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    maxconn 1000\ndefaults\n    mode http\n    timeout connect 5s\n    \
             timeout client 50s\n    timeout server 50s\nfrontend f\n    bind 127.0.0.1:{port}\n    \
             default_backend b\nbackend b\n    server m {}:{}\n",
            member.ip, member.port
        ),
    )
    .expect("write baseline config");
    let started = Instant::now();
    let mut child = Command::new("/usr/sbin/haproxy")
        .arg("-f")
        .arg(&cfg)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    until_served(&Traffic::new("127.0.0.1", port, "/"), |b| {
        b.starts_with("member-")
    })
    .await;
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    took
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    if !lab::can_run() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let n = runs();
        let lab = Lab::new("bnch", 199, 3, "").await;
        println!("data-plane benchmark: {n} runs, SQLite, netns drivers, 2 cores");

        let mut baseline: Vec<Duration> = Vec::new();
        for _ in 0..n {
            baseline.push(haproxy_baseline(&lab).await);
        }

        let mut create = Vec::new();
        for run in 0..n {
            let (lb, _, took) = create_tree(&lab, run).await;
            create.push(took);
            lab.delete_cascade(&lb).await;
        }

        // Member add on one standing load balancer: member 3 joins, serves, and leaves.
        let (lb, pool, _) = create_tree(&lab, n).await;
        let vip = lab
            .call(
                Method::GET,
                &format!("/v2/lbaas/loadbalancers/{lb}"),
                None,
                200,
            )
            .await["loadbalancer"]["vip_address"]
            .as_str()
            .expect("vip")
            .to_string();
        let traffic = Traffic::new(&vip, 80, "/");
        let mut add = Vec::new();
        let mut add_after_active = Vec::new();
        for _ in 0..n {
            let (ip, name, subnet) = member_body(&lab, 2);
            let started = Instant::now();
            let v = lab
                .call(
                    Method::POST,
                    &format!("/v2/lbaas/pools/{pool}/members"),
                    Some(json!({"member": {
                        "address": ip, "protocol_port": 8080, "subnet_id": subnet, "name": name}})),
                    201,
                )
                .await;
            let member = v["member"]["id"].as_str().expect("member id").to_string();
            lab.wait_lb_active(&lb, Duration::from_secs(60)).await;
            let active = started.elapsed();
            until_served(&traffic, |b| b == name).await;
            let served = started.elapsed();
            add.push(served);
            add_after_active.push(served.saturating_sub(active));
            lab.call(
                Method::DELETE,
                &format!("/v2/lbaas/pools/{pool}/members/{member}"),
                None,
                204,
            )
            .await;
            lab.wait_lb_active(&lb, Duration::from_secs(60)).await;
        }
        lab.delete_cascade(&lb).await;

        report("baseline: bare haproxy spawn -> served", &mut baseline);
        report("create LB+listener+pool+2 members -> served", &mut create);
        report("member add (POST) -> served by it", &mut add);
        report("member add: ACTIVE -> served by it", &mut add_after_active);
        drop(lab);
    });
}
