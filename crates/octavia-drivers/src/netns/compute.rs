//! `NetnsCompute`: an amphora is a network namespace with a veth on the management bridge and
//! its agent started inside with `ip netns exec`; state is one JSON record per amphora.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use octavia_model::AmphoraId;
use serde::{Deserialize, Serialize};

use super::sys::{self, Ipv4Cidr};
use crate::certs::{CertificateAuthority, Secret};
use crate::compute::{AntiAffinity, BuildRequest, ComputeDriver, ComputeInstance, ComputeStatus};
use crate::error::{DriverError, FaultOwner, Result};

const OWNER: FaultOwner = FaultOwner::Compute;
const RECORD_FILE: &str = "instance.json";
const PID_FILE: &str = "agent.pid";
/// The state lock file in the state directory (not a compute id, so never listed).
const LOCK_FILE: &str = ".lock";
const AGENT_CONF: &str = "amphora-agent.conf";
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// Where an amphora's directory holds its installed agent binary.
const AGENT_BIN: &str = "bin/amphora-agent";

/// Where each amphora sees its own directory: its agent runs in a private mount namespace
/// (`ip netns exec` gives it one) with `<state_dir>/<compute_id>` bind-mounted here, so every
/// amphora has the same file layout as an Octavia amphora VM (`base_path`, certificates,
/// HAProxy sockets) and two amphorae of one load balancer never share a file. The
/// controller renders HAProxy paths under this directory (`RenderSettings::base_path`).
pub const AMPHORA_ROOT: &str = "/var/lib/octavia";

/// The management network: a host bridge holding the controller's address, and the CIDR
/// `lb_network_ip`s are allocated from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementNetwork {
    /// Bridge name (at most 15 characters), e.g. `octmgmt0`.
    pub bridge: String,
    /// The CIDR of the management network, e.g. `172.31.0.0/24`.
    pub cidr: Ipv4Cidr,
    /// The host's address on the bridge (inside `cidr`): agents send heartbeats here and the
    /// controller reaches them from here.
    pub host_address: Ipv4Addr,
}

/// What goes into each amphora's `amphora-agent.conf` besides its identity and paths.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Health managers the agent sends heartbeats to (`ip:port`).
    pub controller_ip_port_list: Vec<String>,
    /// Seconds between heartbeats.
    pub heartbeat_interval: Duration,
    /// The heartbeat HMAC key.
    pub heartbeat_key: Secret,
    /// The HAProxy binary inside the amphora.
    pub haproxy_cmd: PathBuf,
    /// Port of the agent's HTTPS server.
    pub bind_port: u16,
}

/// The agent binary an image resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The image id recorded on the amphora.
    pub image_id: String,
    /// The executable started as `<agent> --config <file>`.
    pub agent_path: PathBuf,
}

/// Turns a build request's `image_id`/`image_tag` into an agent binary (the image registry).
pub trait ImageResolver: Send + Sync {
    /// The image to boot: `image_id` if given, else the newest image carrying `image_tag`.
    fn resolve(&self, image_id: Option<&str>, image_tag: Option<&str>) -> Result<ResolvedImage>;

    /// The id of the image a build naming only `image_tag` would boot now. Unlike
    /// [`ImageResolver::resolve`] it need not check the image's files (a build does that
    /// when it boots one): it answers the rotation's and the spare pool's "is this
    /// amphora on the current image?", which a spare build's take asks on the hot path.
    fn current(&self, image_tag: &str) -> Result<String> {
        Ok(self.resolve(None, Some(image_tag))?.image_id)
    }
}

/// No image registry: a request whose `image_id` is the absolute path of an executable file
/// boots that file (the path is the image id); every other request boots the default.
#[derive(Debug, Clone)]
pub struct FixedImage(pub ResolvedImage);

impl ImageResolver for FixedImage {
    fn resolve(&self, image_id: Option<&str>, _image_tag: Option<&str>) -> Result<ResolvedImage> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(id) = image_id {
            let path = Path::new(id);
            let executable = path.is_absolute()
                && std::fs::metadata(path)
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false);
            if executable {
                return Ok(ResolvedImage {
                    image_id: id.to_string(),
                    agent_path: path.to_path_buf(),
                });
            }
        }
        Ok(self.0.clone())
    }
}

/// Settings of [`NetnsCompute`].
#[derive(Clone)]
pub struct NetnsComputeSettings {
    /// Directory of per-amphora directories (`<state_dir>/<compute_id>/`).
    pub state_dir: PathBuf,
    /// Prefix of namespace names (`amp-`); the compute id is `<prefix><first 10 hex of id>`.
    pub netns_prefix: String,
    /// The management network.
    pub management: ManagementNetwork,
    /// Hypervisor host names amphorae are placed on (least-loaded first).
    pub hosts: Vec<String>,
    /// The availability zone of each host that has one (host name → zone). A build that
    /// names a zone goes to a host of that zone; a build that names none goes to any host.
    pub host_zones: BTreeMap<String, String>,
    /// Agent configuration shared by all amphorae.
    pub agent: AgentSettings,
    /// Resolves images to agent binaries.
    pub images: Arc<dyn ImageResolver>,
}

