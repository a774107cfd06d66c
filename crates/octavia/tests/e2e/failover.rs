//! Failover with the real drivers: an amphora that goes silent is replaced by the health
//! manager (fast settings: heartbeat 1 s, timeout 3 s, check every 0.5 s), and operators
//! replace amphorae through the failover APIs.

use std::time::{Duration, Instant};

use octavia_db::{QuotaDefaults, Store, StoreOptions};
use octavia_model::ProvisioningStatus;
use octavia_test_support::eventually;

use crate::fleet::{
    amphorae, kill_namespace_processes, outage, probe_until_served, serving_lb, wait_online,
    wait_replaced, Prober,
};
use crate::lab::{can_run, namespaces_with, processes_with, Lab, Traffic};

/// An operator's stray change of an amphora's status behind the control plane's back: another
/// process writing the all-in-one's SQLite database.
async fn set_amphora_status(lab: &Lab, amp: &str, status: ProvisioningStatus) {
    let store = Store::connect(StoreOptions {
        url: format!("sqlite://{}/octavia.db", lab.dir.path().display()),
        max_connections: 1,
        quota_defaults: QuotaDefaults::default(),
    })
    .await
    .expect("open the store");
    let id = amp.parse().expect("amphora id");
    let mut amphora = store
        .get_amphora_any(id)
        .await
        .expect("read the amphora")
        .expect("the amphora exists");
    amphora.status = status;
    store
        .save_amphora(&amphora)
        .await
        .expect("save the amphora");
}

async fn put_failover(lab: &Lab, path: &str, roles: &str) -> u16 {
    lab.http
        .put(format!("{}{path}", lab.api))
        .header("x-roles", roles)
        .send()
        .await
        .expect("PUT failover")
        .status()
        .as_u16()
}

/// Kill an amphora's agent and HAProxy: the health manager notices within the timeout, a
/// replacement serves the VIP again within 6 s of the kill, the old amphora is DELETED and
/// nothing of it remains. Then the failover APIs: 403 for a non-admin, 202 and a replaced
/// amphora for an admin, 409 while the load balancer is PENDING_UPDATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amphora_failover_on_kill_and_by_api() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("c", 3, 2, "").await;
    let (lb, vip) = serving_lb(&lab, "e2e-failover").await;
    let traffic = Traffic::new(&vip, 80, "/");
    let tally = traffic.run(10).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    wait_online(&lab, &lb).await;
    let amps = amphorae(&lab, &lb).await;
    assert_eq!(amps.len(), 1, "{amps:?}");
    let (old_id, _, old_compute) = amps[0].clone();

    // Kill the amphora's agent and HAProxy (the namespace and its interfaces stay).
    let prober = Prober::start(Traffic::new(&vip, 80, "/"));
    prober.wait_first_success().await;
    let killed_at = Instant::now();
    kill_namespace_processes(&old_compute);
    let (new_id, new_compute) = wait_replaced(&lab, &lb, &old_id, Duration::from_secs(30)).await;
    assert_ne!(new_compute, old_compute);
    let log = probe_until_served(prober).await;
    let (last_failure, failures) = outage(&log, killed_at);
    eprintln!(
        "failover after kill: last failed request {last_failure:?} after the kill \
         ({failures} failed requests at 50 ms)"
    );
    assert!(
        last_failure <= Duration::from_secs(6),
        "the VIP answered again only {last_failure:?} after the kill\n{}",
        lab.log()
    );
    assert!(
        lab.log()
            .contains(&format!("Stale amphora's id is: {old_id}")),
        "no stale-amphora log line\n{}",
        lab.log()
    );
    assert!(
        namespaces_with(&old_compute).is_empty(),
        "namespace of the replaced amphora remains"
    );
    let old_dir = lab.dir.path().join("netns/amphorae").join(&old_compute);
    assert!(
        processes_with(&old_dir.display().to_string()).is_empty(),
        "processes of the replaced amphora remain"
    );
    let tally = traffic.run(20).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    assert_eq!(
        tally.by_body.len(),
        2,
        "both members serve: {:?}",
        tally.by_body
    );

    // The failover APIs.
    let lb_failover = format!("/v2/lbaas/loadbalancers/{lb}/failover");
    assert_eq!(put_failover(&lab, &lb_failover, "member").await, 403);
    assert_eq!(put_failover(&lab, &lb_failover, "admin").await, 202);
    assert_eq!(
        put_failover(&lab, &lb_failover, "admin").await,
        409,
        "a second failover while PENDING_UPDATE"
    );
    let (third_id, _) = wait_replaced(&lab, &lb, &new_id, Duration::from_secs(30)).await;
    let amp_failover = format!("/v2/octavia/amphorae/{third_id}/failover");
    assert_eq!(put_failover(&lab, &amp_failover, "member").await, 403);
    assert_eq!(put_failover(&lab, &amp_failover, "admin").await, 202);
    wait_replaced(&lab, &lb, &third_id, Duration::from_secs(30)).await;
    eventually(
        "the VIP to answer after the operator failovers",
        Duration::from_secs(10),
        || {
            let traffic = &traffic;
            async move { matches!(traffic.one().await, Ok((200, _))).then_some(()) }
        },
    )
    .await;
    let tally = traffic.run(20).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    assert_eq!(
        put_failover(
            &lab,
            "/v2/octavia/amphorae/00000000-0000-0000-0000-000000000000/failover",
            "admin"
        )
        .await,
        404
    );

    delete_and_check_leftovers(&lab, &lb).await;
}

