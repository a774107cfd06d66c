//! Monitoring with the real tools: the all-in-one's `/metrics` passes `promtool check
//! metrics` (Debian's prometheus package), and a real Prometheus scraping it answers the
//! operator guide's build-rate query.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use octavia_test_support::eventually;
use octavia_test_support::require::{require, runs};
use serde_json::{json, Value};

use crate::support::{free_port, wait_api, write_config, Proc};

/// A child killed and reaped on drop, also when the test fails.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn create_lb(base: &str, name: &str) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{base}/v2/lbaas/loadbalancers"))
        .header("X-Project-Id", "monitoring")
        .json(&json!({"loadbalancer": {"name": name,
            "vip_subnet_id": uuid::Uuid::new_v4().to_string()}}))
        .send()
        .await
        .expect("POST load balancer")
        .json()
        .await
        .expect("load balancer body");
    let id = v["loadbalancer"]["id"].as_str().expect("lb id").to_string();
    eventually(
        "the load balancer to be ACTIVE",
        Duration::from_secs(30),
        || {
            let url = format!("{base}/v2/lbaas/loadbalancers/{id}");
            async move {
                let v: Value = reqwest::Client::new()
                    .get(url)
                    .header("X-Project-Id", "monitoring")
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (v["loadbalancer"]["provisioning_status"] == "ACTIVE").then_some(())
            }
        },
    )
    .await;
    id
}

async fn prometheus_query(prom: &str, query: &str) -> Option<f64> {
    let v: Value = reqwest::Client::new()
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_and_prometheus_answers_the_build_rate() {
    if !require(
        "the monitoring test",
        &[
            (
                "promtool (Debian's prometheus)",
                runs("promtool", &["--version"]),
            ),
            ("prometheus", runs("prometheus", &["--version"])),
        ],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let db = format!("sqlite://{}", dir.path().join("octavia.db").display());
    let cfg = write_config(dir.path(), "aio", &db, port, "");
    let aio = Proc::start("all-in-one", env!("CARGO_BIN_EXE_octavia"), &cfg, &[]);
    wait_api(&base).await;
    create_lb(&base, "monitoring-1").await;

    // Every series the daemon exports passes Prometheus' own linter.
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(text.contains("octavia_amphora_builds_total"), "{text}");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    {
        use std::io::Write;
        check
            .stdin
            .take()
            .expect("promtool stdin")
            .write_all(text.as_bytes())
            .expect("feed promtool");
    }
    let out = check.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A real Prometheus scrapes the all-in-one every second.
    let prom_port = free_port();
    let prom = format!("http://127.0.0.1:{prom_port}");
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: octavia\n    \
             static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let _prometheus = Reaped(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    eventually(
        "Prometheus to scrape the all-in-one",
        Duration::from_secs(30),
        || prometheus_query(&prom, "up{job=\"octavia\"} == 1"),
    )
    .await;
    // A build after the first scrape, so the rate sees the counter move.
    create_lb(&base, "monitoring-2").await;
    let rate = eventually(
        "Prometheus to see amphorae being built",
        Duration::from_secs(30),
        || async {
            prometheus_query(
                &prom,
                "sum(rate(octavia_amphora_builds_total{result=\"success\"}[30s]))",
            )
            .await
            .filter(|r| *r > 0.0)
        },
    )
    .await;
    eprintln!("build rate seen by Prometheus: {rate:.4} amphorae/s");
    drop(aio);
}
