//! `octavia heartbeat-key rotate` with real amphorae: under traffic through one of two
//! SINGLE load balancers, the new key reaches every amphora through an agent configuration
//! push and the old key is retired — no request fails, no amphora is failed over, every
//! amphora reports with the new key, the receiver rejects nothing afterwards, and a
//! heartbeat signed with the old key is refused. The first run is interrupted (Ctrl-C) after
//! one push; another key is refused meanwhile; the second run resumes and finishes. An
//! amphora built afterwards boots with the new key.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use amphora_proto::heartbeat::{encode, HeartbeatMessage};
use octavia_test_support::eventually;
use serde_json::Value;

use crate::fleet::{outage, serving_lb, wait_online, Prober};
use crate::lab::{can_run, Lab, Traffic, HEARTBEAT_KEY};

/// `octavia heartbeat-key status -f json`.
fn status(lab: &Lab) -> Value {
    let out = lab.octavia(&["heartbeat-key", "status", "-f", "json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Live amphorae by the key of their newest heartbeat, as `status` counts them.
fn by_key(status: &Value) -> BTreeMap<String, u64> {
    status["amphorae_by_key"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of the all-in-one's metric line starting with `series` (0 when absent).
async fn metric(lab: &Lab, series: &str) -> f64 {
    lab.metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

const BAD_HMAC: &str = "octavia_heartbeats_rejected_total{reason=\"bad_hmac\"}";
const RECEIVED: &str = "octavia_heartbeats_received_total";

/// `octavia --config <lab>`, to run.
fn octavia_cmd(lab: &Lab) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_octavia"));
    c.arg("--config").arg(&lab.config);
    c
}

/// A command the test started, killed if the test ends before it does.
struct Child(std::process::Child);

impl Child {
    fn wait(mut self) -> Output {
        let child = std::mem::replace(
            &mut self.0,
            Command::new("true").spawn().expect("spawn true"),
        );
        child.wait_with_output().expect("wait for the command")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Live amphora ids of `lb`.
async fn amphora_ids(lab: &Lab, lb: &str) -> Vec<String> {
    lab.amphorae_of(lb)
        .await
        .iter()
        .filter(|a| a["status"] != "DELETED")
        .map(|a| a["id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeat_key_rotates_under_traffic_without_a_failover() {
    if !can_run() {
        return;
    }
    let lab = Lab::new("hbk", 32, 1, "").await;
    let (served, vip) = serving_lb(&lab, "hbk-served").await;
    let (quiet, _) = lab.create_lb("hbk-quiet").await;
    wait_online(&lab, &served).await;
    let before: Vec<String> = [
        amphora_ids(&lab, &served).await,
        amphora_ids(&lab, &quiet).await,
    ]
    .concat();
    assert_eq!(before.len(), 2, "{before:?}");

    // Before any rotation: the configuration's key, no stored key; the health manager says
    // what it accepts.
    eventually(
        "both amphorae heartbeating, the health manager recorded",
        Duration::from_secs(30),
        || async {
            let s = status(&lab);
            (by_key(&s) == BTreeMap::from([("config".to_string(), 2)])
                && s["health_managers"]
                    .as_array()
                    .is_some_and(|h| h.len() == 1))
            .then_some(())
        },
    )
    .await;
    let s = status(&lab);
    assert!(s["keys"].as_array().is_some_and(|k| k.is_empty()), "{s}");
    let dry = lab.octavia(&["heartbeat-key", "rotate", "--dry-run"]);
    assert!(dry.contains("dry run: nothing changed"), "{dry}");
    assert!(dry.contains("2 live amphorae"), "{dry}");
    assert!(status(&lab)["keys"]
        .as_array()
        .is_some_and(|k| k.is_empty()));

    // The rotation, under traffic.
    let traffic = Traffic::new(&vip, 80, "/");
    eventually("the VIP to answer", Duration::from_secs(30), || async {
        matches!(traffic.one().await, Ok((200, _))).then_some(())
    })
    .await;
    let probe = Prober::start(Traffic::new(&vip, 80, "/"));
    probe.wait_first_success().await;
    let started = Instant::now();
    // Started slowly (one push a minute) and interrupted once the first amphora took the
    // key: the rotation stays in progress, both keys accepted.
    let first = Child(
        octavia_cmd(&lab)
            .args(["heartbeat-key", "rotate", "--rate", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start octavia heartbeat-key rotate"),
    );
    eventually(
        "one amphora on key 2, the other waiting for the rate",
        Duration::from_secs(30),
        || async {
            let keys = by_key(&status(&lab));
            (keys.get("2") == Some(&1) && keys.values().sum::<u64>() == 2).then_some(())
        },
    )
    .await;
    let pid = first.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT")
        .success());
    let out = tokio::task::spawn_blocking(move || first.wait())
        .await
        .expect("join the first rotate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "interrupted rotate failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "added heartbeat key 2",
        "health managers accepting key 2: 1/1",
        "stopped: 1/2 amphorae report with key 2",
    ] {
        assert!(stdout.contains(want), "no '{want}' in:\n{stdout}");
    }
    println!("{stdout}");
    let s = status(&lab);
    assert_eq!(s["rotating_to"], 2, "{s}");
    assert!(s["rotation_owner"].is_null(), "the lease was released: {s}");
    assert_eq!(
        s["health_managers"][0]["accepted"],
        serde_json::json!([2, 1]),
        "{s}"
    );

    // Another key is refused while this rotation is in progress.
    let key_file = lab.dir.path().join("other.key");
    std::fs::write(&key_file, "another-key-0123456789\n").expect("write key file");
    let refused = octavia_cmd(&lab)
        .args(["heartbeat-key", "rotate", "--key-file"])
        .arg(&key_file)
        .output()
        .expect("run rotate --key-file");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("in progress"),
        "{err}"
    );

    // Run again: it resumes and finishes.
    let mut again = octavia_cmd(&lab);
    again.args(["heartbeat-key", "rotate"]);
    let out = tokio::task::spawn_blocking(move || again.output().expect("run rotate again"))
        .await
        .expect("join the rotation");
    let took = started.elapsed();
    let log = probe.finish().await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rotate failed: {stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.log()
    );
    for want in [
        "resuming the rotation to heartbeat key 2",
        "amphorae reporting with key 2: 2/2",
        "key 1 retired",
        "done: key 2",
    ] {
        assert!(stdout.contains(want), "no '{want}' in:\n{stdout}");
    }
    println!("{stdout}");
    let (_, failed) = outage(&log, started);
    let sent = log.iter().filter(|(at, _)| *at > started).count();
    println!(
        "heartbeat key rotation of 2 amphorae (interrupted once, then resumed) took {took:?}; \
         {failed} of {sent} requests failed"
    );
    assert_eq!(failed, 0, "requests failed during the rotation");

    // No failover: the same amphorae, ALLOCATED, and none queued.
    let after: Vec<String> = [
        amphora_ids(&lab, &served).await,
        amphora_ids(&lab, &quiet).await,
    ]
    .concat();
    assert_eq!(after, before, "an amphora was replaced\n{}", lab.log());
    assert_eq!(
        metric(&lab, "octavia_failovers_queued_total{cause=\"heartbeat\"}").await,
        0.0
    );
    let s = status(&lab);
    assert_eq!(by_key(&s), BTreeMap::from([("2".to_string(), 2)]), "{s}");
    let states: Vec<(i64, &str)> = s["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["id"].as_i64().unwrap_or(0),
                k["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(states, [(2, "CURRENT"), (1, "RETIRED")], "{s}");
    assert_eq!(
        s["health_managers"][0]["accepted"],
        serde_json::json!([2]),
        "{s}"
    );
    assert!(s["rotating_to"].is_null(), "{s}");

    // After the rotation, the receiver rejects none of the amphorae's heartbeats.
    let rejected = metric(&lab, BAD_HMAC).await;
    let received = metric(&lab, RECEIVED).await;
    eventually("six more heartbeats", Duration::from_secs(20), || async {
        (metric(&lab, RECEIVED).await >= received + 6.0).then_some(())
    })
    .await;
    assert_eq!(
        metric(&lab, BAD_HMAC).await,
        rejected,
        "heartbeats were rejected"
    );

    // A heartbeat signed with the retired key is refused.
    let hm: octavia::config::Config = octavia::config::Config::load(&lab.config).expect("config");
    let to = (
        hm.health_manager.bind_ip.clone(),
        hm.health_manager.bind_port,
    );
    let old = encode(
        &HeartbeatMessage {
            id: before[0].clone(),
            seq: 1,
            ver: 3,
            ..Default::default()
        },
        HEARTBEAT_KEY,
    );
    let sock = std::net::UdpSocket::bind((to.0.as_str(), 0)).expect("UDP socket");
    eventually(
        "the old key's heartbeat rejected",
        Duration::from_secs(10),
        || async {
            let _ = sock.send_to(&old, (to.0.as_str(), to.1));
            (metric(&lab, BAD_HMAC).await > rejected).then_some(())
        },
    )
    .await;

    // An amphora built now boots with the new key.
    let (third, _) = lab.create_lb("hbk-new").await;
    eventually(
        "the new amphora reporting with key 2",
        Duration::from_secs(30),
        || async {
            (by_key(&status(&lab)) == BTreeMap::from([("2".to_string(), 3)])).then_some(())
        },
    )
    .await;
    for lb in [&served, &quiet, &third] {
        lab.delete_cascade(lb).await;
    }
}
