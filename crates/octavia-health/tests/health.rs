//! Heartbeat receiver end to end on both store engines: packets built by an independent
//! Python encoder (zlib, hmac, hashlib, json — not our codec) go over loopback UDP into the
//! receiver; the tests read back `amphora_health`, operating statuses and statistics.

use std::future::Future;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use octavia_db::{FleetMember, HeartbeatRecord, Store};
use octavia_health::{CounterSnapshot, Counters, HealthReceiver, HealthSettings, Secret};
use octavia_model::health::{HealthReport, PoolReport};
use octavia_model::{now, AmphoraId, ListenerStatistics, OperatingStatus as S, ProvisioningStatus};
use octavia_test_support::{describe, engines, eventually, TestStore};
use serde_json::json;

/// Builds a v3 heartbeat the way the reference's sender does, in Python, from a compact spec:
/// `{"id", "seq", "listeners": [[id, status, tx, rx, conns, totconns, ereq]],
///   "pools": [[pool_id, listener_id, status, {member_id: status}]]}`.
/// Modes: `hex` (current), `raw` (32-byte digest), `nozlib` (sign uncompressed text),
/// `badjson` (sign zlib of broken JSON).
const PY_ENCODER: &str = r#"
import sys, json, zlib, hmac, hashlib
spec, key, mode = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
msg = {"id": spec["id"], "seq": spec["seq"], "ver": 3, "listeners": {}, "pools": {}}
for lid, status, tx, rx, conns, tot, ereq in spec["listeners"]:
    msg["listeners"][lid] = {"status": status, "stats": {"tx": tx, "rx": rx, "conns": conns, "totconns": tot, "ereq": ereq}}
for pid, lid, status, members in spec["pools"]:
    msg["pools"][pid + ":" + lid] = {"status": status, "members": members}
data = json.dumps(msg).encode("utf-8")
if mode == "nozlib":
    payload = data
elif mode == "badjson":
    payload = zlib.compress(data[:-3], 9)
else:
    payload = zlib.compress(data, 9)
mac = hmac.new(key.encode("utf-8"), payload, hashlib.sha256)
sys.stdout.buffer.write(payload + (mac.digest() if mode == "raw" else mac.hexdigest().encode("ascii")))
"#;

