//! `octavia bench`: a load generator against a fresh all-in-one, per store engine.
//!
//! For each engine it starts this very binary as an all-in-one on a free loopback port
//! (noop drivers, a scratch database) and measures, over real HTTP:
//! * baseline: `GET /` (the version document: HTTP stack only, no database),
//! * GET-one of a load balancer and list of 100 load balancers (throughput, p50/p99),
//! * create accepted (`POST` → 201) throughput and p50/p99,
//! * create → ACTIVE latency (sequential creates, polled until ACTIVE), p50/p99.
//!
//! It prints figures; it asserts nothing (benchmarks are not tests).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

/// Options of `octavia bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Engines to measure: sqlite, postgres, or both.
    #[arg(long, default_value = "both")]
    pub engine: String,
    /// Admin URL of a PostgreSQL server (a scratch database is created and dropped).
    #[arg(long, env = "OCTAVIA_TEST_PG_URL")]
    pub pg_url: Option<String>,
    /// Seconds per throughput phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Sequential creates measured for create → ACTIVE.
    #[arg(long, default_value_t = 200)]
    pub creates: usize,
    /// The all-in-one binary to start (default: this executable).
    #[arg(long)]
    pub binary: Option<PathBuf>,
}

/// Run the benchmark and print the figures.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let engines: Vec<&str> = match args.engine.as_str() {
        "both" => vec!["sqlite", "postgres"],
        "sqlite" => vec!["sqlite"],
        "postgres" => vec!["postgres"],
        other => bail!("--engine must be sqlite, postgres or both, not '{other}'"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for engine in engines {
        if engine == "postgres" && args.pg_url.is_none() {
            println!("\n## postgres: skipped (no --pg-url / OCTAVIA_TEST_PG_URL)");
            continue;
        }
        rt.block_on(bench_engine(engine, &args))
            .with_context(|| format!("benchmark on {engine}"))?;
    }
    Ok(())
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
    pg_cleanup: Option<(String, String)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((admin, db)) = self.pg_cleanup.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        use sqlx::Connection;
                        if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                            let _ =
                                sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                                    .execute(&mut c)
                                    .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn start_server(engine: &str, args: &BenchArgs) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let (connection, pg_cleanup) = match engine {
        "sqlite" => (
            format!("sqlite://{}/octavia.db", dir.path().display()),
            None,
        ),
        _ => {
            let admin = args.pg_url.clone().context("no PostgreSQL URL")?;
            let db = format!("octavia_bench_{}", uuid::Uuid::new_v4().simple());
            {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&format!("CREATE DATABASE {db}"))
                    .execute(&mut c)
                    .await?;
            }
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            (format!("{base}/{db}"), Some((admin.clone(), db)))
        }
    };
    let config = format!(
        "[api_settings]\nbind_port = {port}\n[database]\nconnection = \"{connection}\"\nmax_pool_size = 16\n[task_flow]\nmax_workers = 16\n"
    );
    let path = dir.path().join("octavia.toml");
    std::fs::write(&path, config)?;
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?,
    };
    let child = Command::new(binary)
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("start the all-in-one")?;
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
        pg_cleanup,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{}/", server.base)).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("the all-in-one did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(server)
}