impl std::fmt::Debug for NetnsComputeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetnsComputeSettings")
            .field("state_dir", &self.state_dir)
            .field("netns_prefix", &self.netns_prefix)
            .field("management", &self.management)
            .field("hosts", &self.hosts)
            .field("host_zones", &self.host_zones)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// What the driver records about one amphora (`<state_dir>/<compute_id>/instance.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub compute_id: String,
    pub amphora_id: String,
    pub host: String,
    pub lb_network_ip: String,
    /// Host end of the management veth.
    pub mgmt_veth: String,
    pub image_id: String,
    pub agent_path: PathBuf,
    /// The zone of the host it runs on.
    pub availability_zone: Option<String>,
    /// Pid of the agent (`ip netns exec` execs it, so this is the agent itself).
    pub agent_pid: Option<u32>,
}

/// One hypervisor host as [`NetnsCompute::hosts`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    pub name: String,
    /// Its availability zone, if it has one.
    pub zone: Option<String>,
    /// Marked failed by [`NetnsCompute::fail_host`]: nothing is placed on it.
    pub failed: bool,
    /// Instances recorded on it.
    pub instances: usize,
}

/// Directory under `state_dir` whose files name the failed hosts (not a compute id, so
/// instance listings skip it).
const FAILED_HOSTS_DIR: &str = "failed-hosts";

/// What [`NetnsCompute::reconcile`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Recorded amphorae whose namespace exists (taken over as they are).
    pub adopted: Vec<ComputeInstance>,
    /// Namespaces with our prefix and no record (leaked by a crash before the record was
    /// written, or not ours); `delete` removes them.
    pub orphan_namespaces: Vec<String>,
    /// Records whose namespace is gone; `delete` clears them.
    pub stale_records: Vec<String>,
}

/// The `netns` compute driver.
#[derive(Clone)]
pub struct NetnsCompute {
    inner: Arc<Inner>,
}

struct Inner {
    settings: NetnsComputeSettings,
    ca: Arc<CertificateAuthority>,
    /// Held around every change of the records (placement, management addresses, agent
    /// pids): shared with every process that uses this state directory.
    lock: sys::StateLock,
}

impl std::fmt::Debug for NetnsCompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetnsCompute")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

fn invalid(context: &str, message: impl Into<String>) -> DriverError {
    DriverError::permanent(OWNER, context, message)
}

