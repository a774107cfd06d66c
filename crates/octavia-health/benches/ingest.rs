//! Heartbeat ingest benchmark (not a test): heartbeats per second end to end — signed v3
//! packets sent over loopback UDP → decoded → batched → rows written — for 10,000 registered
//! amphorae on SQLite, and on PostgreSQL when `OCTAVIA_TEST_PG_URL` is set. Baselines measured
//! in the same run: decode only (CPU), and store only (`record_heartbeats` without UDP).
//!
//! Run: `cargo bench -p octavia-health --bench ingest` (env `INGEST_AMPHORAE`, `INGEST_ROUNDS`
//! override the fleet size (10,000) and the rounds of heartbeats per amphora (3)).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use amphora_proto::heartbeat::{
    decode, encode, HeartbeatMessage, ListenerReport, ListenerStats, PoolReport,
};
use octavia_db::{FleetMember, HeartbeatRecord};
use octavia_health::{report, HealthReceiver, HealthSettings, Secret};
use octavia_test_support::{engines, TestStore};

const KEY: &str = "bench-heartbeat-key";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn message(f: &FleetMember, seq: u64) -> HeartbeatMessage {
    let mut msg = HeartbeatMessage {
        id: f.amphora_id.to_string(),
        seq,
        ver: 3,
        ..Default::default()
    };
    msg.listeners.insert(
        f.listener_id.to_string(),
        ListenerReport {
            status: "OPEN".into(),
            stats: ListenerStats {
                tx: 1000 + seq,
                rx: 500,
                conns: 3,
                totconns: 7,
                ereq: 0,
            },
            ..Default::default()
        },
    );
    let mut pool = PoolReport {
        status: "UP".into(),
        ..Default::default()
    };
    pool.members.insert(f.member_id.to_string(), "UP".into());
    msg.pools
        .insert(format!("{}:{}", f.pool_id, f.listener_id), pool);
    msg
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

async fn bench_engine(engine: octavia_db::Engine, amphorae: usize, rounds: usize) {
    let t = TestStore::new(engine).await;
    let store = t.store.clone();
    let start = Instant::now();
    let fleet = store
        .seed_heartbeat_fleet(amphorae, "bench")
        .await
        .expect("seed fleet");
    println!(
        "[{engine:?}] seeded {amphorae} amphorae (LB + listener + pool + member each) in {:.2?}",
        start.elapsed()
    );

    let packets: Vec<Vec<u8>> = (0..rounds)
        .flat_map(|r| fleet.iter().map(move |f| (f, r)))
        .map(|(f, r)| encode(&message(f, r as u64), KEY))
        .collect();
    let total = packets.len();
    let avg_len = packets.iter().map(Vec::len).sum::<usize>() / total.max(1);

    // Baseline 1: decode only (digest check, inflate, JSON) + conversion to store records.
    let start = Instant::now();
    let mut records: Vec<HeartbeatRecord> = Vec::with_capacity(total);
    for p in &packets {
        let msg = decode(p, &[KEY]).expect("decode own packet");
        records.push(report::record(&msg, octavia_model::now()).expect("amphora id"));
    }
    let d = start.elapsed();
    println!(
        "[{engine:?}] baseline decode-only: {total} packets ({avg_len} B avg) in {d:.2?} = {:.0} heartbeats/s",
        rate(total, d)
    );

    // Baseline 2: store only, batches of 2000 records (no UDP, no decode).
    let start = Instant::now();
    for chunk in records.chunks(2000) {
        store.record_heartbeats(chunk).await.expect("store batch");
    }
    let d = start.elapsed();
    println!(
        "[{engine:?}] baseline store-only (batches of 2000): {total} heartbeats in {d:.2?} = {:.0} heartbeats/s",
        rate(total, d)
    );

    // End to end: UDP → receiver → decode → batch → store.
    let settings = HealthSettings {
        bind_port: 0,
        heartbeat_keys: vec![Secret::new(KEY)],
        sock_rlimit: 8 << 20,
        ..Default::default()
    };
    let receiver = HealthReceiver::bind(store.clone(), settings.clone())
        .await
        .expect("bind receiver");
    let addr = receiver.local_addr().expect("bound address");
    let counters = receiver.counters();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(receiver.run(async move {
        let _ = stop_rx.await;
    }));

    let sender_counters = counters.clone();
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        // Flow control: at most `window` datagrams not yet read by the receiver, so the
        // kernel's socket buffer never overflows (loss would not be counted anywhere).
        let window = 256u64;
        for (i, p) in packets.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while (i as u64).saturating_sub(sender_counters.snapshot().received) >= window {
                if Instant::now() > deadline {
                    return i;
                }
                std::thread::yield_now();
            }
            if sock.send_to(p, addr).is_err() {
                return i;
            }
        }
        packets.len()
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let c = counters.snapshot();
        let done = c.written + c.unknown_amphora + c.db_error + c.too_slow;
        if done >= total as u64 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let d = start.elapsed();
    let sent = sender.join().unwrap_or(0);
    let c = counters.snapshot();
    println!(
        "[{engine:?}] end to end: sent {sent}, written {} in {} batches ({:.0} avg), rejected {} in {d:.2?} = {:.0} heartbeats/s",
        c.written,
        c.batches,
        c.written as f64 / c.batches.max(1) as f64,
        c.unknown_amphora + c.db_error + c.too_slow + c.bad_hmac + c.bad_json + c.bad_zlib,
        rate(c.written as usize, d)
    );
    let _ = stop_tx.send(());
    let _ = task.await;

    let sample = &fleet[amphorae / 2];
    let stats = store
        .listener_stats(sample.listener_id)
        .await
        .expect("stats");
    println!(
        "[{engine:?}] check: listener {} bytes_in {} (= 2 passes x {rounds} rounds x 500), health row: {}",
        sample.listener_id,
        stats.bytes_in,
        store
            .get_amphora_health(sample.amphora_id)
            .await
            .ok()
            .flatten()
            .is_some()
    );
}

fn main() {
    let amphorae = env_usize("INGEST_AMPHORAE", 10_000);
    let rounds = env_usize("INGEST_ROUNDS", 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        for engine in engines() {
            bench_engine(engine, amphorae, rounds).await;
        }
    });
}
