//! `octavia bench`: a load generator against a fresh all-in-one, per store engine.
//!
//! For each engine it starts this very binary as an all-in-one on a free loopback port
//! (noop drivers, a scratch database) and measures, over real HTTP:
//! * baseline: `GET /` (the version document: HTTP stack only, no database),
//! * GET-one of a load balancer and list of 100 load balancers (throughput, p50/p99),
//! * create accepted (`POST` → 201) throughput and p50/p99,
//! * create → ACTIVE latency (sequential creates, polled until ACTIVE), p50/p99.
//!
//! The throughput phases use a minimal keep-alive HTTP/1.1 client (one connection per
//! concurrent client), so the generator takes as little of the machine's CPU as possible.
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
    /// Database connections of the server under test (`[database] max_pool_size`; the
    /// default is the configuration's default).
    #[arg(long, default_value_t = 10)]
    pub pool_size: u32,
    /// Sequential creates measured for create → ACTIVE.
    #[arg(long, default_value_t = 200)]
    pub creates: usize,
    /// Jobs the server's worker runs at once (`[task_flow] max_workers`; the default is the
    /// configuration's default). The create phase leaves a backlog the worker works through
    /// meanwhile, so this sets how much of the host the worker takes from the API.
    #[arg(long, default_value_t = crate::config::TaskFlowSection::default().max_workers)]
    pub max_workers: u32,
    /// The all-in-one binary to start (default: this executable).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// A Keystone (v3) to also measure GET-one with Keystone tokens against: a second
    /// all-in-one with `auth_strategy = "keystone"` validates a member's token (cached).
    #[arg(long, env = "OCTAVIA_TEST_KEYSTONE_URL")]
    pub keystone_url: Option<String>,
    /// Password of Keystone's `admin` user (project `admin`, domain `Default`): it creates the
    /// benchmark's project and member, and serves as the API's service user.
    #[arg(long, env = "OCTAVIA_TEST_KEYSTONE_ADMIN_PASSWORD")]
    pub keystone_admin_password: Option<String>,
}

/// Who a benchmark request says it is.
#[derive(Debug, Clone)]
enum Auth {
    /// noauth: `X-Project-Id`.
    Project(String),
    /// Keystone: `X-Auth-Token`.
    Token(String),
}

impl Auth {
    fn header(&self) -> (&'static str, &str) {
        match self {
            Auth::Project(p) => ("X-Project-Id", p),
            Auth::Token(t) => ("X-Auth-Token", t),
        }
    }
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
            let _ = octavia_db::admin::drop_database_blocking(&admin, &db);
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `extra`: more `[api_settings]` options, then any other sections.
async fn start_server(engine: &str, args: &BenchArgs, extra: &str) -> anyhow::Result<Server> {
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
            let url = octavia_db::admin::create_database(&admin, &db).await?;
            (url, Some((admin, db)))
        }
    };
    let config = format!(
        "[api_settings]\nbind_port = {port}\n{extra}[database]\nconnection = \"{connection}\"\nmax_pool_size = {}\n[task_flow]\nmax_workers = {}\n",
        args.pool_size, args.max_workers
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

/// 100 ACTIVE load balancers of `auth`'s project.
async fn hundred_load_balancers(
    client: &reqwest::Client,
    base: &str,
    auth: &Auth,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(create_lb(client, base, auth, i).await?);
    }
    for id in &ids {
        wait_active(client, base, auth, id).await?;
    }
    Ok(ids)
}

