//! CA rotation without a failover: an ACTIVE_STANDBY and a SINGLE load balancer serve
//! traffic while `octavia certs rotate-ca` replaces the server CA and `octavia certs
//! rotate-client` the client CA and the controller's certificate. No request fails, no
//! amphora is replaced, the old CAs leave the bundles, every agent serves a certificate of
//! the new server CA and refuses the old controller certificate, and the controller still
//! configures every amphora afterwards.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use octavia_test_support::eventually;
use octavia_test_support::require::{exists, require};
use serde_json::{json, Value};

use crate::fleet::{outage, serving_lb, wait_online, Prober};
use crate::lab::{can_run, Lab, Traffic};
use crate::vrrp::{amphorae, one_holder, standby_flavor, KEEPALIVED};

/// How many certificates a PEM file holds.
fn certificates_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .matches("-----BEGIN CERTIFICATE-----")
        .count()
}

/// `GET /1.0/info` of the agent of `amp` (`{"id", "lb_network_ip"}`) with curl, verifying
/// the agent against `server_ca` and presenting `client` (certificate + key): whether it
/// answered 200.
fn agent_answers(amp: &Value, server_ca: &Path, client: &Path) -> bool {
    let id = amp["id"].as_str().expect("amphora id");
    let ip = amp["lb_network_ip"].as_str().expect("management address");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg("--cacert")
        .arg(server_ca)
        .arg("--cert")
        .arg(client)
        .arg("--key")
        .arg(client)
        .args(["--resolve", &format!("{id}:9443:{ip}")])
        .arg(format!("https://{id}:9443/1.0/info"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).trim() == "200"
}

/// Run `octavia --config <lab> certs ARGS` off the async runtime; (success, stdout+stderr).
async fn certs(lab: &Lab, args: &[&str]) -> (bool, String) {
    let config = lab.config.clone();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_octavia"))
            .arg("--config")
            .arg(&config)
            .arg("certs")
            .args(&args)
            .output()
            .expect("run octavia certs")
    })
    .await
    .expect("join octavia certs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ca_rotations_roll_every_amphora_without_a_failover_under_traffic() {
    if !can_run()
        || !require(
            "the CA rotation test",
            &[
                ("keepalived", exists(KEEPALIVED)),
                ("curl", exists("/usr/bin/curl")),
            ],
        )
    {
        return;
    }
    // One spare amphora (READY, no load balancer) is rotated like the others.
    let lab = Lab::new(
        "crt",
        30,
        2,
        "[house_keeping]\nspare_amphora_pool_size = 1\nspare_check_interval = \"1s\"\n",
    )
    .await;
    let ca = lab.dir.path().join("certs");
    let flavor = standby_flavor(&lab).await;
    let (pair, pair_vip) = lab
        .create_lb_with("crt-pair", json!({"flavor_id": flavor}))
        .await;
    let (_, pool) = lab.http_listener_and_pool(&pair, 80).await;
    lab.add_members(&pair, &pool, 0..lab.members.len()).await;
    let (single, single_vip) = serving_lb(&lab, "crt-single").await;
    wait_online(&lab, &pair).await;
    wait_online(&lab, &single).await;
    let spare = eventually("one spare READY", Duration::from_secs(60), || async {
        let v = lab
            .call(
                reqwest::Method::GET,
                "/v2/octavia/amphorae?status=READY",
                None,
                200,
            )
            .await;
        let mut amps = v["amphorae"].as_array().cloned().unwrap_or_default();
        amps.retain(|a| a["loadbalancer_id"].is_null() && a["lb_network_ip"].is_string());
        (amps.len() == 1).then(|| amps[0].clone())
    })
    .await;
    let spares = || async {
        let v = lab
            .call(
                reqwest::Method::GET,
                "/v2/octavia/amphorae?status=READY",
                None,
                200,
            )
            .await;
        let mut amps = v["amphorae"].as_array().cloned().unwrap_or_default();
        amps.retain(|a| a["loadbalancer_id"].is_null());
        amps
    };
    let before: Vec<Value> = [
        amphorae(&lab, &pair).await,
        amphorae(&lab, &single).await,
        vec![spare],
    ]
    .concat();
    assert_eq!(before.len(), 4, "{before:#?}");
    one_holder(
        &amphorae(&lab, &pair).await,
        &pair_vip,
        "the pair's VIP to be held",
    )
    .await;
    let probes = [
        Prober::start(Traffic::new(&pair_vip, 80, "/")),
        Prober::start(Traffic::new(&single_vip, 80, "/")),
    ];
    for p in &probes {
        p.wait_first_success().await;
    }
    let started = Instant::now();

    // Nothing in progress; a dry run tells the plan and changes nothing.
    let old_server_ca = std::fs::read_to_string(ca.join("server_ca.pem")).unwrap();
    let (ok, out) = certs(&lab, &["rotate-ca", "--status"]).await;
    assert!(ok && out.contains("no rotate-ca in progress"), "{out}");
    let (ok, out) = certs(&lab, &["rotate-ca", "--dry-run"]).await;
    assert!(
        ok && out.contains("would run") && out.contains("4 amphorae"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(ca.join("server_ca.pem")).unwrap(),
        old_server_ca
    );

    // The server CA: a slow run (2 amphorae a minute) is interrupted with Ctrl-C once it
    // renewed one amphora; a second run meanwhile is refused; `--status` shows where it
    // stopped; running it again finishes the rotation.
    let slow = Command::new(env!("CARGO_BIN_EXE_octavia"))
        .arg("--config")
        .arg(&lab.config)
        .args(["certs", "rotate-ca", "--rate", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start octavia certs rotate-ca");
    let state_file = ca.join("rotation.json");
    eventually(
        "the rotation to renew its first amphora",
        Duration::from_secs(60),
        || {
            let state_file = state_file.clone();
            async move {
                let state: Value =
                    serde_json::from_slice(&std::fs::read(&state_file).ok()?).ok()?;
                (state["phase"] == "renew" && state["done"].as_array()?.len() == 1).then_some(())
            }
        },
    )
    .await;
    let (ok, out) = certs(&lab, &["rotate-ca", "--rate", "600"]).await;
    assert!(
        !ok && out.contains("another certificate rotation is running"),
        "{out}"
    );
    let (ok, out) = certs(&lab, &["rotate-client"]).await;
    assert!(!ok && out.contains("rotate-ca"), "{out}");
    let interrupted = Command::new("kill")
        .args(["-INT", &slow.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let out = tokio::task::spawn_blocking(move || slow.wait_with_output())
        .await
        .expect("join")
        .expect("wait for the interrupted run");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("interrupted"),
        "{said}"
    );
    let (ok, out) = certs(&lab, &["rotate-ca", "--status"]).await;
    assert!(
        ok && out.contains("phase 2/3") && out.contains("done 1/4"),
        "{out}"
    );
    let (ok, out) = certs(&lab, &["rotate-ca", "--rate", "600"]).await;
    assert!(ok, "rotate-ca failed: {out}\n{}", lab.log());
    assert!(
        out.contains("resuming") && out.contains("4/4 amphorae done"),
        "{out}"
    );
    assert!(out.contains("done: rotate-ca finished"), "{out}");
    assert!(
        !state_file.exists(),
        "the finished rotation leaves no state"
    );
    let new_server_ca = std::fs::read_to_string(ca.join("server_ca.pem")).unwrap();
    assert_ne!(new_server_ca, old_server_ca);
    assert_eq!(
        certificates_in(&ca.join("server_ca.pem")),
        1,
        "the old server CA is retired"
    );
    let old_ca_file = lab.dir.path().join("old_server_ca.pem");
    std::fs::write(&old_ca_file, &old_server_ca).unwrap();
    let client = ca.join("client.pem");
    for a in &before {
        assert!(
            agent_answers(a, &ca.join("server_ca.pem"), &client),
            "{a} on the new CA"
        );
        assert!(
            !agent_answers(a, &old_ca_file, &client),
            "{a} still on the old CA"
        );
    }

    // The client CA and the controller's certificate.
    let old_client = lab.dir.path().join("old_client.pem");
    std::fs::copy(&client, &old_client).unwrap();
    let old_client_ca = std::fs::read_to_string(ca.join("client_ca.pem")).unwrap();
    let (ok, out) = certs(&lab, &["rotate-client", "--rate", "600"]).await;
    assert!(ok, "rotate-client failed: {out}\n{}", lab.log());
    assert!(out.contains("done: rotate-client finished"), "{out}");
    assert_ne!(
        std::fs::read_to_string(ca.join("client_ca.pem")).unwrap(),
        old_client_ca
    );
    assert_eq!(
        certificates_in(&ca.join("client_ca.pem")),
        1,
        "the old client CA is retired"
    );
    assert_ne!(
        std::fs::read(&client).unwrap(),
        std::fs::read(&old_client).unwrap()
    );
    for a in &before {
        assert!(
            agent_answers(a, &ca.join("server_ca.pem"), &client),
            "{a}: new controller"
        );
        assert!(
            !agent_answers(a, &ca.join("server_ca.pem"), &old_client),
            "{a} still accepts the old controller certificate"
        );
    }

    let logs: Vec<Vec<(Instant, bool)>> = futures_join(probes).await;
    for (name, log) in ["ACTIVE_STANDBY", "SINGLE"].iter().zip(&logs) {
        let (_, failed) = outage(log, started);
        let sent = log.iter().filter(|(at, _)| *at > started).count();
        println!("{name}: {failed} of {sent} requests failed during both rotations");
        assert_eq!(failed, 0, "{name}: requests failed during the rotations");
    }

    // No amphora was replaced, and the controller (its worker and its agent client, never
    // restarted) still configures every one: a new listener on both load balancers serves.
    let after: Vec<Value> = [
        amphorae(&lab, &pair).await,
        amphorae(&lab, &single).await,
        spares().await,
    ]
    .concat();
    let ids = |v: &[Value]| {
        let mut ids: Vec<String> = v
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&after),
        ids(&before),
        "an amphora was replaced\n{}",
        lab.log()
    );
    for (lb, vip) in [(&pair, &pair_vip), (&single, &single_vip)] {
        let (_, pool) = lab.http_listener_and_pool(lb, 8080).await;
        lab.add_members(lb, &pool, 0..1).await;
        let tally = Traffic::new(vip, 8080, "/").run(10).await;
        assert_eq!(tally.failed, 0, "{lb}: {:?}", tally.errors);
    }
    lab.assert_no_failover_queued().await;
    lab.delete_cascade(&pair).await;
    lab.delete_cascade(&single).await;
}

async fn futures_join(probes: [Prober; 2]) -> Vec<Vec<(Instant, bool)>> {
    let mut logs = Vec::new();
    for p in probes {
        logs.push(p.finish().await);
    }
    logs
}