/// Latencies of one phase.
struct Sample {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Sample {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut v = self.latencies.clone();
        v.sort();
        let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[idx.min(v.len() - 1)]
    }
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
    fn print(&self, name: &str) {
        println!(
            "{name:<28} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} ok, {} errors)",
            self.rate(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            self.latencies.len(),
            self.errors
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

type RequestFn = Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

async fn load(
    client: &reqwest::Client,
    concurrency: usize,
    seconds: u64,
    expect: u16,
    make: RequestFn,
) -> Sample {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let client = client.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut i = worker;
            while Instant::now() < deadline {
                let t = Instant::now();
                match make(&client, i).send().await {
                    Ok(r) if r.status().as_u16() == expect => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
                i += concurrency;
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            latencies.extend(l);
            errors += e;
        }
    }
    Sample {
        latencies,
        errors,
        elapsed: start.elapsed(),
    }
}

fn lb_body(project: &str, i: usize) -> Value {
    json!({"loadbalancer": {
        "name": format!("bench-{i}"),
        "project_id": project,
        "vip_subnet_id": "8f2fd7b6-43a2-4ea7-a3c5-4e9b6c1e0a01",
    }})
}

async fn create_lb(
    client: &reqwest::Client,
    base: &str,
    project: &str,
    i: usize,
) -> anyhow::Result<String> {
    let r = client
        .post(format!("{base}/v2/lbaas/loadbalancers"))
        .header("X-Project-Id", project)
        .json(&lb_body(project, i))
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if status.as_u16() != 201 {
        bail!("create answered {status}: {v}");
    }
    Ok(v["loadbalancer"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

async fn wait_active(
    client: &reqwest::Client,
    base: &str,
    project: &str,
    id: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = client
            .get(format!("{base}/v2/lbaas/loadbalancers/{id}"))
            .header("X-Project-Id", project)
            .send()
            .await?
            .json()
            .await?;
        match v["loadbalancer"]["provisioning_status"].as_str() {
            Some("ACTIVE") => return Ok(()),
            Some("ERROR") => bail!("load balancer {id} went to ERROR"),
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("load balancer {id} not ACTIVE within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn bench_engine(engine: &str, args: &BenchArgs) -> anyhow::Result<()> {
    println!(
        "\n## {engine}: all-in-one with noop drivers, {} connections, {} s per phase",
        args.concurrency, args.seconds
    );
    let server = start_server(engine, args).await?;
    let base = server.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;

    // 100 load balancers in one project, for GET-one and list.
    let project = "bench-list";
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(create_lb(&client, &base, project, i).await?);
    }
    for id in &ids {
        wait_active(&client, &base, project, id).await?;
    }
    let ids = Arc::new(ids);

    let b = base.clone();
    let baseline = load(
        &client,
        args.concurrency,
        args.seconds,
        200,
        Arc::new(move |c, _| c.get(format!("{b}/"))),
    )
    .await;
    baseline.print("baseline GET / (no db)");

    let b = base.clone();
    let idsc = ids.clone();
    let get_one = load(
        &client,
        args.concurrency,
        args.seconds,
        200,
        Arc::new(move |c, i| {
            c.get(format!(
                "{b}/v2/lbaas/loadbalancers/{}",
                idsc[i % idsc.len()]
            ))
            .header("X-Project-Id", "bench-list")
        }),
    )
    .await;
    get_one.print("GET one load balancer");

    let b = base.clone();
    let list = load(
        &client,
        args.concurrency,
        args.seconds,
        200,
        Arc::new(move |c, _| {
            c.get(format!("{b}/v2/lbaas/loadbalancers?limit=100"))
                .header("X-Project-Id", "bench-list")
        }),
    )
    .await;
    list.print("list 100 load balancers");

    // create → ACTIVE, sequential, on an otherwise idle server.
    let mut to_active = Vec::new();
    for i in 0..args.creates {
        let t = Instant::now();
        let id = create_lb(&client, &base, "bench-latency", i).await?;
        wait_active(&client, &base, "bench-latency", &id).await?;
        to_active.push(t.elapsed());
    }
    let s = Sample {
        errors: 0,
        elapsed: Duration::from_secs(1),
        latencies: to_active,
    };
    println!(
        "{:<28} p50 {:>7.2} ms   p99 {:>7.2} ms   ({} sequential creates)",
        "create -> ACTIVE",
        ms(s.percentile(0.50)),
        ms(s.percentile(0.99)),
        s.latencies.len()
    );

    let b = base.clone();
    let creates = load(
        &client,
        args.concurrency,
        args.seconds,
        201,
        Arc::new(move |c, i| {
            c.post(format!("{b}/v2/lbaas/loadbalancers"))
                .header("X-Project-Id", "bench-create")
                .json(&lb_body("bench-create", i))
        }),
    )
    .await;
    creates.print("create accepted (201)");

    println!(
        "vs baseline: GET-one at {:.0}% of baseline throughput, list at {:.0}%, create at {:.0}%",
        100.0 * get_one.rate() / baseline.rate(),
        100.0 * list.rate() / baseline.rate(),
        100.0 * creates.rate() / baseline.rate()
    );
    drop(server);
    Ok(())
}
