//! A data-plane lab for process tests: the all-in-one with the real drivers (netns compute and
//! network, the mTLS agent client), a registered amphora image, a tenant network, member web
//! servers in their own namespaces, and a guard that removes every namespace, link and process
//! of the lab when it is dropped (also when the test fails).
//!
//! Names carry the lab's tag so labs of tests running at once never touch each other:
//! amphora namespaces `xa<tag>-...`, member namespaces `xw<tag>-<n>`, bridges `xm<tag>` (management)
//! and `xt<tag>` (tenant), addresses 10.215.<n>.0/24 (management) and 10.216.<n>.0/24 (tenant).
//! Traffic goes only to addresses inside namespaces the lab created (VIPs, members).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use octavia_test_support::eventually;
use serde_json::{json, Value};

use crate::support::{free_port, wait_api, Proc};

pub const HEARTBEAT_KEY: &str = "e2e-dataplane-key";

/// Whether the data-plane tests can run here (root, iproute2, haproxy, python3, the agent
/// binary); under `CI=true` a missing piece fails the test instead of skipping it.
pub fn can_run() -> bool {
    use octavia_test_support::require::{exists, is_root, require, runs, HAPROXY};
    let agent = format!(
        "the amphora-agent binary at {} (`cargo build -p amphora-agent`)",
        agent_binary().display()
    );
    require(
        "the data-plane tests",
        &[
            ("root", is_root()),
            ("iproute2 (ip)", runs("ip", &["-V"])),
            ("HAProxy at /usr/sbin/haproxy", exists(HAPROXY)),
            ("python3", runs("python3", &["-V"])),
            (&agent, agent_binary().exists()),
        ],
    )
}

/// The agent binary built beside the `octavia` binary under test.
pub fn agent_binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_octavia"))
        .parent()
        .expect("binary directory")
        .join("amphora-agent")
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"))
}

fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Namespaces whose name starts with `prefix`.
pub fn namespaces_with(prefix: &str) -> Vec<String> {
    String::from_utf8_lossy(&run("ip", &["netns", "list"]).stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Links in the host namespace whose name starts with `prefix`.
pub fn links_with(prefix: &str) -> Vec<String> {
    String::from_utf8_lossy(&run("ip", &["-o", "link", "show"]).stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Processes (pid, command line) whose command line mentions `needle`.
pub fn processes_with(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains(needle) {
            out.push((pid, cmd));
        }
    }
    out
}

fn remove_namespace(ns: &str) {
    let pids = String::from_utf8_lossy(&run("ip", &["netns", "pids", ns]).stdout).into_owned();
    for pid in pids.split_whitespace() {
        let _ = run("kill", &["-9", pid]);
    }
    let _ = run("ip", &["netns", "del", ns]);
}

/// A member web server: a namespace on the tenant bridge running `python3 -m http.server`,
/// answering every GET with its name.
pub struct MemberServer {
    pub name: String,
    pub ns: String,
    pub ip: String,
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl MemberServer {
    /// Start (or restart) the web server; returns when it accepts connections.
    pub async fn start(&mut self) {
        self.stop();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "python3", "-m", "http.server"])
            .arg(self.port.to_string())
            .args(["--bind", &self.ip, "--directory"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start member web server");
        self.child = Some(child);
        let addr = format!("{}:{}", self.ip, self.port);
        eventually(
            &format!("member {} to listen", self.name),
            Duration::from_secs(20),
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ()) }
            },
        )
        .await;
    }

    /// Stop the web server (connections to it are refused afterwards).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for MemberServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One lab. Dropping it stops the control plane and removes everything it made.
pub struct Lab {
    pub tag: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub api: String,
    pub http: reqwest::Client,
    pub subnet_id: String,
    pub network: String,
    pub members: Vec<MemberServer>,
    control: Option<Proc>,
    settings: LabSettings,
}

impl Lab {
    /// Amphora namespace prefix.
    pub fn amp_prefix(&self) -> String {
        format!("xa{}-", self.tag)
    }
    fn member_prefix(&self) -> String {
        format!("xw{}-", self.tag)
    }
    /// Whether the host link `name` is this lab's: its management bridge `xm<tag>`, its
    /// tenant bridge `xt<tag>`, or a member server's veth `xw<tag>h<n>`. Matched exactly, not
    /// by prefix: lab `s` must not take lab `sp`'s bridge `xmsp` for its own and delete it
    /// while that lab runs.
    fn owns_link(&self, name: &str) -> bool {
        let tag = &self.tag;
        name == format!("xm{tag}")
            || name == format!("xt{tag}")
            || name
                .strip_prefix(&format!("xw{tag}h"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    /// Set up a lab numbered `n` (1..=200, unique among tests running at once) with `members`
    /// member web servers, and start the all-in-one.
    pub async fn new(tag: &str, n: u8, members: usize, extra_config: &str) -> Lab {
        Lab::with_health(tag, n, members, "", extra_config).await
    }

    /// [`Lab::new`] with extra `[health_manager]` options (`health_extra`, TOML lines).
    pub async fn with_health(
        tag: &str,
        n: u8,
        members: usize,
        health_extra: &str,
        extra_config: &str,
    ) -> Lab {
        let mut lab = Lab::prepare(tag, n, members, health_extra, "", extra_config, None).await;
        lab.start_control_plane().await;
        lab
    }

    /// [`Lab::new`] with extra `[certificates]` options (`certificates_extra`, TOML lines).
    pub async fn with_certificates(
        tag: &str,
        n: u8,
        members: usize,
        certificates_extra: &str,
        extra_config: &str,
    ) -> Lab {
        let mut lab =
            Lab::prepare(tag, n, members, "", certificates_extra, extra_config, None).await;
        lab.start_control_plane().await;
        lab
    }

    /// A lab on the database `database` whose control plane the test starts itself, as
    /// several processes with [`Lab::node_config`]s; the lab's own configuration (its
    /// ports unused) is what `octavia` operator commands run with.
    pub async fn without_control_plane(
        tag: &str,
        n: u8,
        members: usize,
        health_extra: &str,
        database: &str,
    ) -> Lab {
        Lab::prepare(tag, n, members, health_extra, "", "", Some(database)).await
    }

    /// The lab's configuration with the API on `api_port` and the heartbeat receiver on
    /// `hb_port` (the management bridge address), `extra` (TOML) appended, written to
    /// `<dir>/<name>.toml`: one control-plane node of the lab.
    pub fn node_config(&self, name: &str, api_port: u16, hb_port: u16, extra: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        let text = format!("{}\n{extra}\n", self.settings.text(api_port, hb_port));
        std::fs::write(&path, text).expect("write node config");
        path
    }

    async fn prepare(
        tag: &str,
        n: u8,
        members: usize,
        health_extra: &str,
        certificates_extra: &str,
        extra_config: &str,
        database: Option<&str>,
    ) -> Lab {
        assert!(tag.len() <= 6, "lab tag too long for interface names");
        let dir = tempfile::tempdir().expect("tempdir");
        let api_port = free_port();
        let hb_port = free_port();
        let config = dir.path().join("octavia.toml");
        let settings = LabSettings {
            tag: tag.to_string(),
            n,
            dir: dir.path().to_path_buf(),
            database: database.map_or_else(
                || format!("sqlite://{}/octavia.db", dir.path().display()),
                str::to_string,
            ),
            health_extra: health_extra.to_string(),
            certificates_extra: certificates_extra.to_string(),
            extra_config: extra_config.to_string(),
        };
        std::fs::write(&config, settings.text(api_port, hb_port)).expect("write config");
        let mut lab = Lab {
            tag: tag.to_string(),
            dir,
            config,
            api: format!("http://127.0.0.1:{api_port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .default_headers(
                    [
                        ("x-project-id", "e2e-dataplane"),
                        ("x-roles", "admin,member"),
                    ]
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            reqwest::header::HeaderName::from_static(k),
                            reqwest::header::HeaderValue::from_static(v),
                        )
                    })
                    .collect(),
                )
                .build()
                .expect("http client"),
            subnet_id: String::new(),
            network: format!("tnet{tag}"),
            members: Vec::new(),
            control: None,
            settings,
        };
        lab.cleanup_host();

        // The operator's set-up: an image and a tenant network, through the CLI.
        lab.register_image("amphora");
        let net_out = lab.octavia(&[
            "network",
            "create",
            &lab.network.clone(),
            "--cidr",
            &format!("10.216.{n}.0/24"),
            "--gateway",
            &format!("10.216.{n}.1"),
            "--bridge",
            &format!("xt{tag}"),
        ]);
        lab.subnet_id = net_out
            .lines()
            .find_map(|l| l.strip_prefix("subnet_id"))
            .map(|s| s.trim().to_string())
            .expect("subnet id printed");
        for i in 1..=members {
            lab.add_member_server(i).await;
        }
        lab
    }

    /// Run `octavia --config <lab> ARGS` and return its stdout (panics on failure).
    pub fn octavia(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_octavia"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run octavia");
        assert!(
            out.status.success(),
            "octavia {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Create member server number `i` (namespace, veth on the tenant bridge, address reserved
    /// from the network's IPAM) and start it.
    pub async fn add_member_server(&mut self, i: usize) -> usize {
        let reserved = self.octavia(&[
            "network",
            "reserve-address",
            &self.network.clone(),
            "--description",
            &format!("member {i}"),
        ]);
        let ip = reserved
            .split_whitespace()
            .next()
            .expect("address printed")
            .to_string();
        let ns = format!("{}{i}", self.member_prefix());
        let host_if = format!("xw{}h{i}", self.tag);
        let prefix_len = "24";
        let gateway = {
            let mut parts: Vec<&str> = ip.split('.').collect();
            parts[3] = "1";
            parts.join(".")
        };
        run_ok("ip", &["netns", "add", &ns]);
        run_ok(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        );
        run_ok(
            "ip",
            &[
                "link",
                "set",
                &host_if,
                "master",
                &format!("xt{}", self.tag),
            ],
        );
        run_ok("ip", &["link", "set", &host_if, "up"]);
        let nsx = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns.as_str()];
            all.extend_from_slice(args);
            run_ok("ip", &all);
        };
        nsx(&["ip", "link", "set", "lo", "up"]);
        nsx(&[
            "ip",
            "addr",
            "add",
            &format!("{ip}/{prefix_len}"),
            "dev",
            "eth0",
        ]);
        nsx(&["ip", "link", "set", "eth0", "up"]);
        nsx(&["ip", "route", "add", "default", "via", &gateway]);
        let dir = self.dir.path().join(format!("www{i}"));
        std::fs::create_dir_all(&dir).expect("www dir");
        std::fs::write(dir.join("index.html"), format!("member-{i}\n")).expect("index");
        let mut server = MemberServer {
            name: format!("member-{i}"),
            ns,
            ip,
            port: 8080,
            dir,
            child: None,
        };
        server.start().await;
        self.members.push(server);
        self.members.len() - 1
    }

    /// Start the all-in-one and wait for its API.
    pub async fn start_control_plane(&mut self) {
        self.start_control_plane_with(&[]).await
    }

    /// Start the all-in-one with extra environment (e.g. `OCTAVIA_FAILPOINTS`).
    pub async fn start_control_plane_with(&mut self, env: &[(&str, &str)]) {
        let config = self.config.clone();
        // E2E_RUST_LOG overrides the control plane's log filter when debugging a test.
        let filter = std::env::var("E2E_RUST_LOG")
            .unwrap_or_else(|_| "info,sqlx=warn,octavia_drivers=debug".to_string());
        let mut all = vec![("RUST_LOG", filter.as_str())];
        all.extend_from_slice(env);
        let proc = Proc::start(
            &format!("octavia-{}", self.tag),
            env!("CARGO_BIN_EXE_octavia"),
            &config,
            &all,
        );
        self.control = Some(proc);
        wait_api(&self.api).await;
    }

    /// kill -9 the all-in-one (amphorae keep running).
    pub fn kill_control_plane(&mut self) {
        if let Some(mut p) = self.control.take() {
            p.kill9();
        }
    }

    /// Register the agent binary as a new amphora image tagged `tag` (`octavia image
    /// register`); its id.
    pub fn register_image(&self, tag: &str) -> String {
        let agent = agent_binary();
        let image = self
            .octavia(&[
                "image",
                "register",
                "--tag",
                tag,
                agent.to_str().expect("utf-8 path"),
            ])
            .trim()
            .to_string();
        assert!(!image.is_empty(), "image register printed no id");
        image
    }

    /// A flavor of the amphora provider whose profile holds `flavor_data` (JSON text), and
    /// its profile, both named `name`; the flavor's id.
    pub async fn create_flavor(&self, name: &str, flavor_data: &str) -> String {
        let fp = self
            .call(
                reqwest::Method::POST,
                "/v2/lbaas/flavorprofiles",
                Some(
                    json!({"flavorprofile": {"name": name, "provider_name": "amphora",
                    "flavor_data": flavor_data}}),
                ),
                201,
            )
            .await["flavorprofile"]["id"]
            .as_str()
            .expect("flavor profile id")
            .to_string();
        self.call(
            reqwest::Method::POST,
            "/v2/lbaas/flavors",
            Some(json!({"flavor": {"name": name, "flavor_profile_id": fp}})),
            201,
        )
        .await["flavor"]["id"]
            .as_str()
            .expect("flavor id")
            .to_string()
    }

    /// The Prometheus text the all-in-one's API serves at `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.api))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Fails unless `octavia_failovers_queued_total` is 0 for every cause.
    pub async fn assert_no_failover_queued(&self) {
        let metrics = self.metrics_text().await;
        let queued: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("octavia_failovers_queued_total") && !l.ends_with(" 0"))
            .collect();
        assert!(queued.is_empty(), "no failover was queued: {queued:?}");
    }

    /// Send the all-in-one SIGHUP (it re-reads its configuration file).
    pub fn reload_control_plane(&self) {
        let pid = self
            .control
            .as_ref()
            .and_then(|p| p.pid())
            .expect("control plane running");
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill -HUP");
        assert!(ok.success(), "kill -HUP {pid}");
    }

    /// The control plane's log so far.
    pub fn log(&self) -> String {
        self.control.as_ref().map(|p| p.log()).unwrap_or_default()
    }

    /// Send a request to the API; panics unless the status is `want`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.api));
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("API request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(
            status,
            want,
            "{method} {path} {body:?} answered {status}: {text}\n--- control plane log ---\n{}",
            self.log()
        );
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        }
    }

    /// Delete the load balancer with cascade and wait until it is gone (GET answers 404).
    pub async fn delete_cascade(&self, lb: &str) {
        self.call(
            reqwest::Method::DELETE,
            &format!("/v2/lbaas/loadbalancers/{lb}?cascade=true"),
            None,
            204,
        )
        .await;
        eventually(
            "the cascade delete to finish",
            Duration::from_secs(30),
            || async move {
                let r = self
                    .http
                    .get(format!("{}/v2/lbaas/loadbalancers/{lb}", self.api))
                    .send()
                    .await
                    .ok()?;
                (r.status().as_u16() == 404).then_some(())
            },
        )
        .await;
    }

    /// Every amphora of the load balancer the admin API lists, DELETED ones included.
    pub async fn amphorae_of(&self, lb: &str) -> Vec<Value> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/v2/octavia/amphorae?loadbalancer_id={lb}"),
                None,
                200,
            )
            .await;
        v["amphorae"].as_array().cloned().unwrap_or_default()
    }

    /// The load balancer's provisioning status, as the API shows it.
    pub async fn provisioning_status(&self, lb: &str) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/v2/lbaas/loadbalancers/{lb}"),
                None,
                200,
            )
            .await;
        v["loadbalancer"]["provisioning_status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until the load balancer is ACTIVE (panics on ERROR); polls every 10 ms.
    pub async fn wait_lb_active(&self, lb: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            let state = self.provisioning_status(lb).await;
            match state.as_str() {
                "ACTIVE" => return,
                "ERROR" => panic!("load balancer {lb} went ERROR\n{}", self.log()),
                _ => {}
            }
            assert!(
                started.elapsed() < timeout,
                "load balancer {lb} not ACTIVE after {timeout:?}: {state}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Create a load balancer on the tenant subnet and wait for ACTIVE; returns (id, vip).
    pub async fn create_lb(&self, name: &str) -> (String, String) {
        self.create_lb_with(name, json!({})).await
    }

    /// [`Lab::create_lb`] with more fields of the request body (`flavor_id`, ...).
    pub async fn create_lb_with(&self, name: &str, extra: Value) -> (String, String) {
        let mut body = json!({"name": name, "vip_subnet_id": self.subnet_id});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let v = self
            .call(
                reqwest::Method::POST,
                "/v2/lbaas/loadbalancers",
                Some(json!({ "loadbalancer": body })),
                201,
            )
            .await;
        let id = v["loadbalancer"]["id"].as_str().expect("lb id").to_string();
        self.wait_lb_active(&id, Duration::from_secs(60)).await;
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/v2/lbaas/loadbalancers/{id}"),
                None,
                200,
            )
            .await;
        let vip = v["loadbalancer"]["vip_address"]
            .as_str()
            .expect("vip address")
            .to_string();
        (id, vip)
    }

    /// POST a child object (`kind` is the URL collection, `key` the envelope) and wait for the
    /// load balancer to be ACTIVE again; returns the new id.
    pub async fn create(&self, lb: &str, collection: &str, key: &str, body: Value) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                collection,
                Some(json!({ key: body })),
                201,
            )
            .await;
        let id = v[key]["id"].as_str().expect("id").to_string();
        self.wait_lb_active(lb, Duration::from_secs(60)).await;
        id
    }

    /// An HTTP listener on `port` of load balancer `lb` with a ROUND_ROBIN pool as its
    /// default pool, each waited ACTIVE: (listener, pool).
    pub async fn http_listener_and_pool(&self, lb: &str, port: u16) -> (String, String) {
        let listener = self
            .create(
                lb,
                "/v2/lbaas/listeners",
                "listener",
                json!({"loadbalancer_id": lb, "protocol": "HTTP", "protocol_port": port}),
            )
            .await;
        let pool = self
            .create(
                lb,
                "/v2/lbaas/pools",
                "pool",
                json!({"listener_id": listener, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}),
            )
            .await;
        (listener, pool)
    }

    /// The member body of lab server `i` (its address, port and the tenant subnet).
    pub fn member_body(&self, i: usize) -> Value {
        let m = &self.members[i];
        json!({"address": m.ip, "protocol_port": m.port, "subnet_id": self.subnet_id})
    }

    /// Add lab servers `servers` to `pool` of `lb`, each waited ACTIVE; their member ids.
    pub async fn add_members(
        &self,
        lb: &str,
        pool: &str,
        servers: impl IntoIterator<Item = usize>,
    ) -> Vec<String> {
        let mut ids = Vec::new();
        for i in servers {
            let path = format!("/v2/lbaas/pools/{pool}/members");
            ids.push(self.create(lb, &path, "member", self.member_body(i)).await);
        }
        ids
    }

    /// The status tree of a load balancer.
    pub async fn status(&self, lb: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!("/v2/lbaas/loadbalancers/{lb}/status"),
            None,
            200,
        )
        .await
    }

    /// Remove everything of this lab from the host (namespaces, links, stray processes).
    pub fn cleanup_host(&self) {
        for ns in namespaces_with(&self.amp_prefix())
            .into_iter()
            .chain(namespaces_with(&self.member_prefix()))
        {
            remove_namespace(&ns);
        }
        for link in links_with("x").into_iter().filter(|l| self.owns_link(l)) {
            let _ = run("ip", &["link", "del", &link]);
        }
        // Agents and HAProxies of this lab run from files under its directory.
        let marker = self.dir.path().display().to_string();
        for (pid, _) in processes_with(&marker) {
            let _ = run("kill", &["-9", &pid.to_string()]);
        }
    }

    /// What of this lab's amphorae is left on the host: namespaces, links, processes.
    pub fn amphora_leftovers(&self) -> Vec<String> {
        let mut out: Vec<String> = namespaces_with(&self.amp_prefix())
            .into_iter()
            .map(|n| format!("namespace {n}"))
            .collect();
        // Amphora veths on the management and tenant bridges.
        for link in links_with("") {
            let master = std::fs::read_link(format!("/sys/class/net/{link}/master"))
                .ok()
                .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
            if let Some(m) = master {
                let ours = m == format!("xm{}", self.tag) || m == format!("xt{}", self.tag);
                if ours && !self.owns_link(&link) {
                    out.push(format!("link {link} on bridge {m}"));
                }
            }
        }
        let netns_dir = self.dir.path().join("netns");
        for (pid, cmd) in processes_with(&netns_dir.display().to_string()) {
            out.push(format!("process {pid}: {cmd}"));
        }
        out.extend(self.allocated_addresses());
        out
    }

    /// Addresses the network driver still holds for amphorae and VIPs on the tenant network
    /// (the member servers' reservations left out).
    pub fn allocated_addresses(&self) -> Vec<String> {
        self.octavia(&["network", "show", &self.network])
            .lines()
            .filter(|l| l.starts_with("{\"id\""))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|port| port["kind"]["type"] != "reserved")
            .map(|port| {
                format!(
                    "address {} ({})",
                    port["ip_address"].as_str().unwrap_or("?"),
                    port["kind"]["type"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(p) = &self.control {
                eprintln!("----- control plane log -----\n{}", p.log());
            }
            let amps = self.dir.path().join("netns/amphorae");
            for entry in std::fs::read_dir(&amps).into_iter().flatten().flatten() {
                for f in ["agent.log", "haproxy.log"] {
                    if let Ok(t) = std::fs::read_to_string(entry.path().join(f)) {
                        eprintln!("----- {} {f} -----\n{t}", entry.path().display());
                    }
                }
            }
        }
        self.kill_control_plane();
        self.members.clear();
        self.cleanup_host();
    }
}

/// What a lab's configuration is made of, to write it again with other ports.
struct LabSettings {
    tag: String,
    n: u8,
    dir: PathBuf,
    database: String,
    health_extra: String,
    /// TOML lines of the `[certificates]` section after `ca_dir`.
    certificates_extra: String,
    extra_config: String,
}

impl LabSettings {
    /// The configuration file's text with the API on `api_port` and the heartbeat receiver
    /// on `hb_port`.
    fn text(&self, api_port: u16, hb_port: u16) -> String {
        let LabSettings {
            tag,
            n,
            dir,
            database,
            health_extra,
            certificates_extra,
            extra_config,
        } = self;
        let d = dir.display();
        let mgmt_host = format!("10.215.{n}.1");
        format!(
            r#"[api_settings]
bind_host = "127.0.0.1"
bind_port = {api_port}

[database]
connection = "{database}"

[controller_worker]
compute_driver = "netns"
network_driver = "netns"
amphora_driver = "agent"
amp_boot_timeout = "30s"

[task_flow]
poll_interval = "200ms"
jobboard_expiration_time = "5s"

[health_manager]
bind_ip = "{mgmt_host}"
bind_port = {hb_port}
heartbeat_key = "{HEARTBEAT_KEY}"
{health_extra}

[haproxy_amphora]
agent_connect_timeout = "30s"
rest_request_read_timeout = "20s"

[certificates]
ca_dir = "{d}/certs"
{certificates_extra}

[netns]
state_dir = "{d}/netns"
image_dir = "{d}/images"
netns_prefix = "xa{tag}-"
management_bridge = "xm{tag}"
management_cidr = "10.215.{n}.0/24"
management_host_address = "{mgmt_host}"
hosts = ["host-a", "host-b", "host-c"]

{extra_config}
"#
        )
    }
}

/// Traffic from the host to the VIP: GET requests, each on a new connection.
pub struct Traffic {
    pub client: reqwest::Client,
    pub url: String,
}

/// What a run of requests saw.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: usize,
    pub failed: usize,
    pub by_body: BTreeMap<String, usize>,
    pub errors: Vec<String>,
}

impl Traffic {
    pub fn new(vip: &str, port: u16, path: &str) -> Traffic {
        Traffic {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
            url: format!("http://{vip}:{port}{path}"),
        }
    }

    /// One request: Ok((status, body)) or the error text.
    pub async fn one(&self) -> Result<(u16, String), String> {
        match self.client.get(&self.url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.map_err(|e| e.to_string())?;
                Ok((status, body.trim().to_string()))
            }
            Err(e) => Err(format!("{e:?}")),
        }
    }

    /// `n` requests one after another.
    pub async fn run(&self, n: usize) -> Tally {
        let mut t = Tally::default();
        for _ in 0..n {
            match self.one().await {
                Ok((200, body)) => {
                    t.ok += 1;
                    *t.by_body.entry(body).or_default() += 1;
                }
                Ok((status, body)) => {
                    t.failed += 1;
                    t.errors.push(format!("{status}: {body}"));
                }
                Err(e) => {
                    t.failed += 1;
                    t.errors.push(e);
                }
            }
        }
        t
    }
}
