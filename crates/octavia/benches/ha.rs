//! High-availability benchmarks (not tests), on the real binaries with the netns drivers,
//! HAProxy and keepalived, and the shipped failover defaults. `OCTAVIA_BENCH_HA` picks the
//! scenarios (comma-separated; default `takeover,hostloss`):
//!
//! * `takeover`: an ACTIVE_STANDBY load balancer under continuous traffic (a request every
//!   20 ms); the amphora holding the VIP dies — every process killed (kill -9), or killed and
//!   its namespace deleted — and the gap from the first to the last failed request is
//!   measured, `OCTAVIA_BENCH_RUNS` times (default 10) per way, for each advert interval of
//!   `OCTAVIA_BENCH_ADVERTS` (default `100ms,200ms,1s`; 1 s, Octavia's, is the baseline).
//!   After each run the health manager rebuilds the dead amphora before the next.
//! * `hostloss`: 10 ACTIVE_STANDBY and 5 SINGLE load balancers on 3 hosts; one host is lost
//!   (`octavia host fail`); failed requests per load balancer and the time until every load
//!   balancer is whole again, off that host. Baseline: one load balancer's failover alone.
//! * `soak`: 50 SINGLE load balancers for `OCTAVIA_BENCH_SOAK_MINUTES` (default 10) with a
//!   busy loop on each core beside the control plane and a request through every VIP every
//!   second; counts failovers (must be 0). Baseline: the same count over the first minute
//!   without the busy loops.
//!
//! ```sh
//! cargo build -p amphora-agent && OCTAVIA_BENCH_HA=takeover,hostloss,soak \
//!   cargo bench --profile dev -p octavia --bench ha
//! ```

#[path = "../tests/e2e/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/e2e/lab.rs"]
#[allow(dead_code)]
mod lab;

#[path = "../tests/e2e/fleet.rs"]
#[allow(dead_code)]
mod fleet;

#[path = "../tests/e2e/vrrp.rs"]
#[allow(dead_code)]
mod vrrp;

#[path = "support/report.rs"]
mod report;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fleet::Prober;
use lab::{Lab, Traffic};
use octavia_test_support::eventually;
use report::report;
use reqwest::Method;
use serde_json::{json, Value};
use vrrp::{amphorae, compute_id, hosts_of, one_holder, standby_flavor};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// Failed requests after `since`, and the gap from the first to the last of them.
fn gap(log: &[(Instant, bool)], since: Instant) -> (usize, Duration) {
    let failed: Vec<Instant> = log
        .iter()
        .filter(|(at, ok)| !ok && *at >= since)
        .map(|(at, _)| *at)
        .collect();
    match (failed.first(), failed.last()) {
        (Some(first), Some(last)) => (failed.len(), last.duration_since(*first)),
        _ => (0, Duration::ZERO),
    }
}

/// An ACTIVE_STANDBY (`flavor`) or SINGLE (`None`) load balancer serving HTTP on port 80
/// from the lab's members; its id and VIP.
async fn serving(lab: &Lab, name: &str, flavor: Option<&str>) -> (String, String) {
    let extra = flavor.map_or_else(|| json!({}), |f| json!({ "flavor_id": f }));
    let (lb, vip) = lab.create_lb_with(name, extra).await;
    let (_, pool) = lab.http_listener_and_pool(&lb, 80).await;
    lab.add_members(&lb, &pool, 0..lab.members.len()).await;
    let t = Traffic::new(&vip, 80, "/");
    eventually(
        "the load balancer to serve",
        Duration::from_secs(30),
        || {
            let t = &t;
            async move { matches!(t.one().await, Ok((200, _))).then_some(()) }
        },
    )
    .await;
    (lb, vip)
}

/// Both amphorae of `lb` ALLOCATED, none of `gone`, the load balancer ACTIVE, exactly one
/// holding the VIP; the amphorae.
async fn pair_whole(lab: &Lab, lb: &str, vip: &str, gone: &[String]) -> Vec<Value> {
    let amps = eventually("the pair to be whole", Duration::from_secs(120), || async {
        let amps = amphorae(lab, lb).await;
        let ok = lab.provisioning_status(lb).await == "ACTIVE"
            && amps.len() == 2
            && amps.iter().all(|a| a["status"] == "ALLOCATED")
            && amps.iter().all(|a| !gone.contains(&compute_id(a)));
        ok.then_some(amps)
    })
    .await;
    one_holder(&amps, vip, "one amphora to hold the VIP").await;
    amps
}