/// GET-one against a second all-in-one that validates Keystone tokens: a fresh project and
/// member in `keystone` (cleaned up after), its token (validated once, then cached).
async fn keystone_get_one(
    engine: &str,
    args: &BenchArgs,
    client: &reqwest::Client,
    keystone: &str,
    admin_password: &str,
) -> anyhow::Result<Sample> {
    let ks = keystone
        .trim_end_matches('/')
        .trim_end_matches("/v3")
        .to_string();
    let token = |user: Value, scope: Value| {
        let client = client.clone();
        let ks = ks.clone();
        async move {
            let r = client
                .post(format!("{ks}/v3/auth/tokens?nocatalog"))
                .json(&json!({"auth": {"identity": {"methods": ["password"], "password": {"user": user}}, "scope": scope}}))
                .send()
                .await?;
            if r.status().as_u16() != 201 {
                bail!("Keystone refused a password authentication: {}", r.status());
            }
            Ok::<String, anyhow::Error>(
                r.headers()
                    .get("x-subject-token")
                    .and_then(|v| v.to_str().ok())
                    .context("no X-Subject-Token")?
                    .to_string(),
            )
        }
    };
    let admin = token(
        json!({"name": "admin", "domain": {"id": "default"}, "password": admin_password}),
        json!({"project": {"name": "admin", "domain": {"id": "default"}}}),
    )
    .await?;
    let admin_call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let client = client.clone();
        let ks = ks.clone();
        let admin = admin.clone();
        async move {
            let mut req = client
                .request(method, format!("{ks}/v3{path}"))
                .header("X-Auth-Token", admin);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let r = req.send().await?;
            if !r.status().is_success() {
                bail!("Keystone {path}: {}", r.status());
            }
            Ok::<Value, anyhow::Error>(r.json().await.unwrap_or(Value::Null))
        }
    };
    let name = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let password = uuid::Uuid::new_v4().to_string();
    let project = admin_call(
        reqwest::Method::POST,
        "/projects".into(),
        Some(json!({"project": {"name": name, "domain_id": "default"}})),
    )
    .await?;
    let project_id = project["project"]["id"]
        .as_str()
        .context("project id")?
        .to_string();
    let user = admin_call(
        reqwest::Method::POST,
        "/users".into(),
        Some(json!({"user": {"name": name, "password": password, "domain_id": "default"}})),
    )
    .await?;
    let user_id = user["user"]["id"].as_str().context("user id")?.to_string();
    let roles = admin_call(reqwest::Method::GET, "/roles?name=member".into(), None).await?;
    let role = roles["roles"][0]["id"]
        .as_str()
        .context("Keystone has no member role")?
        .to_string();
    admin_call(
        reqwest::Method::PUT,
        format!("/projects/{project_id}/users/{user_id}/roles/{role}"),
        None,
    )
    .await?;
    let member = Auth::Token(
        token(
            json!({"id": user_id, "password": password}),
            json!({"project": {"id": project_id}}),
        )
        .await?,
    );
    let extra = format!(
        "auth_strategy = \"keystone\"\n[keystone_authtoken]\nauth_url = \"{ks}/v3\"\nusername = \"admin\"\npassword = \"{admin_password}\"\nproject_name = \"admin\"\n"
    );
    let server = start_server(engine, args, &extra).await;
    let result = async {
        let server = server?;
        let ids = Arc::new(hundred_load_balancers(client, &server.base, &member).await?);
        let addr = server.base.trim_start_matches("http://").to_string();
        let sample = get_one(&addr, args, ids, member).await;
        sample.print("GET one, Keystone token");
        Ok::<Sample, anyhow::Error>(sample)
    }
    .await;
    let _ = admin_call(reqwest::Method::DELETE, format!("/users/{user_id}"), None).await;
    let _ = admin_call(
        reqwest::Method::DELETE,
        format!("/projects/{project_id}"),
        None,
    )
    .await;
    result
}

/// Latencies of one phase.
struct Sample {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Sample {
    fn percentile(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        nearest_rank(&v, p)
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

/// The `q` quantile (0 ≤ q ≤ 1) of `sorted` (ascending) by nearest rank; zero when empty.
/// Shared with the data-plane and failover benchmarks.
pub fn nearest_rank(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Builds the raw bytes of request number `i`.
type RequestFn = Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>;

/// A minimal HTTP/1.1 keep-alive client connection: the load generator shares the machine's
/// two cores with the server, so it must cost as little CPU as possible (like `wrk`).
struct RawConn {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    addr: String,
}

impl RawConn {
    async fn open(addr: &str) -> std::io::Result<RawConn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream: tokio::io::BufReader::new(stream),
            addr: addr.to_string(),
        })
    }

    /// Send one request and read the whole response; returns its status code.
    async fn send(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        self.stream.get_mut().write_all(request).await?;
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(bad("connection closed"));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let (mut length, mut chunked, mut close) = (0usize, false, false);
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(bad("connection closed in headers"));
            }
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let v = v.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.parse().map_err(|_| bad("bad content-length"))?;
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v.eq_ignore_ascii_case("chunked");
                } else if k.eq_ignore_ascii_case("connection") {
                    close = v.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut body = vec![0u8; length];
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("bad chunk"))?;
                let mut chunk = vec![0u8; size + 2];
                self.stream.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
            }
        } else {
            self.stream.read_exact(&mut body).await?;
        }
        if close {
            *self = RawConn::open(&self.addr).await?;
        }
        Ok(status)
    }
}

/// A request's bytes: `method path` with the project header and an optional JSON body.
fn raw_request(method: &str, path: &str, auth: Option<&Auth>, body: Option<&Value>) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n");
    if let Some((name, value)) = auth.map(Auth::header) {
        r.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    r.push_str("\r\n");
    r.push_str(&body);
    r.into_bytes()
}