impl NetnsCompute {
    /// A driver; checks the settings and creates the state directory (no host changes yet).
    pub fn new(settings: NetnsComputeSettings, ca: Arc<CertificateAuthority>) -> Result<Self> {
        const CTX: &str = "configure netns compute";
        let m = &settings.management;
        if !sys::valid_name(&m.bridge) || m.bridge.len() > 15 {
            return Err(invalid(CTX, format!("bad bridge name {:?}", m.bridge)));
        }
        if !m.cidr.is_host(m.host_address) {
            return Err(invalid(
                CTX,
                format!(
                    "host address {} is not a host of {}",
                    m.host_address, m.cidr
                ),
            ));
        }
        if !sys::valid_name(&settings.netns_prefix) {
            return Err(invalid(
                CTX,
                format!("bad namespace prefix {:?}", settings.netns_prefix),
            ));
        }
        if settings.hosts.is_empty() || settings.hosts.iter().any(|h| h.trim().is_empty()) {
            return Err(invalid(CTX, "hosts must be a non-empty list of names"));
        }
        for (host, zone) in &settings.host_zones {
            if !settings.hosts.contains(host) {
                return Err(invalid(
                    CTX,
                    format!("host_zones names {host:?}, which is not one of the hosts"),
                ));
            }
            if zone.trim().is_empty() {
                return Err(invalid(CTX, format!("host {host:?} has an empty zone")));
            }
        }
        std::fs::create_dir_all(&settings.state_dir)
            .map_err(|e| sys::io_error(OWNER, CTX, &settings.state_dir, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                lock: sys::StateLock::new(settings.state_dir.join(LOCK_FILE)),
                settings,
                ca,
            }),
        })
    }

    /// The compute id (namespace name) of an amphora.
    pub fn compute_id_of(&self, amphora_id: AmphoraId) -> String {
        format!(
            "{}{}",
            self.inner.settings.netns_prefix,
            &amphora_id.uuid().simple().to_string()[..10]
        )
    }

    /// Create the management bridge with the host address (idempotent).
    pub fn ensure_management_network(&self) -> Result<()> {
        self.inner.ensure_management()
    }

    /// Delete the management bridge; refused while amphorae are recorded.
    pub fn delete_management_network(&self) -> Result<()> {
        let _guard = self.inner.guard()?;
        let left = self.inner.records()?.len();
        if left > 0 {
            return Err(invalid(
                "delete management network",
                format!("{left} amphorae still exist"),
            ));
        }
        sys::delete_link(OWNER, &self.inner.settings.management.bridge)
    }

    /// The record of one amphora, if any.
    pub fn record(&self, compute_id: &str) -> Result<Option<InstanceRecord>> {
        self.inner.read_record(compute_id)
    }

    /// The operator guide's "shut the management port": take the host end of the amphora's
    /// management veth down. The controller can no longer reach its agent and its heartbeats
    /// stop, so the health manager fails it over (the amphora keeps serving meanwhile).
    pub fn isolate(&self, compute_id: &str) -> Result<String> {
        self.inner.check_id(compute_id)?;
        let record = self
            .inner
            .read_record(compute_id)?
            .ok_or_else(|| invalid("isolate amphora", format!("{compute_id} has no record")))?;
        sys::ip(
            OWNER,
            "isolate amphora",
            &["link", "set", "dev", &record.mgmt_veth, "down"],
        )?;
        tracing::warn!(compute_id, mgmt_veth = %record.mgmt_veth, "amphora isolated: management port down");
        Ok(record.mgmt_veth)
    }

    /// Every configured host with its zone, state and number of instances.
    pub fn hosts(&self) -> Result<Vec<HostState>> {
        let records = self.inner.records()?;
        let failed = self.inner.failed_hosts();
        Ok(self
            .inner
            .settings
            .hosts
            .iter()
            .map(|h| HostState {
                name: h.clone(),
                zone: self.inner.settings.host_zones.get(h).cloned(),
                failed: failed.contains(h),
                instances: records.iter().filter(|r| r.host == *h).count(),
            })
            .collect())
    }

    /// Lose a host, as a hypervisor that loses power: it is marked failed (nothing is placed
    /// on it until [`NetnsCompute::recover_host`]), and every amphora on it dies at once —
    /// all its processes killed, its namespace and interfaces gone — leaving its record, so
    /// the health manager sees silence and fails it over, and the failover deletes what is
    /// left. Returns the compute ids it took down.
    pub fn fail_host(&self, host: &str) -> Result<Vec<String>> {
        let inner = &self.inner;
        inner.check_host(host)?;
        let _guard = inner.guard()?;
        let dir = inner.settings.state_dir.join(FAILED_HOSTS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| sys::io_error(OWNER, "fail host", &dir, e))?;
        let marker = dir.join(host);
        std::fs::write(&marker, b"failed\n")
            .map_err(|e| sys::io_error(OWNER, "fail host", &marker, e))?;
        let mut down = Vec::new();
        for r in inner.records()?.into_iter().filter(|r| r.host == host) {
            if let Err(error) = inner.power_off(&r.compute_id, Some(&r)) {
                tracing::warn!(compute_id = %r.compute_id, %error, "an amphora of the failed host did not go down whole");
            }
            down.push(r.compute_id);
        }
        tracing::warn!(
            host,
            amphorae = down.len(),
            "host failed: its amphorae are down"
        );
        Ok(down)
    }

    /// Put a failed host back into service: new amphorae may be placed on it again.
    pub fn recover_host(&self, host: &str) -> Result<()> {
        let inner = &self.inner;
        inner.check_host(host)?;
        let marker = inner.settings.state_dir.join(FAILED_HOSTS_DIR).join(host);
        match std::fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(sys::io_error(OWNER, "recover host", &marker, e)),
        }
        tracing::info!(host, "host back in service");
        Ok(())
    }

    /// The per-amphora directory (boot bundle, pid file, agent log).
    pub fn instance_dir(&self, compute_id: &str) -> PathBuf {
        self.inner.dir(compute_id)
    }

    /// Take over what a previous controller left: ensures the management bridge and reports
    /// recorded amphorae (adopted), namespaces without records and records without namespaces.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let inner = self.inner.clone();
        blocking(move || inner.reconcile()).await
    }

    /// Start the agent again in an existing amphora whose agent died; `Ok(false)` if it runs.
    pub async fn restart_agent(&self, compute_id: &str) -> Result<bool> {
        let inner = self.inner.clone();
        let id = compute_id.to_string();
        blocking(move || inner.restart_agent(&id)).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        DriverError::permanent(FaultOwner::Ours, "run netns driver task", e.to_string())
    })?
}