/// Kill every process of namespace `ns`; with `delete`, the namespace goes too (its
/// interfaces vanish, as when the host dies).
fn kill(ns: &str, delete: bool) {
    fleet::kill_namespace_processes(ns);
    if delete {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
}

async fn takeover(runs: usize) {
    let adverts =
        std::env::var("OCTAVIA_BENCH_ADVERTS").unwrap_or_else(|_| "100ms,200ms,1s".into());
    for advert in adverts.split(',').map(str::trim) {
        let lab = Lab::new(
            "bha",
            197,
            2,
            &format!("[keepalived_vrrp]\nvrrp_advert_int = \"{advert}\"\n"),
        )
        .await;
        let flavor = standby_flavor(&lab).await;
        let (lb, vip) = serving(&lab, "bench-takeover", Some(&flavor)).await;
        let mut killed: Vec<String> = Vec::new();
        for (way, delete) in [("kill -9", false), ("namespace deleted", true)] {
            let mut gaps = Vec::new();
            let mut failures = Vec::new();
            let mut lost_runs = 0;
            for _ in 0..runs {
                let amps = pair_whole(&lab, &lb, &vip, &killed).await;
                let holder = one_holder(&amps, &vip, "the holder").await;
                let probe = Prober::every(Traffic::new(&vip, 80, "/"), Duration::from_millis(20));
                let started = Instant::now();
                eventually("the probe's first answer", Duration::from_secs(10), || {
                    let ok = probe.ok_after(started);
                    async move { ok.then_some(()) }
                })
                .await;
                let killed_at = Instant::now();
                kill(&holder, delete);
                killed.push(holder.clone());
                while !(probe.ok_after(killed_at + Duration::from_millis(1))
                    && killed_at.elapsed() > Duration::from_secs(2))
                {
                    if killed_at.elapsed() > Duration::from_secs(30) {
                        for a in &amps {
                            let ns = compute_id(a);
                            let out = Command::new("ip")
                                .args(["netns", "exec", &ns, "ip", "-br", "addr"])
                                .output()
                                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
                            let pids = Command::new("ip")
                                .args(["netns", "pids", &ns])
                                .output()
                                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
                            eprintln!("{ns} ({}): {out:?} pids {pids:?}", a["role"]);
                            let dir = lab.dir.path().join("netns/amphorae").join(&ns);
                            for f in [
                                "agent.log",
                                "vrrp/octavia-keepalived.log",
                                "vrrp/keepalived.conf",
                            ] {
                                let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
                                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                                eprintln!(
                                    "--- {ns}/{f}:\n{}",
                                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                                );
                            }
                        }
                        let names: Vec<String> = amps.iter().map(compute_id).collect();
                        for line in lab.log().lines().filter(|l| {
                            !l.contains("DEBUG") && names.iter().any(|n| l.contains(n.as_str()))
                        }) {
                            eprintln!("control plane: {line}");
                        }
                        eprintln!(
                            "the VIP did not answer again within 30 s ({way}, killed {holder})"
                        );
                        lost_runs += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let log = probe.finish().await;
                let (n, g) = gap(&log, killed_at);
                failures.push(n);
                gaps.push(g);
            }
            report(&format!("takeover gap, adverts {advert}, {way}"), &mut gaps);
            println!(
                "{:<48} failed requests per run (20 ms probe): {failures:?}; runs where the VIP \
                 did not come back within 30 s: {lost_runs}",
                ""
            );
        }
        // The last victim rebuilt first: a delete is refused while its failover runs.
        pair_whole(&lab, &lb, &vip, &killed).await;
        lab.delete_cascade(&lb).await;
        drop(lab);
    }
}

async fn hostloss() {
    let lab = Lab::with_health(
        "bhl",
        196,
        2,
        "failover_threshold = 20",
        "[keepalived_vrrp]\nvrrp_advert_int = \"200ms\"\n",
    )
    .await;
    let flavor = standby_flavor(&lab).await;
    let mut lbs = Vec::new();
    for i in 0..15 {
        let f = (i < 10).then_some(flavor.as_str());
        let (lb, vip) = serving(&lab, &format!("bench-hl-{i}"), f).await;
        lbs.push((i < 10, lb, vip));
    }
    for (_, lb, _) in &lbs {
        fleet::wait_online(&lab, lb).await;
    }
    // Baseline: one SINGLE amphora's failover alone.
    let (_, single_lb, single_vip) = lbs[10].clone();
    let old = amphorae(&lab, &single_lb).await;
    let probe = Prober::start(Traffic::new(&single_vip, 80, "/"));
    let started = Instant::now();
    kill(&compute_id(&old[0]), true);
    let old_ns = compute_id(&old[0]);
    eventually("the baseline failover", Duration::from_secs(60), || async {
        let amps = amphorae(&lab, &single_lb).await;
        (lab.provisioning_status(&single_lb).await == "ACTIVE"
            && amps.len() == 1
            && amps[0]["status"] == "ALLOCATED"
            && compute_id(&amps[0]) != old_ns)
            .then_some(())
    })
    .await;
    let baseline_rebuilt = started.elapsed();
    let (baseline_failed, _) = gap(&probe.finish().await, started);
    for (_, lb, _) in &lbs {
        fleet::wait_online(&lab, lb).await;
    }

    // The busiest host goes.
    let mut all = Vec::new();
    for (_, lb, _) in &lbs {
        all.extend(amphorae(&lab, lb).await);
    }
    let hosts = hosts_of(&lab, &all);
    let host = ["host-a", "host-b", "host-c"]
        .into_iter()
        .max_by_key(|h| hosts.iter().filter(|x| x == h).count())
        .expect("a host")
        .to_string();
    let lost: Vec<String> = all
        .iter()
        .zip(&hosts)
        .filter(|(_, h)| **h == host)
        .map(|(a, _)| compute_id(a))
        .collect();
    let probes: Vec<Prober> = lbs
        .iter()
        .map(|(_, _, vip)| Prober::start(Traffic::new(vip, 80, "/")))
        .collect();
    let probing = Instant::now();
    for p in &probes {
        eventually("traffic through every VIP", Duration::from_secs(10), || {
            let ok = p.ok_after(probing);
            async move { ok.then_some(()) }
        })
        .await;
    }
    let failed_at = Instant::now();
    lab.octavia(&["host", "fail", &host]);
    let mut whole_at = vec![Duration::ZERO; lbs.len()];
    while whole_at.iter().any(Duration::is_zero) {
        assert!(
            failed_at.elapsed() < Duration::from_secs(300),
            "not every load balancer was whole again within 5 min: {whole_at:?}\n{}",
            lab.log()
        );
        for (i, (ha, lb, _)) in lbs.iter().enumerate() {
            if !whole_at[i].is_zero() {
                continue;
            }
            let amps = amphorae(&lab, lb).await;
            let want = if *ha { 2 } else { 1 };
            if lab.provisioning_status(lb).await == "ACTIVE"
                && amps.len() == want
                && amps.iter().all(|a| a["status"] == "ALLOCATED")
                && amps.iter().all(|a| !lost.contains(&compute_id(a)))
            {
                whole_at[i] = failed_at.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rebuilt = failed_at.elapsed();
    let mut ha_gaps = Vec::new();
    let mut single_gaps = Vec::new();
    println!(
        "host loss: {host} ran {} of {} amphorae (10 ACTIVE_STANDBY + 5 SINGLE load balancers)",
        lost.len(),
        all.len()
    );
    for ((ha, lb, _), (probe, whole)) in lbs.iter().zip(probes.into_iter().zip(&whole_at)) {
        let log = probe.finish().await;
        let (n, g) = gap(&log, failed_at);
        println!(
            "  {} {lb}: {n} failed requests (50 ms probe), gap {g:?}, whole again after {whole:?}",
            if *ha {
                "ACTIVE_STANDBY"
            } else {
                "SINGLE        "
            }
        );
        if *ha {
            ha_gaps.push(g);
        } else {
            single_gaps.push(g);
        }
    }
    report("host loss: ACTIVE_STANDBY gap per LB", &mut ha_gaps);
    report("host loss: SINGLE gap per LB", &mut single_gaps);
    println!(
        "host loss: redundancy rebuilt (every LB whole, off {host}) after {rebuilt:?}; \
         baseline: one SINGLE failover alone rebuilt after {baseline_rebuilt:?} \
         ({baseline_failed} failed requests)"
    );
    let stopped = lab.octavia(&["amphora", "list", "--status", "FAILOVER_STOPPED"]);
    println!(
        "host loss: amphorae in FAILOVER_STOPPED: {}",
        stopped.lines().count().saturating_sub(1)
    );
    lab.octavia(&["host", "recover", &host]);
    for (_, lb, _) in &lbs {
        lab.delete_cascade(lb).await;
    }
    drop(lab);
}

/// A busy loop on every core, until dropped.
struct Hog(Vec<Child>);

impl Hog {
    fn start() -> Hog {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Hog((0..cores)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("busy loop")
            })
            .collect())
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The ids of the live amphorae.
async fn amphora_ids(lab: &Lab) -> std::collections::BTreeSet<String> {
    let v = lab
        .call(Method::GET, "/v2/octavia/amphorae", None, 200)
        .await;
    v["amphorae"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] != "DELETED")
        .filter_map(|a| a["id"].as_str().map(str::to_string))
        .collect()
}

async fn soak(minutes: u64) {
    let lab = Lab::new("bsk", 195, 2, "").await;
    let mut lbs = Vec::new();
    for i in 0..50 {
        lbs.push(serving(&lab, &format!("bench-soak-{i}"), None).await);
    }
    for (lb, _) in &lbs {
        fleet::wait_online(&lab, lb).await;
    }
    let probes: Vec<Prober> = lbs
        .iter()
        .map(|(_, vip)| Prober::every(Traffic::new(vip, 80, "/"), Duration::from_secs(1)))
        .collect();
    let first = amphora_ids(&lab).await;
    let new_since = |ids: std::collections::BTreeSet<String>,
                     base: &std::collections::BTreeSet<String>| {
        ids.difference(base).count()
    };
    tokio::time::sleep(Duration::from_secs(60)).await;
    let idle = amphora_ids(&lab).await;
    let baseline = new_since(idle.clone(), &first);
    let hog = Hog::start();
    let started = Instant::now();
    let mut last_print = Instant::now();
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if last_print.elapsed() >= Duration::from_secs(60) {
            println!(
                "soak: {:?} with both cores busy, failovers so far {}",
                started.elapsed(),
                new_since(amphora_ids(&lab).await, &idle)
            );
            last_print = Instant::now();
        }
    }
    drop(hog);
    let under_load = new_since(amphora_ids(&lab).await, &idle);
    let mut failed = 0;
    let mut total = 0;
    for p in probes {
        let log = p.finish().await;
        total += log.len();
        failed += log.iter().filter(|(_, ok)| !ok).count();
    }
    println!(
        "soak: 50 SINGLE load balancers, {minutes} min with a busy loop per core: {under_load} \
         failovers (baseline, 1 min idle: {baseline}); requests through the VIPs: {total}, \
         failed {failed}"
    );
    for (lb, _) in &lbs {
        lab.delete_cascade(lb).await;
    }
    drop(lab);
}

fn main() {
    if !lab::can_run() {
        return;
    }
    let wanted = std::env::var("OCTAVIA_BENCH_HA").unwrap_or_else(|_| "takeover,hostloss".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for scenario in wanted.split(',').map(str::trim) {
            match scenario {
                "takeover" => takeover(env_num("OCTAVIA_BENCH_RUNS", 10)).await,
                "hostloss" => hostloss().await,
                "soak" => soak(env_num("OCTAVIA_BENCH_SOAK_MINUTES", 10) as u64).await,
                other => eprintln!("unknown scenario {other:?} (takeover, hostloss, soak)"),
            }
        }
    });
}
