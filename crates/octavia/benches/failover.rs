//! Failover benchmark (not a test): kill an amphora's agent and HAProxy, `OCTAVIA_BENCH_KILLS`
//! times (default 10), and measure with the shipped defaults (heartbeat 1 s, timeout 3 s,
//! check every 0.5 s), which the lab does not override:
//!
//! * detection: kill → the worker starts the failover job (its "Performing failover for
//!   amphora <id>" log line);
//! * outage: first → last failed request of a client probing the VIP every 50 ms;
//! * kill → VIP answering again.
//!
//! Baseline measured in the same run: a load balancer built from scratch (create → served),
//! which bounds the rebuild part of a failover.
//!
//! ```sh
//! cargo build -p amphora-agent && cargo bench --profile dev -p octavia --bench failover
//! ```
//! (`--profile dev` runs against the debug binaries; a release run needs
//! `cargo build --release -p amphora-agent` and no `--profile`.)

#[path = "../tests/e2e/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/e2e/lab.rs"]
#[allow(dead_code)]
mod lab;

#[path = "../tests/e2e/fleet.rs"]
#[allow(dead_code)]
mod fleet;

#[path = "support/report.rs"]
mod report;

use std::time::{Duration, Instant, SystemTime};

use fleet::{amphorae, kill_namespace_processes, serving_lb, wait_online, wait_replaced, Prober};
use lab::{Lab, Traffic};
use octavia_test_support::eventually;
use report::report;

fn kills() -> usize {
    std::env::var("OCTAVIA_BENCH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10)
}

/// The wall-clock time of the first log line containing `needle` (RFC 3339 prefix).
fn logged_at(log: &str, needle: &str) -> Option<SystemTime> {
    let line = log.lines().find(|l| l.contains(needle))?;
    let stamp = line.split_whitespace().next()?;
    let t = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
    let since = t.signed_duration_since(chrono::DateTime::UNIX_EPOCH);
    Some(SystemTime::UNIX_EPOCH + since.to_std().ok()?)
}

fn main() {
    if !lab::can_run() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let n = kills();
        let lab = Lab::new("bfo", 198, 2, "").await;
        println!("failover benchmark: {n} kills, SQLite, netns drivers, shipped defaults (heartbeat 1 s / timeout 3 s / check 0.5 s)");

        let started = Instant::now();
        let (lb, vip) = serving_lb(&lab, "bench-failover").await;
        let traffic = Traffic::new(&vip, 80, "/");
        eventually("the first answer", Duration::from_secs(30), || {
            let traffic = &traffic;
            async move { matches!(traffic.one().await, Ok((200, _))).then_some(()) }
        })
        .await;
        let mut baseline = vec![started.elapsed()];

        let (mut detection, mut outage, mut recovery) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            wait_online(&lab, &lb).await;
            let (old_id, _, old_compute) = amphorae(&lab, &lb)
                .await
                .into_iter()
                .find(|(_, s, _)| s == "ALLOCATED")
                .expect("a serving amphora");
            let prober = Prober::start(Traffic::new(&vip, 80, "/"));
            prober.wait_first_success().await;
            let killed_wall = SystemTime::now();
            let killed_at = Instant::now();
            kill_namespace_processes(&old_compute);
            wait_replaced(&lab, &lb, &old_id, Duration::from_secs(60)).await;
            let log = fleet::probe_until_served(prober).await;
            let failed: Vec<Instant> = log
                .iter()
                .filter(|(at, ok)| !ok && *at > killed_at)
                .map(|(at, _)| *at)
                .collect();
            if let (Some(first), Some(last)) = (failed.first(), failed.last()) {
                outage.push(last.duration_since(*first));
                recovery.push(last.duration_since(killed_at));
            } else {
                outage.push(Duration::ZERO);
                recovery.push(Duration::ZERO);
            }
            let claimed = logged_at(
                &lab.log(),
                &format!("Performing failover for amphora {old_id}"),
            )
            .expect("failover log line");
            detection.push(
                claimed
                    .duration_since(killed_wall)
                    .unwrap_or(Duration::ZERO),
            );
        }

        // Baseline: more LBs from scratch, as many as the kills (at most 5).
        for i in 0..n.min(5) {
            let started = Instant::now();
            let (lb2, vip2) = serving_lb(&lab, &format!("bench-baseline-{i}")).await;
            let t = Traffic::new(&vip2, 80, "/");
            eventually("the baseline LB to serve", Duration::from_secs(30), || {
                let t = &t;
                async move { matches!(t.one().await, Ok((200, _))).then_some(()) }
            })
            .await;
            baseline.push(started.elapsed());
            lab.delete_cascade(&lb2).await;
        }

        report("baseline: create LB+listener+pool+2 members -> served", &mut baseline);
        report("detection: kill -> failover job started", &mut detection);
        report("outage: first -> last failed request (50 ms probe)", &mut outage);
        report("kill -> VIP answering again", &mut recovery);
        drop(lab);
    });
}