impl Inner {
    fn guard(&self) -> Result<sys::StateGuard<'_>> {
        self.lock.lock(OWNER)
    }

    fn dir(&self, compute_id: &str) -> PathBuf {
        self.settings.state_dir.join(compute_id)
    }

    fn check_host(&self, host: &str) -> Result<()> {
        if self.settings.hosts.iter().any(|h| h == host) {
            Ok(())
        } else {
            Err(invalid(
                "look up host",
                format!(
                    "{host:?} is not one of the hosts ({})",
                    self.settings.hosts.join(", ")
                ),
            ))
        }
    }

    /// Hosts marked failed.
    fn failed_hosts(&self) -> BTreeSet<String> {
        let dir = self.settings.state_dir.join(FAILED_HOSTS_DIR);
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    fn check_id(&self, compute_id: &str) -> Result<()> {
        if sys::valid_name(compute_id) && compute_id.starts_with(&self.settings.netns_prefix) {
            Ok(())
        } else {
            Err(invalid(
                "look up instance",
                format!("{compute_id:?} is not a compute id of this driver"),
            ))
        }
    }

    fn read_record(&self, compute_id: &str) -> Result<Option<InstanceRecord>> {
        self.check_id(compute_id)?;
        let path = self.dir(compute_id).join(RECORD_FILE);
        if !path.exists() {
            return Ok(None);
        }
        sys::load_json::<Option<InstanceRecord>>(OWNER, &path)
    }

    fn records(&self) -> Result<Vec<InstanceRecord>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.settings.state_dir)
            .map_err(|e| sys::io_error(OWNER, "list instances", &self.settings.state_dir, e))?;
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if self.check_id(&name).is_err() {
                continue;
            }
            match self.read_record(&name) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(compute_id = %name, error = %e, "unreadable instance record")
                }
            }
        }
        out.sort_by(|a, b| a.compute_id.cmp(&b.compute_id));
        Ok(out)
    }

    fn ensure_management(&self) -> Result<()> {
        let m = &self.settings.management;
        sys::ensure_bridge(OWNER, &m.bridge, Some(&m.cidr.with_host(m.host_address)))
    }

    fn agent_running(&self, record: &InstanceRecord) -> bool {
        self.live_agent(record).is_some()
    }

    /// The pid of the amphora's live agent: the recorded one, else the one in its pid file
    /// (written as soon as the agent is spawned, so an agent whose controller process died
    /// before recording its pid — a kill -9 mid-build — is found and never started twice).
    /// Only a live process inside the amphora's namespace counts (pids are reused).
    fn live_agent(&self, record: &InstanceRecord) -> Option<u32> {
        let in_namespace = sys::netns_pids(&record.compute_id);
        let live = |pid: &u32| sys::pid_alive(*pid) && in_namespace.contains(pid);
        record.agent_pid.filter(live).or_else(|| {
            std::fs::read_to_string(self.dir(&record.compute_id).join(PID_FILE))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .filter(live)
        })
    }

    /// Record `pid` as the agent of an amphora found running (see [`Self::live_agent`]).
    fn adopt_agent(&self, record: &mut InstanceRecord, pid: u32) -> Result<()> {
        if record.agent_pid != Some(pid) {
            record.agent_pid = Some(pid);
            sys::save_json(
                OWNER,
                &self.dir(&record.compute_id).join(RECORD_FILE),
                record,
            )?;
            tracing::info!(compute_id = %record.compute_id, pid, "adopted a running amphora agent");
        }
        Ok(())
    }

    fn to_instance(&self, record: &InstanceRecord) -> ComputeInstance {
        let status = if sys::netns_exists(&record.compute_id) && self.agent_running(record) {
            ComputeStatus::Active
        } else {
            ComputeStatus::Error
        };
        ComputeInstance {
            compute_id: record.compute_id.clone(),
            status,
            lb_network_ip: Some(record.lb_network_ip.clone()),
            host: Some(record.host.clone()),
            image_id: Some(record.image_id.clone()),
            availability_zone: record.availability_zone.clone(),
        }
    }

    fn build(&self, request: &BuildRequest) -> Result<String> {
        let bridge = &self.settings.management.bridge;
        if let Some(net) = request.management_network.as_ref().filter(|n| *n != bridge) {
            return Err(invalid(
                "build instance",
                format!(
                    "management network {net} is not available: this compute driver plugs \
                     amphorae into its one management network, bridge {bridge}"
                ),
            ));
        }
        let image = self
            .settings
            .images
            .resolve(request.image_id.as_deref(), request.image_tag.as_deref())?;
        let compute_id = format!(
            "{}{}",
            self.settings.netns_prefix,
            &request.amphora_id.uuid().simple().to_string()[..10]
        );
        let _guard = self.guard()?;
        let existing = self.read_record(&compute_id)?;
        if let Some(r) = &existing {
            if r.amphora_id != request.amphora_id.to_string() {
                return Err(invalid(
                    "build instance",
                    format!(
                        "{compute_id} already belongs to amphora {} (short id collision)",
                        r.amphora_id
                    ),
                ));
            }
        }
        let mut record = match existing {
            Some(r) => r,
            None => {
                let others = self.records()?;
                let failed = self.failed_hosts();
                let up: Vec<String> = self
                    .settings
                    .hosts
                    .iter()
                    .filter(|h| !failed.contains(*h))
                    .cloned()
                    .collect();
                let host = place(
                    &up,
                    &self.settings.host_zones,
                    &others,
                    &request.anti_affinity_peers,
                    request.anti_affinity,
                    request.availability_zone.as_deref(),
                )
                .map_err(|e| match failed.is_empty() {
                    true => e,
                    false => invalid(
                        "place instance",
                        format!(
                            "{e}; hosts marked failed: {}",
                            failed.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ),
                })?;
                let availability_zone = self.settings.host_zones.get(&host).cloned();
                let lb_network_ip = self.free_mgmt_address(&others)?;
                InstanceRecord {
                    compute_id: compute_id.clone(),
                    amphora_id: request.amphora_id.to_string(),
                    host,
                    lb_network_ip: lb_network_ip.to_string(),
                    mgmt_veth: format!(
                        "om{}",
                        &request.amphora_id.uuid().simple().to_string()[..12]
                    ),
                    image_id: image.image_id.clone(),
                    agent_path: image.agent_path.clone(),
                    availability_zone,
                    agent_pid: None,
                }
            }
        };
        let dir = self.dir(&compute_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| sys::io_error(OWNER, "build instance", &dir, e))?;
        // The record goes to disk before anything is created, so delete and reconcile find
        // whatever a crash in the middle leaves.
        sys::save_json(OWNER, &dir.join(RECORD_FILE), &record)?;

        self.ensure_management()?;
        sys::ensure_netns(OWNER, &compute_id)?;
        let m = &self.settings.management;
        sys::ensure_veth(
            OWNER,
            &record.mgmt_veth,
            &compute_id,
            "eth0",
            None,
            &m.bridge,
        )?;
        let ip: Ipv4Addr = record.lb_network_ip.parse().map_err(|_| {
            invalid(
                "build instance",
                format!("bad recorded address {}", record.lb_network_ip),
            )
        })?;
        sys::ip(
            OWNER,
            "address management interface",
            &[
                "-n",
                &compute_id,
                "addr",
                "replace",
                &m.cidr.with_host(ip),
                "dev",
                "eth0",
            ],
        )?;

        if let Some(pid) = self.live_agent(&record) {
            self.adopt_agent(&mut record, pid)?;
            tracing::info!(compute_id = %compute_id, "amphora already built");
            return Ok(compute_id);
        }
        self.write_boot_files(request, &dir)?;
        let pid = self.spawn_agent(&record, &dir)?;
        self.wait_in_namespace(&record.compute_id, pid, &dir)?;
        record.agent_pid = Some(pid);
        sys::save_json(OWNER, &dir.join(RECORD_FILE), &record)?;
        tracing::info!(
            compute_id = %compute_id,
            amphora_id = %request.amphora_id,
            host = %record.host,
            lb_network_ip = %record.lb_network_ip,
            pid,
            "built amphora"
        );
        Ok(compute_id)
    }

    /// Wait until the freshly spawned agent has entered its namespace (`ip netns exec`
    /// joins it after the fork), so the instance reads ACTIVE from the start; errs when it
    /// died first.
    fn wait_in_namespace(&self, compute_id: &str, pid: u32, dir: &Path) -> Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if sys::netns_pids(compute_id).contains(&pid) {
                return Ok(());
            }
            if !sys::pid_alive(pid) || std::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(DriverError::retryable(
                    OWNER,
                    "start amphora agent",
                    format!(
                        "agent {pid} did not start in {compute_id}: {}",
                        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn free_mgmt_address(&self, records: &[InstanceRecord]) -> Result<Ipv4Addr> {
        let m = &self.settings.management;
        let used: BTreeSet<Ipv4Addr> = records
            .iter()
            .filter_map(|r| r.lb_network_ip.parse().ok())
            .chain([m.host_address])
            .collect();
        m.cidr.hosts().find(|a| !used.contains(a)).ok_or_else(|| {
            invalid(
                "allocate management address",
                format!("management network {} is full", m.cidr),
            )
        })
    }

    fn agent_config(&self, amphora_id: AmphoraId, heartbeat_key: Option<&Secret>) -> String {
        let dir = Path::new(AMPHORA_ROOT);
        let a = &self.settings.agent;
        let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        let p = |p: &Path| q(&p.to_string_lossy());
        let controllers: Vec<String> = a.controller_ip_port_list.iter().map(|c| q(c)).collect();
        format!(
            "# Written by the netns compute driver.\n\
             [amphora_agent]\n\
             agent_server_cert = {}\n\
             agent_server_ca = {}\n\
             amphora_id = {}\n\n\
             [haproxy_amphora]\n\
             base_path = {}\n\
             base_cert_dir = {}\n\
             bind_host = \"::\"\n\
             bind_port = {}\n\
             haproxy_cmd = {}\n\n\
             [health_manager]\n\
             controller_ip_port_list = [{}]\n\
             heartbeat_interval = {}\n\
             heartbeat_key = {}\n",
            p(&dir.join("server.pem")),
            p(&dir.join("client_ca.pem")),
            q(&amphora_id.to_string()),
            p(dir),
            p(&dir.join("certs")),
            a.bind_port,
            p(&a.haproxy_cmd),
            controllers.join(", "),
            agent_interval(a.heartbeat_interval),
            q(heartbeat_key.unwrap_or(&a.heartbeat_key).expose()),
        )
    }

    fn write_boot_files(&self, request: &BuildRequest, dir: &Path) -> Result<()> {
        let config = self.agent_config(request.amphora_id, request.heartbeat_key.as_ref());
        let bundle = self.ca.boot_bundle(&request.server_certificate, &config);
        for file in bundle.files() {
            let path = dir.join(file.name);
            let _ = std::fs::remove_file(&path);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(file.mode)
                .open(&path)
                .map_err(|e| sys::io_error(OWNER, "write boot file", &path, e))?;
            f.write_all(file.contents.as_bytes())
                .map_err(|e| sys::io_error(OWNER, "write boot file", &path, e))?;
        }
        for sub in ["certs", "bin"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|e| sys::io_error(OWNER, "write boot file", &path, e))?;
        }
        Ok(())
    }

    /// Install the image's agent binary into the amphora's directory (a hard link when the
    /// image is on the same file system, else a copy), like an image written to a disk.
    fn install_agent(&self, record: &InstanceRecord, dir: &Path) -> Result<()> {
        const CTX: &str = "install amphora image";
        let target = dir.join(AGENT_BIN);
        if target.is_file() {
            return Ok(());
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| sys::io_error(OWNER, CTX, parent, e))?;
        }
        let partial = dir.join("bin/.amphora-agent.partial");
        let _ = std::fs::remove_file(&partial);
        if std::fs::hard_link(&record.agent_path, &partial).is_err() {
            std::fs::copy(&record.agent_path, &partial)
                .map_err(|e| sys::io_error(OWNER, CTX, &record.agent_path, e))?;
        }
        std::fs::rename(&partial, &target).map_err(|e| sys::io_error(OWNER, CTX, &target, e))
    }

    fn spawn_agent(&self, record: &InstanceRecord, dir: &Path) -> Result<u32> {
        const CTX: &str = "start amphora agent";
        self.install_agent(record, dir)?;
        std::fs::create_dir_all(AMPHORA_ROOT)
            .map_err(|e| sys::io_error(OWNER, CTX, Path::new(AMPHORA_ROOT), e))?;
        let root = Path::new(AMPHORA_ROOT);
        let log_path = dir.join("agent.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| sys::io_error(OWNER, CTX, &log_path, e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| sys::io_error(OWNER, CTX, &log_path, e))?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &record.compute_id])
            // `ip netns exec` runs the command in a new mount namespace whose mounts do not
            // propagate back to the host: bind the amphora's directory over AMPHORA_ROOT
            // there, then become the agent (same pid).
            .args([
                "sh",
                "-c",
                "mount --bind \"$0\" \"$1\" && shift && exec \"$@\"",
            ])
            .arg(dir)
            .arg(root)
            .arg(root.join(AGENT_BIN))
            .arg("--config")
            .arg(root.join(AGENT_CONF))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                DriverError::retryable(OWNER, CTX, format!("cannot run `ip netns exec`: {e}"))
            })?;
        let pid = child.id();
        // Reap the child when it exits so it never lingers as a zombie in this process.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        let pid_path = dir.join(PID_FILE);
        std::fs::write(&pid_path, format!("{pid}\n"))
            .map_err(|e| sys::io_error(OWNER, CTX, &pid_path, e))?;
        Ok(pid)
    }

    fn instance(&self, compute_id: &str) -> Result<ComputeInstance> {
        match self.read_record(compute_id)? {
            Some(r) => Ok(self.to_instance(&r)),
            None => Ok(ComputeInstance {
                compute_id: compute_id.to_string(),
                // A namespace of ours without a record is a leak: report it as broken.
                status: if sys::netns_exists(compute_id) {
                    ComputeStatus::Error
                } else {
                    ComputeStatus::Deleted
                },
                lb_network_ip: None,
                host: None,
                image_id: None,
                availability_zone: None,
            }),
        }
    }

    /// The instance stops as a machine losing power: every process in its namespace killed,
    /// its management link and namespace gone. Its record and directory stay.
    fn power_off(&self, compute_id: &str, record: Option<&InstanceRecord>) -> Result<()> {
        // The agent runs inside the namespace, so this includes it; a recorded pid outside
        // the namespace is not trusted (pids are reused).
        let pids = sys::netns_pids(compute_id);
        if !sys::kill_all(&pids, KILL_TIMEOUT) {
            return Err(DriverError::retryable(
                OWNER,
                "power off instance",
                format!("processes of {compute_id} did not exit"),
            ));
        }
        if let Some(r) = record {
            sys::delete_link(OWNER, &r.mgmt_veth)?;
        }
        sys::delete_netns(OWNER, compute_id)
    }

    fn delete(&self, compute_id: &str) -> Result<()> {
        self.check_id(compute_id)?;
        let _guard = self.guard()?;
        let record = self.read_record(compute_id).unwrap_or(None);
        self.power_off(compute_id, record.as_ref())?;
        let dir = self.dir(compute_id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| sys::io_error(OWNER, "delete instance", &dir, e))?;
        }
        tracing::info!(compute_id = %compute_id, "deleted amphora");
        Ok(())
    }

    fn reconcile(&self) -> Result<ReconcileReport> {
        let _guard = self.guard()?;
        self.ensure_management()?;
        let records = self.records()?;
        let namespaces = sys::netns_with_prefix(&self.settings.netns_prefix);
        let recorded: BTreeSet<&str> = records.iter().map(|r| r.compute_id.as_str()).collect();
        let mut report = ReconcileReport::default();
        for r in &records {
            if namespaces.contains(&r.compute_id) {
                report.adopted.push(self.to_instance(r));
            } else {
                report.stale_records.push(r.compute_id.clone());
            }
        }
        report.orphan_namespaces = namespaces
            .into_iter()
            .filter(|n| !recorded.contains(n.as_str()))
            .collect();
        tracing::info!(
            adopted = report.adopted.len(),
            orphans = report.orphan_namespaces.len(),
            stale = report.stale_records.len(),
            "reconciled netns amphorae"
        );
        Ok(report)
    }

    fn restart_agent(&self, compute_id: &str) -> Result<bool> {
        let _guard = self.guard()?;
        let mut record = self
            .read_record(compute_id)?
            .ok_or_else(|| invalid("restart agent", format!("{compute_id} has no record")))?;
        if !sys::netns_exists(compute_id) {
            return Err(invalid(
                "restart agent",
                format!("namespace {compute_id} is gone"),
            ));
        }
        if let Some(pid) = self.live_agent(&record) {
            self.adopt_agent(&mut record, pid)?;
            return Ok(false);
        }
        let dir = self.dir(compute_id);
        let pid = self.spawn_agent(&record, &dir)?;
        // As after a build: the instance reads ACTIVE once this returns.
        self.wait_in_namespace(compute_id, pid, &dir)?;
        record.agent_pid = Some(pid);
        sys::save_json(OWNER, &dir.join(RECORD_FILE), &record)?;
        tracing::info!(compute_id = %compute_id, pid, "restarted amphora agent");
        Ok(true)
    }
}

