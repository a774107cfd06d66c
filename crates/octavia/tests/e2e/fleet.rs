//! Helpers over a lab's load balancers and amphorae, shared by the failover tests and the
//! failover benchmark: amphora listings, waits for a replacement, a 50 ms prober.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use octavia_test_support::eventually;
use reqwest::Method;
use serde_json::Value;

use crate::lab::{Lab, Traffic};

/// The amphorae of a load balancer (admin list, filtered), as (id, status, compute_id).
pub async fn amphorae(lab: &Lab, lb: &str) -> Vec<(String, String, String)> {
    lab.amphorae_of(lb)
        .await
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or("").to_string();
            (s("id"), s("status"), s("compute_id"))
        })
        .collect()
}

/// The one ALLOCATED amphora of `lb` once it is not `old` and the LB is ACTIVE.
pub async fn wait_replaced(lab: &Lab, lb: &str, old: &str, timeout: Duration) -> (String, String) {
    let started = Instant::now();
    loop {
        let amps = amphorae(lab, lb).await;
        let lb_state = lab.provisioning_status(lb).await;
        let live: Vec<_> = amps
            .iter()
            .filter(|(_, s, _)| s != "DELETED")
            .cloned()
            .collect();
        let old_gone = amps.iter().all(|(id, s, _)| id != old || s == "DELETED");
        if lb_state == "ACTIVE"
            && old_gone
            && live.len() == 1
            && live[0].1 == "ALLOCATED"
            && live[0].0 != old
        {
            return (live[0].0.clone(), live[0].2.clone());
        }
        assert_ne!(
            lb_state,
            "ERROR",
            "failover failed: {amps:?}\n{}",
            lab.log()
        );
        assert!(
            started.elapsed() < timeout,
            "amphora {old} not replaced after {timeout:?}: LB {lb_state}, {amps:?}\n{}",
            lab.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client sending one request every 50 ms (or every `every`), recording when each
/// request was sent and whether it succeeded.
pub struct Prober {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<(Instant, bool)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Prober {
    pub fn start(traffic: Traffic) -> Prober {
        Self::every(traffic, Duration::from_millis(50))
    }

    pub fn every(traffic: Traffic, every: Duration) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (stop, log) = (stop.clone(), log.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let at = Instant::now();
                    let ok = matches!(
                        tokio::time::timeout(Duration::from_millis(500), traffic.one()).await,
                        Ok(Ok((200, _)))
                    );
                    log.lock().unwrap().push((at, ok));
                }
            })
        };
        Prober { stop, log, task }
    }

    /// Wait until the prober has seen the VIP answer once.
    pub async fn wait_first_success(&self) {
        let from = Instant::now() - Duration::from_secs(3600);
        eventually("the prober's first answer", Duration::from_secs(10), || {
            let ok = self.ok_after(from);
            async move { ok.then_some(()) }
        })
        .await;
    }

    /// Whether a request after `t` succeeded.
    pub fn ok_after(&self, t: Instant) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|(at, ok)| *ok && *at > t)
    }

    pub async fn finish(self) -> Vec<(Instant, bool)> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.log.lock().unwrap().clone()
    }
}

/// LB + HTTP listener + ROUND_ROBIN pool with the lab's members; (lb, vip) once ACTIVE.
pub async fn serving_lb(lab: &Lab, name: &str) -> (String, String) {
    let (lb, vip) = lab.create_lb(name).await;
    let (_, pool) = lab.http_listener_and_pool(&lb, 80).await;
    lab.add_members(&lb, &pool, 0..lab.members.len()).await;
    (lb, vip)
}

/// Heartbeats flow (the LB is ONLINE), so its amphorae have health rows that can go stale.
pub async fn wait_online(lab: &Lab, lb: &str) {
    eventually(
        "the load balancer to be ONLINE",
        Duration::from_secs(15),
        || async move {
            let v: Value = lab
                .call(
                    Method::GET,
                    &format!("/v2/lbaas/loadbalancers/{lb}"),
                    None,
                    200,
                )
                .await;
            (v["loadbalancer"]["operating_status"] == "ONLINE").then_some(())
        },
    )
    .await;
}

/// The last failed request after `since`, as a delay from `since`, and how many failed.
pub fn outage(log: &[(Instant, bool)], since: Instant) -> (Duration, usize) {
    let failed: Vec<Duration> = log
        .iter()
        .filter(|(at, ok)| !ok && *at > since)
        .map(|(at, _)| at.duration_since(since))
        .collect();
    (
        failed.iter().max().copied().unwrap_or_default(),
        failed.len(),
    )
}

/// Probe until a request after now succeeds, then stop and return the probe log.
pub async fn probe_until_served(prober: Prober) -> Vec<(Instant, bool)> {
    let from = Instant::now();
    eventually(
        "the VIP to answer after the failover",
        Duration::from_secs(15),
        || {
            let ok = prober.ok_after(from);
            async move { ok.then_some(()) }
        },
    )
    .await;
    prober.finish().await
}

pub fn kill_namespace_processes(ns: &str) {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    let pids = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!pids.trim().is_empty(), "no process in {ns}");
    for pid in pids.split_whitespace() {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
    }
}
