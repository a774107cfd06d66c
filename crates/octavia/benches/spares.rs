//! The spare pool's benchmark (not a test), on the real binaries with the netns drivers and
//! HAProxy: how long from `POST /v2/lbaas/loadbalancers` (a single-call create with an HTTP
//! listener, a pool and a member) until the VIP answers, when the build takes a spare and
//! when it boots a new amphora (the baseline), interleaved in one run on one control plane
//! (`[house_keeping] spare_amphora_pool_size = 2`, `spare_check_interval = 1s`). The cold
//! builds use a flavor whose `compute_flavor` no spare has, so they cannot take one.
//! `OCTAVIA_BENCH_RUNS` (default 20) of each.
//!
//! ```sh
//! cargo build -p amphora-agent && cargo bench --profile dev -p octavia --bench spares
//! ```

#[path = "../tests/e2e/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/e2e/lab.rs"]
#[allow(dead_code)]
mod lab;

#[path = "support/report.rs"]
mod report;

use std::time::{Duration, Instant};

use lab::{Lab, Traffic};
use octavia_test_support::eventually;
use report::report;
use reqwest::Method;
use serde_json::{json, Value};

fn runs() -> usize {
    std::env::var("OCTAVIA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20)
}

/// READY spares heartbeating, as many as the pool size.
async fn pool_full(lab: &Lab, size: usize) {
    eventually(
        "the spare pool to be full",
        Duration::from_secs(60),
        || async {
            let v = lab
                .call(Method::GET, "/v2/octavia/amphorae?status=READY", None, 200)
                .await;
            let n = v["amphorae"].as_array().map_or(0, |a| {
                a.iter().filter(|a| a["loadbalancer_id"].is_null()).count()
            });
            (n >= size).then_some(())
        },
    )
    .await;
}

/// A flavor whose amphorae get a compute flavor no spare has; its id.
async fn cold_flavor(lab: &Lab) -> String {
    lab.create_flavor("cold", r#"{"compute_flavor": "bench-cold"}"#)
        .await
}

/// Create a serving load balancer in one call; the time until its VIP answers 200, and
/// whether its amphora was a spare.
async fn create_serving(lab: &Lab, name: &str, flavor: Option<&str>) -> (Duration, String, bool) {
    let mut body = json!({
        "name": name,
        "vip_subnet_id": lab.subnet_id,
        "listeners": [{
            "protocol": "HTTP", "protocol_port": 80,
            "default_pool": {
                "name": "pool", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                "members": [lab.member_body(0)],
            },
        }],
    });
    if let Some(f) = flavor {
        body["flavor_id"] = json!(f);
    }
    let started = Instant::now();
    let v = lab
        .call(
            Method::POST,
            "/v2/lbaas/loadbalancers",
            Some(json!({ "loadbalancer": body })),
            201,
        )
        .await;
    let lb = v["loadbalancer"]["id"].as_str().expect("lb id").to_string();
    // ACTIVE (the create's last step pushed the configuration and HAProxy answered), read
    // every 5 ms; then the VIP's first answer. (Traffic to the VIP before it is plugged
    // would wait out a SYN retransmission, a second that is the probe's, not the build's.)
    let url = format!("{}/v2/lbaas/loadbalancers/{lb}", lab.api);
    let vip = loop {
        let v: Value = lab
            .http
            .get(&url)
            .send()
            .await
            .expect("GET load balancer")
            .json()
            .await
            .expect("json");
        match v["loadbalancer"]["provisioning_status"].as_str() {
            Some("ACTIVE") => {
                break v["loadbalancer"]["vip_address"]
                    .as_str()
                    .expect("vip")
                    .to_string()
            }
            Some("ERROR") => panic!("{name} went ERROR\n{}", lab.log()),
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name} not ACTIVE"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let active = started.elapsed();
    let traffic = Traffic::new(&vip, 80, "/");
    let took = loop {
        if matches!(traffic.one().await, Ok((200, _))) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name} not serving"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let amps: Value = lab
        .call(
            Method::GET,
            &format!("/v2/octavia/amphorae?loadbalancer_id={lb}"),
            None,
            200,
        )
        .await;
    // A spare's id is random; a built amphora's is derived from its job (UUIDv5).
    let spare = amps["amphorae"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|a| a["id"].as_str())
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .is_some_and(|u| u.get_version_num() == 4);
    eprintln!("{name}: ACTIVE after {active:?}, serving after {took:?}, spare {spare}");
    (took, lb, spare)
}

fn main() {
    if !lab::can_run() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let lab = Lab::new(
            "bsp",
            35,
            1,
            "[house_keeping]\nspare_amphora_pool_size = 2\nspare_check_interval = \"1s\"\n",
        )
        .await;
        let cold = cold_flavor(&lab).await;
        let (mut from_spare, mut built) = (Vec::new(), Vec::new());
        let mut misses = 0;
        for i in 0..runs() {
            pool_full(&lab, 2).await;
            let (took, lb, spare) = create_serving(&lab, &format!("bench-spare-{i}"), None).await;
            if spare {
                from_spare.push(took);
            } else {
                misses += 1;
            }
            lab.delete_cascade(&lb).await;
            let (took, lb, spare) =
                create_serving(&lab, &format!("bench-cold-{i}"), Some(&cold)).await;
            assert!(!spare, "a cold build took a spare");
            built.push(took);
            lab.delete_cascade(&lb).await;
        }
        println!("create -> VIP serving (single-call create: listener, pool, member)");
        report("from a spare", &mut from_spare);
        report("cold build (baseline, same run)", &mut built);
        if misses > 0 {
            println!("{misses} create(s) meant for a spare found none that fit and built");
        }
    });
}
