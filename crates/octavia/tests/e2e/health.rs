//! The `octavia-health-manager` process: signed heartbeats in, health and statuses out.

use std::collections::BTreeMap;
use std::time::Duration;

use amphora_proto::heartbeat::{encode, HeartbeatMessage, ListenerReport, PoolReport};
use octavia_db::{Engine, FleetMember};
use octavia_model::OperatingStatus;
use octavia_test_support::{engines, eventually, TestStore};

use crate::support::{write_config, Proc};

const KEY: &str = "e2e-heartbeat-key";

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free UDP port")
}

fn heartbeat(f: &FleetMember, member_status: &str) -> HeartbeatMessage {
    let mut members = BTreeMap::new();
    members.insert(f.member_id.to_string(), member_status.to_string());
    let mut pools = BTreeMap::new();
    pools.insert(
        format!("{}:{}", f.pool_id, f.listener_id),
        PoolReport {
            status: "UP".into(),
            members,
        },
    );
    let mut listeners = BTreeMap::new();
    listeners.insert(
        f.listener_id.to_string(),
        ListenerReport {
            status: "OPEN".into(),
            ..Default::default()
        },
    );
    HeartbeatMessage {
        id: f.amphora_id.to_string(),
        seq: 1,
        ver: 3,
        listeners,
        pools,
        ..Default::default()
    }
}

