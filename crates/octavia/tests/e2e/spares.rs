//! The spare pool with real amphorae: the housekeeper keeps `spare_amphora_pool_size` READY
//! amphorae; a SINGLE load balancer is built from one and serves; an ACTIVE_STANDBY pair
//! takes spares without ever breaking anti-affinity; a failover takes one; a spare that
//! dies is replaced, never failed over; a new image makes `amphora rotate` retire the
//! spares, which the pool rebuilds on it; SIGHUP changes the size without a restart.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use octavia_test_support::eventually;
use octavia_test_support::require::{exists, require};
use reqwest::Method;
use serde_json::{json, Value};

use crate::fleet::{kill_namespace_processes, serving_lb};
use crate::lab::{can_run, namespaces_with, Lab, Traffic};
use crate::vrrp::{amphorae, compute_id, hosts_of, standby_flavor, KEEPALIVED};

/// The READY amphorae without a load balancer (the untaken spares).
async fn spares(lab: &Lab) -> Vec<Value> {
    let v = lab
        .call(Method::GET, "/v2/octavia/amphorae?status=READY", None, 200)
        .await;
    let mut amps = v["amphorae"].as_array().cloned().unwrap_or_default();
    amps.retain(|a| a["loadbalancer_id"].is_null());
    amps
}

fn ids(amps: &[Value]) -> BTreeSet<String> {
    amps.iter()
        .filter_map(|a| a["id"].as_str().map(str::to_string))
        .collect()
}

/// Wait until exactly `n` spares are READY; their ids.
async fn pool_of(lab: &Lab, n: usize, what: &str) -> BTreeSet<String> {
    eventually(what, Duration::from_secs(60), || async move {
        let s = spares(lab).await;
        (s.len() == n).then(|| ids(&s))
    })
    .await
}