/// `heartbeat_interval` as the agent configuration writes it: whole seconds as an integer
/// (what Octavia's amphorae read), anything finer as a duration string ("500ms").
fn agent_interval(d: Duration) -> String {
    let ms = d.as_millis().max(100);
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("\"{ms}ms\"")
    }
}

/// The host for a new instance: among the hosts of `zone` (every host when `None`; hosts
/// without an entry in `zones` belong to no named zone), the least-loaded one (first in list
/// order on ties) that runs none of `peers`; with [`AntiAffinity::Soft`], the least-loaded
/// one of the zone when every host runs a peer. No host in `zone` at all, or (hard) none
/// left after anti-affinity: an error naming the zone and the hosts the peers occupy
/// (permanent: trying again places nothing).
fn place(
    hosts: &[String],
    zones: &BTreeMap<String, String>,
    records: &[InstanceRecord],
    peers: &[String],
    policy: AntiAffinity,
    zone: Option<&str>,
) -> Result<String> {
    let in_zone: Vec<&String> = hosts
        .iter()
        .filter(|h| zone.is_none_or(|z| zones.get(*h).map(String::as_str) == Some(z)))
        .collect();
    if let (Some(zone), true) = (zone, in_zone.is_empty()) {
        return Err(invalid(
            "place instance",
            format!("no host in availability zone {zone}"),
        ));
    }
    let mut load: BTreeMap<&str, usize> = hosts.iter().map(|h| (h.as_str(), 0)).collect();
    let mut excluded = BTreeSet::new();
    for r in records {
        if let Some(n) = load.get_mut(r.host.as_str()) {
            *n += 1;
        }
        if peers.contains(&r.compute_id) {
            excluded.insert(r.host.as_str());
        }
    }
    let least = |candidates: Vec<&String>| {
        candidates
            .into_iter()
            .min_by_key(|h| load.get(h.as_str()).copied().unwrap_or(0))
            .cloned()
    };
    let free: Vec<&String> = in_zone
        .iter()
        .copied()
        .filter(|h| !excluded.contains(h.as_str()))
        .collect();
    if let Some(host) = least(free) {
        return Ok(host);
    }
    if policy == AntiAffinity::Soft {
        if let Some(host) = least(in_zone) {
            return Ok(host);
        }
    }
    let scope = zone.map_or(String::new(), |z| format!(" in availability zone {z}"));
    let taken: Vec<&str> = excluded.into_iter().collect();
    Err(invalid(
        "place instance",
        format!(
            "no host left{scope} for hard anti-affinity: the load balancer's other \
             amphorae run on {}, and there is no other host{scope} (add a host, or set \
             [nova] anti_affinity_policy = \"soft-anti-affinity\")",
            taken.join(", ")
        ),
    ))
}