async fn load(
    addr: &str,
    concurrency: usize,
    seconds: u64,
    expect: u16,
    make: RequestFn,
) -> Sample {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let make = make.clone();
        let addr = addr.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut i = worker;
            let Ok(mut conn) = RawConn::open(&addr).await else {
                return (lat, 1);
            };
            while Instant::now() < deadline {
                let request = make(i);
                let t = Instant::now();
                match conn.send(&request).await {
                    Ok(status) if status == expect => lat.push(t.elapsed()),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        match RawConn::open(&addr).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
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

fn lb_body(project: Option<&str>, i: usize) -> Value {
    let mut lb = json!({
        "name": format!("bench-{i}"),
        "vip_subnet_id": "8f2fd7b6-43a2-4ea7-a3c5-4e9b6c1e0a01",
    });
    if let Some(p) = project {
        lb["project_id"] = json!(p);
    }
    json!({ "loadbalancer": lb })
}

async fn create_lb(
    client: &reqwest::Client,
    base: &str,
    auth: &Auth,
    i: usize,
) -> anyhow::Result<String> {
    let (name, value) = auth.header();
    let project = match auth {
        Auth::Project(p) => Some(p.as_str()),
        Auth::Token(_) => None,
    };
    let r = client
        .post(format!("{base}/v2/lbaas/loadbalancers"))
        .header(name, value)
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
    auth: &Auth,
    id: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (name, value) = auth.header();
    loop {
        let v: Value = client
            .get(format!("{base}/v2/lbaas/loadbalancers/{id}"))
            .header(name, value)
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

/// GET-one: each connection reads the load balancers of `ids` in turn, as `auth`.
async fn get_one(addr: &str, args: &BenchArgs, ids: Arc<Vec<String>>, auth: Auth) -> Sample {
    load(
        addr,
        args.concurrency,
        args.seconds,
        200,
        Arc::new(move |i| {
            raw_request(
                "GET",
                &format!("/v2/lbaas/loadbalancers/{}", ids[i % ids.len()]),
                Some(&auth),
                None,
            )
        }),
    )
    .await
}

async fn bench_engine(engine: &str, args: &BenchArgs) -> anyhow::Result<()> {
    println!(
        "\n## {engine}: all-in-one with noop drivers, {} connections, {} s per phase",
        args.concurrency, args.seconds
    );
    let server = start_server(engine, args, "").await?;
    let base = server.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;

    // 100 load balancers in one project, for GET-one and list.
    let project = Auth::Project("bench-list".into());
    let ids = Arc::new(hundred_load_balancers(&client, &base, &project).await?);

    let addr = base.trim_start_matches("http://").to_string();
    let baseline = load(
        &addr,
        args.concurrency,
        args.seconds,
        200,
        Arc::new(|_| raw_request("GET", "/", None, None)),
    )
    .await;
    baseline.print("baseline GET / (no db)");

    let get_one = get_one(&addr, args, ids.clone(), project.clone()).await;
    get_one.print("GET one load balancer");
    let keystone = match (&args.keystone_url, &args.keystone_admin_password) {
        (Some(url), Some(password)) => {
            Some(keystone_get_one(engine, args, &client, url, password).await?)
        }
        _ => {
            println!("GET one with Keystone tokens: skipped (no --keystone-url / --keystone-admin-password)");
            None
        }
    };

    let list = load(
        &addr,
        args.concurrency,
        args.seconds,
        200,
        Arc::new(|_| {
            raw_request(
                "GET",
                "/v2/lbaas/loadbalancers?limit=100",
                Some(&Auth::Project("bench-list".into())),
                None,
            )
        }),
    )
    .await;
    list.print("list 100 load balancers");

    // create → ACTIVE, sequential, on an otherwise idle server.
    let mut to_active = Vec::new();
    for i in 0..args.creates {
        let t = Instant::now();
        let who = Auth::Project("bench-latency".into());
        let id = create_lb(&client, &base, &who, i).await?;
        wait_active(&client, &base, &who, &id).await?;
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

    let creates = load(
        &addr,
        args.concurrency,
        args.seconds,
        201,
        Arc::new(|i| {
            raw_request(
                "POST",
                "/v2/lbaas/loadbalancers",
                Some(&Auth::Project("bench-create".into())),
                Some(&lb_body(Some("bench-create"), i)),
            )
        }),
    )
    .await;
    creates.print("create accepted (201)");

    if let Some(ks) = keystone {
        println!(
            "Keystone auth: GET-one at {:.0}% of the noauth GET-one throughput ({:.0} vs {:.0} req/s)",
            100.0 * ks.rate() / get_one.rate(),
            ks.rate(),
            get_one.rate()
        );
    }
    println!(
        "vs baseline: GET-one at {:.0}% of baseline throughput, list at {:.0}%, create at {:.0}%",
        100.0 * get_one.rate() / baseline.rate(),
        100.0 * list.rate() / baseline.rate(),
        100.0 * creates.rate() / baseline.rate()
    );
    drop(server);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(nearest_rank(&v, 0.50), Duration::from_millis(50));
        assert_eq!(nearest_rank(&v, 0.99), Duration::from_millis(99));
        assert_eq!(nearest_rank(&v, 1.0), Duration::from_millis(100));
        assert_eq!(nearest_rank(&v, 0.0), Duration::from_millis(1));
        let one = [Duration::from_millis(7)];
        assert_eq!(nearest_rank(&one, 0.99), Duration::from_millis(7));
        assert_eq!(nearest_rank(&[], 0.5), Duration::ZERO);
    }
}