async fn heartbeats_reach_the_store(engine: Engine) {
    let ts = TestStore::new(engine).await;
    let store = ts.store.clone();
    let fleet = store
        .seed_heartbeat_fleet(2, "e2e-health")
        .await
        .expect("seed");
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let metrics_port = crate::support::free_port();
    let cfg = write_config(
        dir.path(),
        "hm",
        &ts.url,
        crate::support::free_port(),
        &format!(
            "[health_manager]\nbind_ip = \"127.0.0.1\"\nbind_port = {port}\nheartbeat_key = \"{KEY}\"\nheartbeat_interval = \"1s\"\n\n[metrics]\nhealth_manager_port = {metrics_port}\n"
        ),
    );
    let _hm = Proc::start(
        "health-manager",
        env!("CARGO_BIN_EXE_octavia-health-manager"),
        &cfg,
        &[],
    );
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();

    // A member reported DOWN by a correctly signed heartbeat: ERROR in the store. Resend
    // until it lands (the receiver may still be starting; UDP gives no delivery signal).
    let good = encode(&heartbeat(&fleet[0], "DOWN"), KEY);
    let forged = encode(&heartbeat(&fleet[1], "DOWN"), "some-other-key");
    eventually(
        "the heartbeat to be recorded",
        Duration::from_secs(20),
        || {
            let _ = sock.send_to(&good, ("127.0.0.1", port));
            let _ = sock.send_to(&forged, ("127.0.0.1", port));
            let store = store.clone();
            let amp = fleet[0].amphora_id;
            async move { store.get_amphora_health(amp).await.ok().flatten() }
        },
    )
    .await;
    let member = store.get_member(fleet[0].member_id).await.unwrap().unwrap();
    assert_eq!(member.operating_status, OperatingStatus::Error);
    let lb = store
        .get_load_balancer(fleet[0].load_balancer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lb.operating_status, OperatingStatus::Degraded);

    // The forged heartbeats, sent alongside all along, changed nothing.
    assert!(store
        .get_amphora_health(fleet[1].amphora_id)
        .await
        .unwrap()
        .is_none());
    let other = store.get_member(fleet[1].member_id).await.unwrap().unwrap();
    assert_ne!(other.operating_status, OperatingStatus::Error);

    // The daemon's own metrics endpoint counts both the accepted and the forged heartbeats.
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("scrape the health manager")
        .text()
        .await
        .expect("metrics text");
    for name in [
        "octavia_heartbeats_received_total",
        "octavia_heartbeats_rejected_total",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_manager_records_signed_heartbeats_and_drops_forged_ones() {
    for engine in engines() {
        heartbeats_reach_the_store(engine).await;
    }
}

#[test]
fn health_manager_refuses_to_start_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/o.db", dir.path().display());
    let cfg = write_config(dir.path(), "hm", &db, crate::support::free_port(), "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_octavia-health-manager"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run octavia-health-manager");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("heartbeat_key"), "{err}");
}

/// SIGHUP makes a running health manager re-read its file: a live option (the circuit
/// breaker's threshold) takes effect at once, a restart-only one (the UDP port) is named as
/// waiting for a restart, and a file that no longer parses changes nothing and stops nothing.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_live_options_and_names_the_rest() {
    const NEXT_KEY: &str = "e2e-next-heartbeat-key";
    let ts = TestStore::new(Engine::Sqlite).await;
    let store = ts.store.clone();
    let fleet = store
        .seed_heartbeat_fleet(3, "e2e-sighup")
        .await
        .expect("seed");
    let dir = tempfile::tempdir().unwrap();
    let api_port = crate::support::free_port();
    let write = |threshold: u32, udp: u16, previous: &str| {
        write_config(
            dir.path(),
            "hm",
            &ts.url,
            api_port,
            &format!(
                "[health_manager]\nbind_ip = \"127.0.0.1\"\nbind_port = {udp}\nheartbeat_key = \"{KEY}\"\n\
                 heartbeat_previous_keys = [{previous}]\n\
                 health_check_interval = \"100ms\"\nheartbeat_timeout = \"3s\"\nfailover_threshold = {threshold}\n\n\
                 [metrics]\nhealth_manager_port = 0\n"
            ),
        )
    };
    let udp = free_udp_port();
    let cfg = write(3, udp, "");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Heartbeats of fleet[0] signed with the current key, of fleet[1] with the next one.
    let current = encode(&heartbeat(&fleet[0], "UP"), KEY);
    let next = encode(&heartbeat(&fleet[1], "UP"), NEXT_KEY);
    let mut hm = Proc::start(
        "health-manager",
        env!("CARGO_BIN_EXE_octavia-health-manager"),
        &cfg,
        &[],
    );
    let hup = |pid: u32| {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill -HUP")
            .success();
        assert!(ok, "SIGHUP not delivered");
    };
    eventually("the checker to start", Duration::from_secs(20), || {
        let started = hm.log().contains("stale amphora checker started");
        async move { started.then_some(()) }
    })
    .await;
    // Before the reload the next key is refused: the current-key heartbeat sent after it is
    // recorded, the next-key one is not.
    eventually(
        "a current-key heartbeat recorded",
        Duration::from_secs(20),
        || {
            let _ = sock.send_to(&next, ("127.0.0.1", udp));
            let _ = sock.send_to(&current, ("127.0.0.1", udp));
            let store = store.clone();
            let amp = fleet[0].amphora_id;
            async move { store.get_amphora_health(amp).await.ok().flatten() }
        },
    )
    .await;
    assert!(
        store
            .get_amphora_health(fleet[1].amphora_id)
            .await
            .unwrap()
            .is_none(),
        "a heartbeat signed with a key not yet configured was accepted"
    );

    // The next key as a previous key (the first step of a rotation), the threshold raised,
    // the UDP port moved: SIGHUP.
    write(7, free_udp_port(), &format!("\"{NEXT_KEY}\""));
    hup(hm.pid().expect("pid"));
    eventually("the new threshold in use", Duration::from_secs(20), || {
        let log = hm.log();
        let ok = log.contains("SIGHUP: changed options applied")
            && log.contains("health_manager.failover_threshold")
            && log.contains("stale amphora checker settings changed")
            && log.contains("failover_threshold=Some(7)")
            && log.contains("take effect only after a restart")
            && log.contains("health_manager.bind_port");
        async move { ok.then_some(()) }
    })
    .await;
    // Still on the old UDP port (a restart moves it), it now takes the next key.
    eventually(
        "a next-key heartbeat recorded",
        Duration::from_secs(20),
        || {
            let _ = sock.send_to(&next, ("127.0.0.1", udp));
            let store = store.clone();
            let amp = fleet[1].amphora_id;
            async move { store.get_amphora_health(amp).await.ok().flatten() }
        },
    )
    .await;
    assert!(
        hm.log()
            .contains("heartbeat signed with a previous heartbeat key"),
        "{}",
        hm.log()
    );

    std::fs::write(&cfg, "[health_manager\nbroken").expect("break the file");
    hup(hm.pid().expect("pid"));
    eventually("the broken file refused", Duration::from_secs(20), || {
        let refused = hm.log().contains("SIGHUP: configuration not re-read");
        async move { refused.then_some(()) }
    })
    .await;
    assert!(
        hm.running(),
        "a broken file stopped the daemon:\n{}",
        hm.log()
    );
}
