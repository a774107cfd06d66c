//! ACTIVE_STANDBY with the real drivers: two amphorae on different hosts, each running our
//! agent, HAProxy and keepalived (VRRPv3, unicast peers); keepalived puts the VIP on exactly
//! one of them, and when every process of the amphora holding it is killed the other takes
//! the VIP over and the load balancer serves again within seconds.

use std::time::{Duration, Instant};

use octavia_test_support::eventually;
use octavia_test_support::require::{exists, require};
use reqwest::Method;
use serde_json::{json, Value};

use crate::fleet::{kill_namespace_processes, outage, probe_until_served, wait_online, Prober};
use crate::lab::{can_run, namespaces_with, Lab, Traffic};
use crate::vrrp::{
    amphorae, compute_id, holders, holds, hosts_of, non_holder_id, one_holder, role_of,
    standby_flavor,
};

use crate::vrrp::KEEPALIVED;
/// The fast advert interval of the takeover figure.
const ADVERT_INT: &str = "200ms";

/// An ACTIVE_STANDBY load balancer (flavor `loadbalancer_topology`, adverts every 200 ms):
/// MASTER and BACKUP recorded with their priorities and VRRP interface, on different hosts;
/// exactly one holds the VIP and it serves HTTP; every process of the holder killed, the other
/// takes the VIP and the VIP serves again within a few seconds (the gap is printed); the
/// health manager then replaces the dead amphora and again exactly one holds the VIP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_standby_keepalived_takeover() {
    if !can_run()
        || !require(
            "the ACTIVE_STANDBY test",
            &[("keepalived", exists(KEEPALIVED))],
        )
    {
        return;
    }
    let lab = Lab::new(
        "s",
        15,
        2,
        &format!("[keepalived_vrrp]\nvrrp_advert_int = \"{ADVERT_INT}\"\n"),
    )
    .await;
    let flavor = standby_flavor(&lab).await;
    let (lb, vip) = lab
        .create_lb_with("e2e-standby", json!({ "flavor_id": flavor }))
        .await;
    let (_, pool) = lab.http_listener_and_pool(&lb, 80).await;
    lab.add_members(&lb, &pool, 0..lab.members.len()).await;

    let amps = amphorae(&lab, &lb).await;
    assert_eq!(amps.len(), 2, "{amps:?}");
    let mut roles: Vec<(String, i64)> = amps
        .iter()
        .map(|a| {
            (
                a["role"].as_str().unwrap_or("").to_string(),
                a["vrrp_priority"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [("BACKUP".to_string(), 90), ("MASTER".to_string(), 100)]
    );
    for a in &amps {
        assert_eq!(a["vrrp_id"], 1, "{a}");
        assert!(
            a["vrrp_interface"].as_str().is_some_and(|i| !i.is_empty()),
            "{a}"
        );
        assert!(a["vrrp_ip"].as_str().is_some_and(|i| i != vip), "{a}");
    }

    // Exactly one amphora holds the VIP, and the VIP serves through it.
    let holder = one_holder(&amps, &vip, "exactly one amphora to hold the VIP").await;
    let holder_role = amps
        .iter()
        .find(|a| compute_id(a) == holder)
        .and_then(|a| a["role"].as_str())
        .unwrap_or("?")
        .to_string();
    eprintln!("the VIP is held by the {holder_role} amphora ({holder})");
    let traffic = Traffic::new(&vip, 80, "/");
    eventually("the VIP to serve", Duration::from_secs(10), || async {
        matches!(traffic.one().await, Ok((200, _))).then_some(())
    })
    .await;
    let tally = traffic.run(20).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    assert_eq!(tally.by_body.len(), 2, "both members: {:?}", tally.by_body);
    assert_eq!(
        holders(&amps, &vip),
        vec![holder.clone()],
        "the VIP stayed on one amphora while it served"
    );
    wait_online(&lab, &lb).await;

    // Kill every process of the holder (agent, HAProxy, keepalived): the other amphora
    // takes the VIP over.
    let survivor = amps
        .iter()
        .map(compute_id)
        .find(|ns| *ns != holder)
        .expect("the other amphora");
    let prober = Prober::start(Traffic::new(&vip, 80, "/"));
    prober.wait_first_success().await;
    let killed_at = Instant::now();
    kill_namespace_processes(&holder);
    eventually(
        "the surviving amphora to take the VIP",
        Duration::from_secs(10),
        || {
            let held = holds(&survivor, &vip);
            async move { held.then_some(()) }
        },
    )
    .await;
    let took_over = killed_at.elapsed();
    let log = probe_until_served(prober).await;
    let (last_failure, failures) = outage(&log, killed_at);
    eprintln!(
        "ACTIVE_STANDBY takeover (advert {ADVERT_INT}): VIP on the survivor {took_over:?} after \
         the kill; last failed request {last_failure:?} after the kill ({failures} failed \
         requests at 50 ms)"
    );
    assert!(
        last_failure <= Duration::from_secs(5),
        "the VIP answered again only {last_failure:?} after the kill\n{}",
        lab.log()
    );
    let tally = traffic.run(20).await;
    assert_eq!(tally.failed, 0, "after the takeover: {:?}", tally.errors);
    // The survivor's heartbeats say it holds the VIP: the API shows it as MASTER.
    eventually(
        "the survivor to be reported as MASTER",
        Duration::from_secs(10),
        || async {
            let now = amphorae(&lab, &lb).await;
            now.iter()
                .any(|a| compute_id(a) == survivor && a["role"] == "MASTER")
                .then_some(())
        },
    )
    .await;

    // The health manager replaces the dead amphora; the pair is whole again and exactly one
    // of the two live amphorae holds the VIP.
    let started = Instant::now();
    let replaced = loop {
        let now = amphorae(&lab, &lb).await;
        let state = lab.provisioning_status(&lb).await;
        if state == "ACTIVE"
            && now.len() == 2
            && now.iter().all(|a| a["status"] == "ALLOCATED")
            && now.iter().all(|a| compute_id(a) != holder)
        {
            break now;
        }
        assert_ne!(state, "ERROR", "failover failed: {now:?}\n{}", lab.log());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the dead amphora was not replaced: {now:?}\n{}",
            lab.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        namespaces_with(&holder).is_empty(),
        "the dead amphora's namespace remains"
    );
    let new_holder = one_holder(
        &replaced,
        &vip,
        "one amphora to hold the VIP after the rebuild",
    )
    .await;
    eprintln!("after the rebuild the VIP is held by {new_holder}");
    let tally = traffic.run(20).await;
    assert_eq!(tally.failed, 0, "after the rebuild: {:?}", tally.errors);
    assert_eq!(role_of(&lab, &lb, &new_holder).await, "MASTER");

    // An operator's load balancer failover under traffic, in Octavia's order: the amphora
    // that does not hold the VIP is replaced first (by a BACKUP), the holder last (by a
    // MASTER), so the VIP moves once, to an amphora already serving.
    let before: Vec<String> = replaced.iter().map(compute_id).collect();
    let non_holder = before
        .iter()
        .find(|ns| **ns != new_holder)
        .expect("the non-holder")
        .clone();
    let prober = Prober::start(Traffic::new(&vip, 80, "/"));
    prober.wait_first_success().await;
    let started = Instant::now();
    lab.call(
        Method::PUT,
        &format!("/v2/lbaas/loadbalancers/{lb}/failover"),
        None,
        202,
    )
    .await;
    let rotated = eventually(
        "both amphorae replaced by the load balancer failover",
        Duration::from_secs(120),
        || async {
            let now = amphorae(&lab, &lb).await;
            let state = lab.provisioning_status(&lb).await;
            assert_ne!(
                state,
                "ERROR",
                "load balancer failover failed\n{}",
                lab.log()
            );
            (state == "ACTIVE"
                && now.len() == 2
                && now.iter().all(|a| !before.contains(&compute_id(a))))
            .then_some(now)
        },
    )
    .await;
    let rotated_in = started.elapsed();
    let log = probe_until_served(prober).await;
    let (last_failure, failures) = outage(&log, started);
    eprintln!(
        "ACTIVE_STANDBY load balancer failover: both amphorae replaced in {rotated_in:?}; \
         {failures} failed requests of {} at 50 ms (last {last_failure:?} after the request)",
        log.iter().filter(|(at, _)| *at > started).count()
    );
    // Roles follow the VIP: the replacement that holds it is MASTER, the other BACKUP (the
    // health manager corrects the roles the flow gave within its recheck interval).
    let holder_now = one_holder(
        &rotated,
        &vip,
        "one amphora to hold the VIP after the failover",
    )
    .await;
    eventually(
        "the VIP holder reported as MASTER, the other as BACKUP",
        Duration::from_secs(20),
        || async {
            let now = amphorae(&lab, &lb).await;
            let role = |ns: &str| {
                now.iter()
                    .find(|a| compute_id(a) == ns)
                    .and_then(|a| a["role"].as_str().map(str::to_string))
            };
            let other = now.iter().map(compute_id).find(|ns| *ns != holder_now)?;
            (role(&holder_now).as_deref() == Some("MASTER")
                && role(&other).as_deref() == Some("BACKUP"))
            .then_some(())
        },
    )
    .await;
    let log_text = lab.log();
    let first = log_text
        .find("replacing the amphora that does not hold the VIP first")
        .expect("the failover logged its order");
    assert!(
        log_text[first..]
            .lines()
            .next()
            .is_some_and(|l| l.contains(&non_holder_id(&replaced, &non_holder))),
        "the non-holder ({non_holder}) went first:\n{}",
        &log_text[first..]
    );
    let hosts = hosts_of(&lab, &rotated);
    assert!(
        hosts.len() == 2 && hosts[0] != hosts[1],
        "anti-affinity kept the replacements apart: {hosts:?}"
    );
    assert!(
        failures <= 2,
        "the load balancer failover lost {failures} requests (last {last_failure:?})"
    );
    let tally = traffic.run(20).await;
    assert_eq!(tally.failed, 0, "after the failover: {:?}", tally.errors);

    lab.delete_cascade(&lb).await;
    let left = lab.amphora_leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Losing a host (`octavia host fail`, every amphora on it dead at once) with two
/// ACTIVE_STANDBY load balancers and a SINGLE one, the shipped failover defaults and a
/// circuit breaker above one host's share: each ACTIVE_STANDBY load balancer keeps serving
/// through its takeover, the SINGLE one fails over, every lost amphora is rebuilt on another
/// host (pairs still apart), and nothing goes FAILOVER_STOPPED. Then, with a single host
/// left up, a new ACTIVE_STANDBY load balancer goes ERROR, the log saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_host() {
    if !can_run() || !require("the host-loss test", &[("keepalived", exists(KEEPALIVED))]) {
        return;
    }
    let lab = Lab::with_health(
        "hl",
        16,
        2,
        "failover_threshold = 4",
        &format!("[keepalived_vrrp]\nvrrp_advert_int = \"{ADVERT_INT}\"\n"),
    )
    .await;
    let flavor = standby_flavor(&lab).await;
    let mut lbs = Vec::new();
    for (name, extra) in [
        ("hl-ha-1", json!({ "flavor_id": flavor })),
        ("hl-ha-2", json!({ "flavor_id": flavor })),
        ("hl-single", json!({})),
    ] {
        let (lb, vip) = lab.create_lb_with(name, extra).await;
        let (_, pool) = lab.http_listener_and_pool(&lb, 80).await;
        lab.add_members(&lb, &pool, 0..lab.members.len()).await;
        lbs.push((name, lb, vip));
    }
    for (_, lb, _) in &lbs {
        wait_online(&lab, lb).await;
    }
    // The host to lose: the one holding the first pair's VIP.
    let (_, lb1, vip1) = &lbs[0];
    let pair = amphorae(&lab, lb1).await;
    let holder = one_holder(&pair, vip1, "the first pair to hold its VIP").await;
    let holder_amp = pair
        .iter()
        .find(|a| compute_id(a) == holder)
        .expect("holder")
        .clone();
    let host = hosts_of(&lab, &[holder_amp])[0].clone();
    let mut before = Vec::new();
    for (_, lb, _) in &lbs {
        before.extend(amphorae(&lab, lb).await.iter().map(compute_id));
    }
    let all = lab.octavia(&["amphora", "list"]);
    let lost: Vec<String> = before
        .iter()
        .filter(|ns| {
            all.lines()
                .any(|l| l.contains(ns.as_str()) && l.trim_end().ends_with(&host))
        })
        .cloned()
        .collect();
    eprintln!(
        "losing {host}, which runs {} amphorae: {lost:?}",
        lost.len()
    );

    let probers: Vec<Prober> = lbs
        .iter()
        .map(|(_, _, vip)| Prober::start(Traffic::new(vip, 80, "/")))
        .collect();
    for p in &probers {
        p.wait_first_success().await;
    }
    let failed_at = Instant::now();
    let out = lab.octavia(&["host", "fail", &host]);
    assert!(out.contains(&format!("host {host} failed")), "{out}");
    for ns in &lost {
        assert!(namespaces_with(ns).is_empty(), "{ns} survived its host");
    }

    // Every lost amphora is rebuilt elsewhere; pairs stay apart; nothing is stopped.
    eventually(
        "every load balancer whole again, off the lost host",
        Duration::from_secs(90),
        || async {
            let mut ok = true;
            for (_, lb, _) in &lbs {
                let amps = amphorae(&lab, lb).await;
                for a in &amps {
                    assert_ne!(
                        a["status"],
                        "FAILOVER_STOPPED",
                        "circuit breaker tripped: {a}\n{}",
                        lab.log()
                    );
                }
                let state = lab.provisioning_status(lb).await;
                assert_ne!(state, "ERROR", "failover failed\n{}", lab.log());
                ok &= state == "ACTIVE"
                    && amps.iter().all(|a| a["status"] == "ALLOCATED")
                    && amps.iter().all(|a| !lost.contains(&compute_id(a)))
                    && (amps.len() == 2 || (amps.len() == 1 && a_single(&amps)));
            }
            ok.then_some(())
        },
    )
    .await;
    let rebuilt_in = failed_at.elapsed();
    let mut report = Vec::new();
    for ((name, lb, vip), prober) in lbs.iter().zip(probers) {
        let log = probe_until_served(prober).await;
        let (last, failures) = outage(&log, failed_at);
        report.push(format!(
            "{name}: {failures} failed requests, last {last:?} after"
        ));
        let amps = amphorae(&lab, lb).await;
        let hosts = hosts_of(&lab, &amps);
        assert!(
            hosts.iter().all(|h| *h != host),
            "{name} still on {host}: {hosts:?}"
        );
        if amps.len() == 2 {
            assert_ne!(hosts[0], hosts[1], "{name}'s pair shares a host");
            one_holder(&amps, vip, "one holder after the host loss").await;
            assert!(
                last <= Duration::from_secs(3),
                "{name} (ACTIVE_STANDBY) was down until {last:?} after the host loss"
            );
        } else {
            assert!(
                last <= Duration::from_secs(8),
                "{name} (SINGLE) was down until {last:?} after the host loss\n{}",
                lab.log()
            );
        }
        let tally = Traffic::new(vip, 80, "/").run(10).await;
        assert_eq!(
            tally.failed, 0,
            "{name} after the host loss: {:?}",
            tally.errors
        );
    }
    eprintln!(
        "host loss ({} amphorae on {host}): redundancy rebuilt in {rebuilt_in:?}; {}",
        lost.len(),
        report.join("; ")
    );
    let hosts = lab.octavia(&["host", "list"]);
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with(&host) && l.contains("failed")),
        "{hosts}"
    );

    // Both amphorae of a pair lost at once (two hosts' worth of bad luck): each failover
    // finds its peer dead too, and the load balancer must still come back whole by itself.
    let (_, lb2, vip2) = &lbs[1];
    let pair: Vec<String> = amphorae(&lab, lb2).await.iter().map(compute_id).collect();
    let prober = Prober::start(Traffic::new(vip2, 80, "/"));
    prober.wait_first_success().await;
    let both_at = Instant::now();
    for ns in &pair {
        kill_namespace_processes(ns);
    }
    eventually(
        "the pair whose amphorae both died to be whole again",
        Duration::from_secs(90),
        || async {
            let amps = amphorae(&lab, lb2).await;
            let state = lab.provisioning_status(lb2).await;
            assert_ne!(
                state,
                "ERROR",
                "failover of a lost pair failed\n{}",
                lab.log()
            );
            (state == "ACTIVE"
                && amps.len() == 2
                && amps.iter().all(|a| a["status"] == "ALLOCATED")
                && amps.iter().all(|a| !pair.contains(&compute_id(a))))
            .then_some(amps)
        },
    )
    .await;
    let whole_in = both_at.elapsed();
    let log = probe_until_served(prober).await;
    let (last, failures) = outage(&log, both_at);
    one_holder(
        &amphorae(&lab, lb2).await,
        vip2,
        "one holder after losing both",
    )
    .await;
    eprintln!(
        "both amphorae lost: whole again in {whole_in:?}; {failures} failed requests, last {last:?} after"
    );

    // One host left up: a new pair cannot be kept apart, and the ERROR says why.
    for (_, lb, _) in &lbs {
        lab.delete_cascade(lb).await;
    }
    let others: Vec<String> = ["host-a", "host-b", "host-c"]
        .iter()
        .filter(|h| **h != host)
        .map(|h| h.to_string())
        .collect();
    lab.octavia(&["host", "fail", &others[0]]);
    let v = lab
        .call(
            Method::POST,
            "/v2/lbaas/loadbalancers",
            Some(json!({"loadbalancer": {"name": "hl-too-few",
                "vip_subnet_id": lab.subnet_id, "flavor_id": flavor}})),
            201,
        )
        .await;
    let lb = v["loadbalancer"]["id"].as_str().expect("lb id").to_string();
    eventually(
        "the pair without a second host to go ERROR",
        Duration::from_secs(60),
        || async {
            let state = lab.provisioning_status(&lb).await;
            (state == "ERROR").then_some(())
        },
    )
    .await;
    let log = lab.log();
    assert!(
        log.contains("no host left for hard anti-affinity")
            && log.contains("hosts marked failed: "),
        "the reason is logged\n{log}"
    );
    for h in [&host, &others[0]] {
        lab.octavia(&["host", "recover", h]);
    }
    let hosts = lab.octavia(&["host", "list"]);
    assert!(!hosts.contains("failed"), "{hosts}");
    lab.delete_cascade(&lb).await;
    let left = lab.amphora_leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// One SINGLE amphora.
fn a_single(amps: &[Value]) -> bool {
    amps.len() == 1 && amps[0]["role"] == "STANDALONE"
}