#[async_trait]
impl ComputeDriver for NetnsCompute {
    async fn agent_config(
        &self,
        compute_id: &str,
        amphora_id: AmphoraId,
        heartbeat_key: Option<&Secret>,
    ) -> Result<Option<String>> {
        self.inner.check_id(compute_id)?;
        Ok(Some(self.inner.agent_config(amphora_id, heartbeat_key)))
    }

    async fn build(&self, request: &BuildRequest) -> Result<String> {
        let inner = self.inner.clone();
        let request = request.clone();
        blocking(move || inner.build(&request)).await
    }

    async fn instance(&self, compute_id: &str) -> Result<ComputeInstance> {
        let inner = self.inner.clone();
        let id = compute_id.to_string();
        blocking(move || inner.instance(&id)).await
    }

    async fn delete(&self, compute_id: &str) -> Result<()> {
        let inner = self.inner.clone();
        let id = compute_id.to_string();
        blocking(move || inner.delete(&id)).await
    }

    async fn current_image(&self, image_tag: &str) -> Result<String> {
        let inner = self.inner.clone();
        let tag = image_tag.to_string();
        blocking(move || inner.settings.images.current(&tag)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, host: &str) -> InstanceRecord {
        InstanceRecord {
            compute_id: id.into(),
            amphora_id: id.into(),
            host: host.into(),
            lb_network_ip: "10.0.0.2".into(),
            mgmt_veth: "x".into(),
            image_id: "i".into(),
            agent_path: "/bin/true".into(),
            availability_zone: None,
            agent_pid: None,
        }
    }

    #[test]
    fn fixed_image_boots_an_explicit_executable_path_or_the_default() {
        let default = ResolvedImage {
            image_id: "default".into(),
            agent_path: "/nonexistent/agent".into(),
        };
        let images = FixedImage(default.clone());
        assert_eq!(images.resolve(None, Some("tag")).unwrap(), default);
        assert_eq!(
            images.resolve(Some("some-image-id"), None).unwrap(),
            default
        );
        assert_eq!(
            images
                .resolve(Some("/etc/hostname-not-exec"), None)
                .unwrap(),
            default
        );
        let sh = images.resolve(Some("/bin/sh"), None).unwrap();
        assert_eq!(sh.agent_path, PathBuf::from("/bin/sh"));
        assert_eq!(sh.image_id, "/bin/sh");
    }

    #[test]
    fn placement_is_least_loaded_and_honours_anti_affinity() {
        use AntiAffinity::{Hard, Soft};
        let hosts = vec!["h1".to_string(), "h2".to_string(), "h3".to_string()];
        let none = BTreeMap::new();
        assert_eq!(place(&hosts, &none, &[], &[], Hard, None).unwrap(), "h1");
        let records = vec![rec("a", "h1"), rec("b", "h1"), rec("c", "h2")];
        assert_eq!(
            place(&hosts, &none, &records, &[], Hard, None).unwrap(),
            "h3"
        );
        let records = vec![rec("a", "h1"), rec("c", "h2"), rec("d", "h3")];
        assert_eq!(
            place(&hosts, &none, &records, &[], Hard, None).unwrap(),
            "h1"
        );
        assert_eq!(
            place(&hosts, &none, &records, &["a".into()], Hard, None).unwrap(),
            "h2"
        );
        let peers = ["a".into(), "c".into(), "d".into()];
        let err = place(&hosts, &none, &records, &peers, Hard, None).unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("h1, h2, h3"), "{err}");
        assert!(err.to_string().contains("soft-anti-affinity"), "{err}");
        // Soft: a peer-free host while there is one, else the least loaded.
        let soft = |peers: &[String]| place(&hosts, &none, &records, peers, Soft, None).unwrap();
        assert_eq!(soft(&["a".into()]), "h2");
        assert_eq!(soft(&peers), "h1");
    }