/// The amphora's status; "DELETED" once the API no longer shows it (as Octavia's, ours
/// answers 404 for a DELETED amphora).
async fn amphora_status(lab: &Lab, id: &str) -> String {
    let v = lab
        .call(Method::GET, "/v2/octavia/amphorae", None, 200)
        .await;
    v["amphorae"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["id"] == id)
        .and_then(|a| a["status"].as_str())
        .unwrap_or("DELETED")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers_take_spares_and_dead_spares_are_replaced() {
    if !can_run() || !require("the spare pool test", &[("keepalived", exists(KEEPALIVED))]) {
        return;
    }
    let lab = Lab::new(
        "sp",
        34,
        1,
        "[house_keeping]\nspare_amphora_pool_size = 2\nspare_check_interval = \"1s\"\n",
    )
    .await;

    // The pool fills: two READY amphorae, heartbeating, no load balancer.
    let pool = pool_of(&lab, 2, "the spare pool to fill").await;

    // A SINGLE load balancer is built from a spare and serves.
    let started = Instant::now();
    let (lb, vip) = serving_lb(&lab, "e2e-spare").await;
    let amps = amphorae(&lab, &lb).await;
    assert_eq!(amps.len(), 1, "{amps:?}");
    let taken = amps[0]["id"].as_str().unwrap_or_default().to_string();
    assert!(
        pool.contains(&taken),
        "the load balancer's amphora {taken} is one of the spares {pool:?}\n{}",
        lab.log()
    );
    assert_eq!(amps[0]["status"], "ALLOCATED");
    assert_eq!(amps[0]["role"], "STANDALONE");
    eprintln!(
        "SINGLE load balancer from a spare: serving (listener, pool, member) after {:?}",
        started.elapsed()
    );
    let tally = Traffic::new(&vip, 80, "/").run(10).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    assert!(lab.log().contains("spare amphora taken"), "{}", lab.log());

    // The pool builds a replacement for the one taken.
    let pool = eventually("the pool to refill", Duration::from_secs(60), || {
        let taken = taken.clone();
        let lab = &lab;
        async move {
            let s = ids(&spares(lab).await);
            (s.len() == 2 && !s.contains(&taken)).then_some(s)
        }
    })
    .await;

    // An ACTIVE_STANDBY pair takes spares, but never two on one host (hard anti-affinity).
    let flavor = standby_flavor(&lab).await;
    let (pair_lb, _) = lab
        .create_lb_with("e2e-spare-pair", json!({ "flavor_id": flavor }))
        .await;
    let pair = amphorae(&lab, &pair_lb).await;
    assert_eq!(pair.len(), 2, "{pair:?}");
    let hosts = hosts_of(&lab, &pair);
    assert!(
        hosts.len() == 2 && hosts[0] != hosts[1],
        "the pair is on two hosts: {hosts:?}"
    );
    let from_pool = ids(&pair).intersection(&pool).count();
    assert!(from_pool >= 1, "the pair took a spare: {pair:?} {pool:?}");
    eprintln!("ACTIVE_STANDBY pair: {from_pool} of 2 amphorae from the pool, hosts {hosts:?}");

    // A failover takes a spare too: the SINGLE load balancer's amphora dies, a spare
    // replaces it.
    let pool = pool_of(&lab, 2, "the pool to refill after the pair").await;
    let old = amphorae(&lab, &lb).await;
    kill_namespace_processes(&compute_id(&old[0]));
    let replaced = eventually(
        "the failover to take a spare",
        Duration::from_secs(30),
        || {
            let (lab, lb, old_id) = (&lab, lb.as_str(), taken.as_str());
            async move {
                let amps = amphorae(lab, lb).await;
                let active = lab.provisioning_status(lb).await == "ACTIVE";
                let new: Vec<String> = amps
                    .iter()
                    .filter(|a| a["status"] == "ALLOCATED" && a["id"] != old_id)
                    .filter_map(|a| a["id"].as_str().map(str::to_string))
                    .collect();
                (active && new.len() == 1).then(|| new[0].clone())
            }
        },
    )
    .await;
    assert!(
        pool.contains(&replaced),
        "the failover's replacement {replaced} is one of the spares {pool:?}"
    );
    let tally = Traffic::new(&vip, 80, "/").run(10).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);

    // A spare that dies is replaced, never failed over onto a load balancer.
    let pool = pool_of(&lab, 2, "the pool to refill after the failover").await;
    let dead = spares(&lab)
        .await
        .into_iter()
        .find(|a| pool.contains(a["id"].as_str().unwrap_or_default()))
        .expect("a spare");
    let dead_id = dead["id"].as_str().unwrap_or_default().to_string();
    let dead_ns = compute_id(&dead);
    kill_namespace_processes(&dead_ns);
    eventually(
        "the dead spare to be deleted",
        Duration::from_secs(30),
        || {
            let (lab, id) = (&lab, dead_id.as_str());
            async move {
                let status = amphora_status(lab, id).await;
                (status == "DELETED").then_some(())
            }
        },
    )
    .await;
    assert!(
        namespaces_with(&dead_ns).is_empty(),
        "the dead spare's namespace is gone"
    );
    let after = pool_of(&lab, 2, "a replacement for the dead spare").await;
    assert!(!after.contains(&dead_id));
    let log = lab.log();
    assert!(
        log.contains("spare amphora stopped heartbeating"),
        "the dead spare was seen silent\n{log}"
    );
    assert!(
        !log.contains(&format!("Stale amphora's id is: {dead_id}")),
        "a spare is never failed over\n{log}"
    );
    for lb in [&lb, &pair_lb] {
        assert_eq!(lab.provisioning_status(lb).await, "ACTIVE");
    }

    // A new image: rotation deletes the outdated spares (the pool rebuilds them on the
    // new image) and replaces the load balancers' amphorae.
    let image = lab.register_image("amphora");
    let out = lab.octavia(&["amphora", "rotate", "--all-outdated"]);
    assert!(
        out.contains("2 spare amphorae on an outdated image deleted"),
        "{out}"
    );
    assert!(out.contains("done: 3 amphorae rotated"), "{out}");
    let after = eventually(
        "the pool rebuilt on the new image",
        Duration::from_secs(60),
        || {
            let (lab, image) = (&lab, image.as_str());
            async move {
                let s = spares(lab).await;
                let fresh = s.len() == 2 && s.iter().all(|a| a["image_id"] == image);
                fresh.then(|| ids(&s))
            }
        },
    )
    .await;
    for lb in [&lb, &pair_lb] {
        assert_eq!(lab.provisioning_status(lb).await, "ACTIVE");
    }

    // SIGHUP with a size of 0: the surplus goes, without a restart.
    let text = std::fs::read_to_string(&lab.config).expect("read config");
    let smaller = text.replace("spare_amphora_pool_size = 2", "spare_amphora_pool_size = 0");
    assert_ne!(text, smaller);
    std::fs::write(&lab.config, smaller).expect("write config");
    lab.reload_control_plane();
    eventually("the spares to be deleted", Duration::from_secs(30), || {
        let lab = &lab;
        async move { spares(lab).await.is_empty().then_some(()) }
    })
    .await;
    for id in &after {
        let status = amphora_status(&lab, id).await;
        assert!(
            status == "DELETED" || status == "PENDING_DELETE",
            "{id}: {status}"
        );
    }
    assert!(
        lab.log().contains("spare pool settings changed"),
        "{}",
        lab.log()
    );
    let tally = Traffic::new(&vip, 80, "/").run(10).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
}