fn python_packet(spec: &serde_json::Value, key: &str, mode: &str) -> Result<Vec<u8>> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PY_ENCODER)
        .arg(spec.to_string())
        .arg(key)
        .arg(mode)
        .output()
        .context("run python3 (the independent heartbeat encoder)")?;
    if !out.status.success() {
        bail!(
            "python encoder failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// A heartbeat spec for the fleet member `f`: listener OPEN with the given counters, pool with
/// `pool_status`, member with `member_status`.
fn spec(
    f: &FleetMember,
    seq: u64,
    stats: [u64; 5],
    pool_status: &str,
    member_status: &str,
) -> serde_json::Value {
    let [tx, rx, conns, tot, ereq] = stats;
    json!({
        "id": f.amphora_id.to_string(),
        "seq": seq,
        "listeners": [[f.listener_id.to_string(), "OPEN", tx, rx, conns, tot, ereq]],
        "pools": [[f.pool_id.to_string(), f.listener_id.to_string(), pool_status,
                   {f.member_id.to_string(): member_status}]],
    })
}

struct Running {
    addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), octavia_health::HealthError>>,
    client: std::net::UdpSocket,
}

impl Running {
    async fn start(store: &Store) -> Result<Running> {
        let settings = HealthSettings {
            bind_port: 0,
            heartbeat_keys: vec![Secret::new("current-key"), Secret::new("previous-key")],
            batch_window: Duration::from_millis(5),
            ..Default::default()
        };
        let r = HealthReceiver::bind(store.clone(), settings).await?;
        let addr = r.local_addr().context("bound address")?;
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        let counters = r.counters();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(r.run(async move {
            let _ = rx.await;
        }));
        let client = std::net::UdpSocket::bind("127.0.0.1:0")?;
        Ok(Running {
            addr,
            counters,
            stop: Some(stop),
            task,
            client,
        })
    }

    fn send(&self, packet: &[u8]) -> Result<()> {
        self.client.send_to(packet, self.addr)?;
        Ok(())
    }

    fn snap(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// Waits until `pred` holds on the counters; a timeout names the counters at that moment.
    async fn wait(&self, what: &str, pred: impl Fn(&CounterSnapshot) -> bool) -> Result<()> {
        let c = &self.counters;
        let awaited = describe(|| format!("{what} (counters: {:?})", c.snapshot()));
        eventually(awaited, Duration::from_secs(15), || {
            std::future::ready(pred(&c.snapshot()).then_some(()))
        })
        .await;
        Ok(())
    }

    /// Sends one packet and waits until the writer has taken one more heartbeat.
    async fn send_and_write(&self, packet: &[u8]) -> Result<()> {
        let before = self.snap();
        self.send(packet)?;
        self.wait("heartbeat written", |s| s.written > before.written)
            .await
    }

    async fn stop(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .context("receiver did not stop")???;
        Ok(())
    }
}

/// Operating statuses of (LB, listener, pool, member).
type Statuses = (S, S, S, S);

async fn statuses(s: &Store, f: &FleetMember) -> Result<Statuses> {
    let lb = s
        .get_load_balancer(f.load_balancer_id)
        .await?
        .context("lb")?;
    let l = s.get_listener(f.listener_id).await?.context("listener")?;
    let p = s.get_pool(f.pool_id).await?.context("pool")?;
    let m = s.get_member(f.member_id).await?.context("member")?;
    Ok((
        lb.operating_status,
        l.operating_status,
        p.operating_status,
        m.operating_status,
    ))
}

async fn for_each_engine<F, Fut>(test: F)
where
    F: Fn(TestStore) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    for engine in engines() {
        let t = TestStore::new(engine).await;
        if let Err(e) = test(t).await {
            panic!("{engine:?}: {e:#}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_heartbeat_is_accepted_and_bad_packets_are_dropped() {
    for_each_engine(|t| async move {
        let s = &t.store;
        let fleet = s.seed_heartbeat_fleet(2, "p1").await?;
        let f = &fleet[0];
        let r = Running::start(s).await?;

        // Rejected: wrong key, not zlib, bad json, too short, truncated, unknown amphora.
        let good = spec(f, 1, [0; 5], "UP", "UP");
        r.send(&python_packet(&good, "some-other-key", "hex")?)?;
        r.send(&python_packet(&good, "current-key", "nozlib")?)?;
        r.send(&python_packet(&good, "current-key", "badjson")?)?;
        let valid = python_packet(&good, "current-key", "hex")?;
        r.send(&valid[..20])?;
        r.send(&valid[..valid.len() - 5])?;
        let mut stranger = good.clone();
        stranger["id"] = json!(AmphoraId::new().to_string());
        r.send(&python_packet(&stranger, "current-key", "hex")?)?;
        r.wait("every reject counted", |c| {
            c.bad_hmac == 2
                && c.bad_zlib == 1
                && c.bad_json == 1
                && c.too_short == 1
                && c.unknown_amphora == 1
        })
        .await?;
        assert!(s.get_amphora_health(f.amphora_id).await?.is_none());

        // The receiver still works: a member DOWN report from Python is applied.
        let before = now();
        r.send_and_write(&python_packet(
            &spec(f, 2, [0; 5], "UP", "DOWN"),
            "current-key",
            "hex",
        )?)
        .await?;
        let h = s
            .get_amphora_health(f.amphora_id)
            .await?
            .context("health row after a valid heartbeat")?;
        assert!(!h.busy);
        assert!(h.last_update >= before - chrono::Duration::seconds(1));
        assert_eq!(
            statuses(s, f).await?,
            (S::Degraded, S::Online, S::Degraded, S::Error)
        );

        // Previous key (rotation) and the raw-digest form of older amphorae are accepted.
        let g = &fleet[1];
        r.send_and_write(&python_packet(
            &spec(g, 1, [0; 5], "DOWN", "UP"),
            "previous-key",
            "raw",
        )?)
        .await?;
        assert!(s.get_amphora_health(g.amphora_id).await?.is_some());
        assert_eq!(
            statuses(s, g).await?,
            (S::Error, S::Online, S::Error, S::Online)
        );
        assert_eq!(r.snap().bad_hmac, 2);
        assert_eq!(r.snap().written, 2);
        r.stop().await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_rules_follow_reports() {
    for_each_engine(|t| async move {
        let s = &t.store;
        let fleet = s.seed_heartbeat_fleet(1, "p1").await?;
        let f = &fleet[0];
        let r = Running::start(s).await?;
        let key = "current-key";
        let steps: [(&str, &str, Statuses); 5] = [
            (
                "UP",
                "DOWN",
                (S::Degraded, S::Online, S::Degraded, S::Error),
            ),
            ("DOWN", "DOWN", (S::Error, S::Online, S::Error, S::Error)),
            (
                "UP",
                "DRAIN",
                (S::Online, S::Online, S::Online, S::Draining),
            ),
            ("UP", "MAINT", (S::Online, S::Online, S::Online, S::Offline)),
            (
                "UP",
                "no check",
                (S::Online, S::Online, S::Online, S::NoMonitor),
            ),
        ];
        for (i, (pool, member, want)) in steps.into_iter().enumerate() {
            r.send_and_write(&python_packet(
                &spec(f, i as u64, [0; 5], pool, member),
                key,
                "hex",
            )?)
            .await?;
            assert_eq!(
                statuses(s, f).await?,
                want,
                "step {i}: pool {pool}, member {member}"
            );
        }

        // Missing listener: listener ERROR, and the count mismatch leaves the health
        // timestamp alone.
        let last = s
            .get_amphora_health(f.amphora_id)
            .await?
            .context("health")?;
        let mut missing = spec(f, 9, [0; 5], "UP", "UP");
        missing["listeners"] = json!([]);
        r.send_and_write(&python_packet(&missing, key, "hex")?)
            .await?;
        assert_eq!(
            statuses(s, f).await?,
            (S::Online, S::Error, S::Online, S::Online)
        );
        let after = s
            .get_amphora_health(f.amphora_id)
            .await?
            .context("health")?;
        assert_eq!(after.last_update, last.last_update);
        r.stop().await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_deltas_accumulate() {
    for_each_engine(|t| async move {
        let s = &t.store;
        let fleet = s.seed_heartbeat_fleet(1, "p1").await?;
        let f = &fleet[0];
        let r = Running::start(s).await?;
        for (i, stats) in [[100, 10, 5, 3, 1], [50, 20, 2, 4, 0], [1, 1, 7, 1, 2]]
            .into_iter()
            .enumerate()
        {
            r.send_and_write(&python_packet(
                &spec(f, i as u64, stats, "UP", "UP"),
                "current-key",
                "hex",
            )?)
            .await?;
        }
        let want = ListenerStatistics {
            bytes_in: 31,
            bytes_out: 151,
            active_connections: 7,
            total_connections: 8,
            request_errors: 3,
        };
        assert_eq!(s.listener_stats(f.listener_id).await?, want);
        assert_eq!(s.load_balancer_stats(f.load_balancer_id).await?, want);
        r.stop().await
    })
    .await;
}

fn record(f: &FleetMember, pool_status: &str, member_status: &str) -> HeartbeatRecord {
    let mut report = HealthReport {
        reported_listener_count: 1,
        ..Default::default()
    };
    report.listeners.insert(f.listener_id, "OPEN".into());
    report.pools.insert(
        f.pool_id,
        PoolReport {
            status: pool_status.into(),
            members: [(f.member_id, member_status.to_string())].into(),
        },
    );
    HeartbeatRecord {
        amphora_id: f.amphora_id,
        received_at: now(),
        refresh_health: true,
        report,
        stats: vec![(
            f.listener_id,
            ListenerStatistics {
                bytes_in: 1,
                ..Default::default()
            },
        )],
        stats_are_deltas: true,
        vip_held: None,
        heartbeat_key_id: None,
    }
}

#[tokio::test]
async fn store_writes_only_changes_and_reports_unknown_amphorae() {
    for_each_engine(|t| async move {
        let s = &t.store;
        let fleet = s.seed_heartbeat_fleet(3, "p1").await?;
        let (a, b, c) = (&fleet[0], &fleet[1], &fleet[2]);

        // Healthy report on an all-ONLINE fleet: nothing to write but the health row.
        let out = s.record_heartbeats(&[record(a, "UP", "UP")]).await?;
        assert_eq!(
            (out.refreshed, out.status_writes, out.stats_rows),
            (1, 0, 1)
        );
        // Member DOWN: member, pool and LB written; once more: nothing written.
        let out = s.record_heartbeats(&[record(a, "UP", "DOWN")]).await?;
        assert_eq!(out.status_writes, 3);
        let out = s.record_heartbeats(&[record(a, "UP", "DOWN")]).await?;
        assert_eq!(out.status_writes, 0);

        // Two records of one amphora in a batch: stats add up, the last statuses win.
        let out = s
            .record_heartbeats(&[record(b, "DOWN", "UP"), record(b, "UP", "UP")])
            .await?;
        assert_eq!(out.status_writes, 0, "net effect of the batch is no change");
        assert_eq!(s.listener_stats(b.listener_id).await?.bytes_in, 2);

        // Unknown, DELETED, without load balancer, too slow.
        let mut amp = s.get_amphora(c.amphora_id).await?.context("amphora")?;
        amp.status = ProvisioningStatus::Deleted;
        s.save_amphora(&amp).await?;
        let mut orphan = s.get_amphora(b.amphora_id).await?.context("amphora")?;
        orphan.id = AmphoraId::new();
        orphan.load_balancer_id = None;
        s.save_amphora(&orphan).await?;
        let mut stranger = record(a, "UP", "UP");
        stranger.amphora_id = AmphoraId::new();
        let mut lonely = record(a, "UP", "UP");
        lonely.amphora_id = orphan.id;
        let mut slow = record(b, "UP", "UP");
        slow.refresh_health = false;
        let before_b = s
            .get_amphora_health(b.amphora_id)
            .await?
            .context("health b")?;
        let out = s
            .record_heartbeats(&[stranger.clone(), record(c, "UP", "UP"), lonely, slow])
            .await?;
        let mut unknown = out.unknown_amphorae.clone();
        unknown.sort();
        let mut want = vec![stranger.amphora_id, c.amphora_id];
        want.sort();
        assert_eq!(unknown, want);
        assert_eq!(out.without_load_balancer, vec![orphan.id]);
        assert_eq!(out.refreshed, 0);
        assert!(s.get_amphora_health(c.amphora_id).await?.is_none());
        assert_eq!(
            s.get_amphora_health(b.amphora_id)
                .await?
                .context("health b")?
                .last_update,
            before_b.last_update
        );
        // Non-delta (pre-v3) counters overwrite.
        let mut abs = record(b, "UP", "UP");
        abs.stats_are_deltas = false;
        abs.stats[0].1.bytes_in = 40;
        s.record_heartbeats(&[abs]).await?;
        assert_eq!(s.listener_stats(b.listener_id).await?.bytes_in, 40);
        Ok(())
    })
    .await;
}