    #[test]
    fn placement_keeps_to_the_requested_zone() {
        use AntiAffinity::Hard;
        let hosts: Vec<String> = ["h1", "h2", "h3", "h4"].map(String::from).to_vec();
        let zones: BTreeMap<String, String> = [("h2", "az1"), ("h3", "az1"), ("h4", "az2")]
            .map(|(h, z)| (h.to_string(), z.to_string()))
            .into_iter()
            .collect();
        // No zone asked: any host, zoned or not (h1 has no zone and is first).
        assert_eq!(place(&hosts, &zones, &[], &[], Hard, None).unwrap(), "h1");
        let busy_h1 = vec![rec("a", "h1")];
        assert_eq!(
            place(&hosts, &zones, &busy_h1, &[], Hard, None).unwrap(),
            "h2"
        );
        // A zone: only its hosts, least loaded first, even when others are idler.
        let records = vec![rec("a", "h2"), rec("b", "h2"), rec("c", "h3")];
        assert_eq!(
            place(&hosts, &zones, &records, &[], Hard, Some("az1")).unwrap(),
            "h3"
        );
        assert_eq!(
            place(&hosts, &zones, &records, &[], Hard, Some("az2")).unwrap(),
            "h4"
        );
        // Anti-affinity inside the zone: the peer's host is out.
        assert_eq!(
            place(&hosts, &zones, &records, &["c".into()], Hard, Some("az1")).unwrap(),
            "h2"
        );
        let on_h4 = vec![rec("d", "h4")];
        let err = place(&hosts, &zones, &on_h4, &["d".into()], Hard, Some("az2")).unwrap_err();
        assert!(
            err.to_string()
                .contains("no host left in availability zone az2"),
            "{err}"
        );
        // A zone no host is in: the error names it; nothing falls back to other hosts.
        let err = place(&hosts, &zones, &[], &[], Hard, Some("az9")).unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.to_string().contains("no host in availability zone az9"),
            "{err}"
        );
    }
}