/// Delete with cascade and check that nothing of the lab's amphorae remains.
async fn delete_and_check_leftovers(lab: &Lab, lb: &str) {
    lab.delete_cascade(lb).await;
    let left = lab.amphora_leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The VIP answers again and then serves 10 requests without a failure.
async fn serves_again(traffic: &Traffic, what: &str) {
    eventually(what, Duration::from_secs(10), || async move {
        matches!(traffic.one().await, Ok((200, _))).then_some(())
    })
    .await;
    let tally = traffic.run(10).await;
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
}

/// The amphora's namespace vanishes with everything in it: replaced, the VIP answers again
/// within 6 s, and nothing of the old amphora remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_after_namespace_delete() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("d", 4, 2, "").await;
    let (lb, vip) = serving_lb(&lab, "e2e-netns-delete").await;
    wait_online(&lab, &lb).await;
    let (old_id, _, old_compute) = amphorae(&lab, &lb).await[0].clone();
    let prober = Prober::start(Traffic::new(&vip, 80, "/"));
    prober.wait_first_success().await;
    let killed_at = Instant::now();
    kill_namespace_processes(&old_compute);
    let del = std::process::Command::new("ip")
        .args(["netns", "del", &old_compute])
        .status()
        .expect("ip netns del");
    assert!(del.success());
    wait_replaced(&lab, &lb, &old_id, Duration::from_secs(30)).await;
    let log = probe_until_served(prober).await;
    let (last_failure, failures) = outage(&log, killed_at);
    eprintln!("failover after namespace delete: last failure {last_failure:?} ({failures} failed)");
    assert!(
        last_failure <= Duration::from_secs(6),
        "{last_failure:?}\n{}",
        lab.log()
    );
    let old_dir = lab.dir.path().join("netns/amphorae").join(&old_compute);
    assert!(!old_dir.exists(), "the old amphora's directory remains");
    serves_again(&Traffic::new(&vip, 80, "/"), "the VIP after the failover").await;
    delete_and_check_leftovers(&lab, &lb).await;
}

/// The guide's manual rotation: `octavia amphora list` shows the amphora, `octavia amphora
/// isolate` shuts its management port, and the health manager replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_after_management_port_isolation() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("h", 8, 2, "").await;
    let (lb, vip) = serving_lb(&lab, "e2e-isolate").await;
    wait_online(&lab, &lb).await;
    let (old_id, _, old_compute) = amphorae(&lab, &lb).await[0].clone();
    let listing = lab.octavia(&["amphora", "list", "--loadbalancer", &lb]);
    assert!(listing.contains(&old_id), "{listing}");
    assert!(
        listing.contains("ALLOCATED")
            && listing.contains(&old_compute)
            && listing.contains("host-"),
        "{listing}"
    );
    let by_status = lab.octavia(&["amphora", "list", "--status", "ERROR"]);
    assert!(!by_status.contains(&old_id), "{by_status}");
    let out = lab.octavia(&["amphora", "isolate", &old_id]);
    assert!(out.contains("management port"), "{out}");
    wait_replaced(&lab, &lb, &old_id, Duration::from_secs(30)).await;
    assert!(
        namespaces_with(&old_compute).is_empty(),
        "the isolated amphora's namespace remains"
    );
    serves_again(&Traffic::new(&vip, 80, "/"), "the VIP after the rotation").await;
    delete_and_check_leftovers(&lab, &lb).await;
}

