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

const KEEPALIVED: &str = "/usr/sbin/keepalived";
/// The fast advert interval of the issue's takeover figure.
const ADVERT_INT: &str = "200ms";

/// Whether namespace `ns` has `addr` on one of its interfaces (false when `ns` is gone).
fn holds(ns: &str, addr: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "ip", "-j", "addr", "show"])
        .output()
        .expect("ip addr in an amphora namespace");
    if !out.status.success() {
        return false;
    }
    let links: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    links.as_array().into_iter().flatten().any(|link| {
        link["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["local"] == addr)
    })
}

/// The live amphorae of `lb` as the admin API shows them.
async fn amphorae(lab: &Lab, lb: &str) -> Vec<Value> {
    let v = lab
        .call(
            Method::GET,
            &format!("/v2/octavia/amphorae?loadbalancer_id={lb}"),
            None,
            200,
        )
        .await;
    v["amphorae"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] != "DELETED")
        .cloned()
        .collect()
}

/// The role the API shows for the amphora in namespace `ns`.
async fn role_of(lab: &Lab, lb: &str, ns: &str) -> String {
    amphorae(lab, lb)
        .await
        .iter()
        .find(|a| compute_id(a) == ns)
        .and_then(|a| a["role"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The hosts `octavia amphora list` shows for `amps` (its last column).
fn hosts_of(lab: &Lab, amps: &[Value]) -> Vec<String> {
    let list = lab.octavia(&["amphora", "list"]);
    amps.iter()
        .filter_map(|a| {
            let id = a["id"].as_str()?;
            let line = list.lines().find(|l| l.contains(id))?;
            line.split_whitespace().last().map(str::to_string)
        })
        .collect()
}

/// The amphora id of the amphora in namespace `ns`.
fn non_holder_id(amps: &[Value], ns: &str) -> String {
    amps.iter()
        .find(|a| compute_id(a) == ns)
        .and_then(|a| a["id"].as_str())
        .unwrap_or("?")
        .to_string()
}

fn compute_id(amp: &Value) -> String {
    amp["compute_id"].as_str().unwrap_or("").to_string()
}

/// The namespaces among `amps` that hold `vip`.
fn holders(amps: &[Value], vip: &str) -> Vec<String> {
    amps.iter()
        .map(compute_id)
        .filter(|ns| holds(ns, vip))
        .collect()
}

/// Wait until exactly one of `amps` holds `vip`; its namespace.
async fn one_holder(amps: &[Value], vip: &str, what: &str) -> String {
    eventually(what, Duration::from_secs(20), || {
        let h = holders(amps, vip);
        async move { (h.len() == 1).then(|| h[0].clone()) }
    })
    .await
}

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
    let fp = lab
        .call(
            Method::POST,
            "/v2/lbaas/flavorprofiles",
            Some(
                json!({"flavorprofile": {"name": "ha", "provider_name": "amphora",
                "flavor_data": r#"{"loadbalancer_topology": "ACTIVE_STANDBY"}"#}}),
            ),
            201,
        )
        .await["flavorprofile"]["id"]
        .as_str()
        .expect("flavor profile id")
        .to_string();
    let flavor = lab
        .call(
            Method::POST,
            "/v2/lbaas/flavors",
            Some(json!({"flavor": {"name": "ha", "flavor_profile_id": fp}})),
            201,
        )
        .await["flavor"]["id"]
        .as_str()
        .expect("flavor id")
        .to_string();
    let created = lab
        .call(
            Method::POST,
            "/v2/lbaas/loadbalancers",
            Some(json!({"loadbalancer": {"name": "e2e-standby",
                "vip_subnet_id": lab.subnet_id, "flavor_id": flavor}})),
            201,
        )
        .await;
    let lb = created["loadbalancer"]["id"]
        .as_str()
        .expect("lb id")
        .to_string();
    lab.wait_lb_active(&lb, Duration::from_secs(90)).await;
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
        let state = lab
            .call(
                Method::GET,
                &format!("/v2/lbaas/loadbalancers/{lb}"),
                None,
                200,
            )
            .await["loadbalancer"]["provisioning_status"]
            .clone();
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
            let state = lab
                .call(
                    Method::GET,
                    &format!("/v2/lbaas/loadbalancers/{lb}"),
                    None,
                    200,
                )
                .await["loadbalancer"]["provisioning_status"]
                .clone();
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