/// kill -9 the control plane in the middle of a failover (held before its configuration
/// step by a failpoint): the next run resumes the job; the load balancer ends ACTIVE with one
/// new amphora, and nothing of the old one remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_resumed_after_worker_kill() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("i", 10, 2, "").await;
    let (lb, vip) = serving_lb(&lab, "e2e-resume").await;
    wait_online(&lab, &lb).await;
    let (old_id, _, _) = amphorae(&lab, &lb).await[0].clone();
    lab.kill_control_plane();
    lab.start_control_plane_with(&[(
        "OCTAVIA_FAILPOINTS",
        "failover_amphora/update_amphorae=pause",
    )])
    .await;
    let path = format!("/v2/octavia/amphorae/{old_id}/failover");
    assert_eq!(put_failover(&lab, &path, "admin").await, 202);
    // The replacement is built (ALLOCATED) before the paused step.
    eventually(
        "the replacement to be built before the paused step",
        Duration::from_secs(30),
        || {
            let lab = &lab;
            let lb = lb.clone();
            let old = old_id.clone();
            async move {
                let amps = amphorae(lab, &lb).await;
                amps.iter()
                    .any(|(id, s, _)| *id != old && s == "ALLOCATED")
                    .then_some(())
            }
        },
    )
    .await;
    lab.kill_control_plane();
    lab.start_control_plane().await;
    let (new_id, new_compute) = wait_replaced(&lab, &lb, &old_id, Duration::from_secs(60)).await;
    assert_ne!(new_id, old_id);
    serves_again(
        &Traffic::new(&vip, 80, "/"),
        "the VIP after the resumed failover",
    )
    .await;
    // One live amphora, its namespace the only one of the lab.
    assert_eq!(namespaces_with(&lab.amp_prefix()), vec![new_compute]);
    delete_and_check_leftovers(&lab, &lb).await;
}

/// The circuit breaker: with failover_threshold = 3, three amphorae whose agents are paused
/// at once are not failed over but go FAILOVER_STOPPED (ERROR logged); when the agents
/// resume they return to ALLOCATED by themselves, still without a failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_holds_silent_amphorae() {
    if !can_run() {
        return;
    }
    let lab = Lab::with_health("e", 5, 0, "failover_threshold = 3", "").await;
    let mut lbs = Vec::new();
    for i in 0..3 {
        let (lb, _) = lab.create_lb(&format!("breaker-{i}")).await;
        lbs.push(lb);
    }
    for lb in &lbs {
        wait_online(&lab, lb).await;
    }
    let mut amps = Vec::new();
    for lb in &lbs {
        amps.push(amphorae(&lab, lb).await[0].clone());
    }
    // Pause the agents (HAProxy keeps serving; the heartbeats stop).
    let agents: Vec<String> = amps
        .iter()
        .flat_map(|(_, _, compute)| {
            let out = std::process::Command::new("ip")
                .args(["netns", "pids", compute])
                .output()
                .expect("ip netns pids");
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains("amphora-agent"))
                        .unwrap_or(false)
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(agents.len(), 3, "{agents:?}");
    let signal = |sig: &str| {
        for pid in &agents {
            let _ = std::process::Command::new("kill")
                .args([sig, pid.as_str()])
                .status();
        }
    };
    signal("-STOP");
    let statuses = |want: &'static str| {
        let lab = &lab;
        let lbs = lbs.clone();
        let amps = amps.clone();
        async move {
            for (lb, (id, _, _)) in lbs.iter().zip(amps.iter()) {
                let now = amphorae(lab, lb).await;
                if now.len() != 1 || now[0].0 != *id || now[0].1 != want {
                    return None;
                }
            }
            Some(())
        }
    };
    eventually(
        "the three silent amphorae to be FAILOVER_STOPPED",
        Duration::from_secs(20),
        || statuses("FAILOVER_STOPPED"),
    )
    .await;
    eventually("the breaker's ERROR line", Duration::from_secs(5), || {
        let logged = lab.log().contains("reached the threshold (3)");
        async move { logged.then_some(()) }
    })
    .await;
    signal("-CONT");
    eventually(
        "the amphorae to be ALLOCATED again",
        Duration::from_secs(20),
        || statuses("ALLOCATED"),
    )
    .await;
    // Still the same three amphorae: nothing was failed over.
    for (lb, (id, _, _)) in lbs.iter().zip(amps.iter()) {
        let now = amphorae(&lab, lb).await;
        assert_eq!(now.len(), 1, "{now:?}");
        assert_eq!(&now[0].0, id);
    }
    assert!(!lab.log().contains("Performing failover"), "{}", lab.log());
}

/// A zombie: an amphora that heartbeats although the database says it is DELETED (here: an
/// operator's stray UPDATE) gets its instance removed by the health manager (reference §5.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zombie_amphora_instance_is_removed() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("f", 6, 0, "").await;
    let (lb, _) = lab.create_lb("zombie").await;
    wait_online(&lab, &lb).await;
    let (amp, _, compute) = amphorae(&lab, &lb).await[0].clone();
    assert_eq!(namespaces_with(&compute), vec![compute.clone()]);
    set_amphora_status(&lab, &amp, ProvisioningStatus::Deleted).await;
    // The instance goes, and the reaper says so (the log line follows the deletion).
    eventually(
        "the zombie's namespace to be removed and the deletion logged",
        Duration::from_secs(15),
        || {
            let done = namespaces_with(&compute).is_empty()
                && lab
                    .log()
                    .contains("deleted the compute instance of a zombie amphora");
            async move { done.then_some(()) }
        },
    )
    .await;
}

/// `DELETE /v2/octavia/amphorae/{id}`: 403 for a non-admin, 409 while the amphora is not in
/// ERROR; an ERROR amphora is deleted (204) and its instance removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_amphora_is_deleted_through_the_api() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("g", 7, 0, "").await;
    let (lb, _) = lab.create_lb("delete-amphora").await;
    let (amp, _, compute) = amphorae(&lab, &lb).await[0].clone();
    let path = format!("/v2/octavia/amphorae/{amp}");
    let delete = |roles: &'static str| {
        let lab = &lab;
        let path = path.clone();
        async move {
            lab.http
                .delete(format!("{}{path}", lab.api))
                .header("x-roles", roles)
                .send()
                .await
                .expect("DELETE")
                .status()
                .as_u16()
        }
    };
    assert_eq!(delete("member").await, 403);
    assert_eq!(
        delete("admin").await,
        409,
        "an ALLOCATED amphora is not deleted"
    );
    set_amphora_status(&lab, &amp, ProvisioningStatus::Error).await;
    assert_eq!(delete("admin").await, 204);
    eventually("the amphora to be deleted", Duration::from_secs(20), || {
        let lab = &lab;
        let path = path.clone();
        let compute = compute.clone();
        async move {
            let r = lab
                .http
                .get(format!("{}{path}", lab.api))
                .send()
                .await
                .ok()?;
            (r.status().as_u16() == 404 && namespaces_with(&compute).is_empty()).then_some(())
        }
    })
    .await;
}

/// `PUT /v2/octavia/amphorae/{id}/config` (the guide's heartbeat settings rotation): after the
/// operator changes `heartbeat_interval` and restarts the control plane, the push reaches the
/// agent, which sends heartbeats at the new interval. 403 for a non-admin, 404 for an
/// unknown amphora.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amphora_config_push_reaches_the_agent() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("j", 11, 0, "").await;
    let (lb, _) = lab.create_lb("config-push").await;
    wait_online(&lab, &lb).await;
    let (amp, _, compute) = amphorae(&lab, &lb).await[0].clone();
    lab.kill_control_plane();
    let text = std::fs::read_to_string(&lab.config).expect("config");
    assert!(
        !text.contains("heartbeat_interval"),
        "the lab runs the defaults"
    );
    std::fs::write(
        &lab.config,
        text.replace(
            "[health_manager]\n",
            "[health_manager]\nheartbeat_interval = \"2s\"\nheartbeat_timeout = \"6s\"\n",
        ),
    )
    .expect("write config");
    lab.start_control_plane().await;
    let put = |path: String, roles: &'static str| {
        let lab = &lab;
        async move {
            lab.http
                .put(format!("{}{path}", lab.api))
                .header("x-roles", roles)
                .send()
                .await
                .expect("PUT config")
                .status()
                .as_u16()
        }
    };
    let path = format!("/v2/octavia/amphorae/{amp}/config");
    assert_eq!(put(path.clone(), "member").await, 403);
    assert_eq!(
        put(
            "/v2/octavia/amphorae/00000000-0000-0000-0000-000000000000/config".into(),
            "admin"
        )
        .await,
        404
    );
    assert_eq!(put(path, "admin").await, 202);
    let agent_log = lab
        .dir
        .path()
        .join("netns/amphorae")
        .join(&compute)
        .join("agent.log");
    eventually(
        "the agent to take the new heartbeat interval",
        Duration::from_secs(20),
        || {
            let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
            let applied = log.contains("agent configuration replaced")
                && log
                    .lines()
                    .any(|l| l.contains("heartbeat settings changed") && l.contains("2s"));
            async move { applied.then_some(()) }
        },
    )
    .await;
    let conf = std::fs::read_to_string(
        lab.dir
            .path()
            .join("netns/amphorae")
            .join(&compute)
            .join("amphora-agent.conf"),
    )
    .expect("agent config");
    assert!(conf.contains("heartbeat_interval = 2"), "{conf}");
}
