//! HAProxy per load balancer: configuration files, validation, and the master-worker process
//! (start, seamless reload through SIGUSR2, stop, re-adoption after an agent restart, restart
//! after a crash).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use rustix::process::{kill_process, Pid, Signal};
use tokio::process::Command;
use tokio::sync::Mutex;

use crate::error::{AgentError, Result};
use crate::{config_check, fsutil};

/// How long `start` waits for the master to write its pid file.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `stop` waits for the master to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a reload or start waits for the new worker to answer on the stats socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a lifecycle request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new master process was started.
    Started,
    /// The master was already running; nothing changed.
    AlreadyRunning,
    /// The running master was told to reload (SIGUSR2).
    Reloaded,
    /// The master was stopped.
    Stopped,
    /// Nothing was running.
    NotRunning,
}

/// A lifecycle action of `PUT /1.0/loadbalancer/{id}/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start HAProxy (no-op when it runs).
    Start,
    /// Stop HAProxy.
    Stop,
    /// Validate and reload HAProxy seamlessly (start it when it does not run).
    Reload,
}

impl Action {
    /// Parses an action name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "start" => Some(Self::Start),
            "stop" => Some(Self::Stop),
            "reload" => Some(Self::Reload),
            _ => None,
        }
    }
}

/// Manages every load balancer's HAProxy under `base_path`.
#[derive(Debug)]
pub struct HaproxyManager {
    cmd: PathBuf,
    base_path: PathBuf,
    /// Serialises lifecycle changes (uploads, start/stop/reload, delete, supervision).
    lock: Mutex<()>,
    version: tokio::sync::OnceCell<String>,
    /// The MD5 of the configuration `haproxy -c` last accepted for each load balancer at
    /// upload: the start or reload right after an upload runs the file just checked, and
    /// checking it again would cost another HAProxy start-up (~90 ms) on every create and
    /// change. Forgotten when the load balancer's certificates change (the check reads
    /// them too); a file changed behind the agent's back has another MD5 and is checked.
    validated: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// Marker file: present while an operator wants this load balancer's HAProxy stopped.
const STOPPED_MARKER: &str = "stopped";

impl HaproxyManager {
    /// A manager for `haproxy_cmd`, keeping state under `base_path`.
    pub fn new(haproxy_cmd: PathBuf, base_path: PathBuf) -> Self {
        Self {
            cmd: haproxy_cmd,
            base_path,
            lock: Mutex::new(()),
            version: tokio::sync::OnceCell::new(),
            validated: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn validated(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.validated.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget that `lb_id`'s configuration was checked (its certificates changed).
    pub fn forget_validation(&self, lb_id: &str) {
        self.validated().remove(lb_id);
    }

    /// `haproxy -c` on the installed configuration of `lb_id`, unless it is byte for byte
    /// the one checked at its upload.
    async fn validate_installed(&self, lb_id: &str) -> Result<()> {
        let path = self.config_path(lb_id);
        let md5 = std::fs::read(&path).ok().map(|text| md5_hex(&text));
        if md5.is_some() && self.validated().get(lb_id) == md5.as_ref() {
            return Ok(());
        }
        self.validate(&path).await?;
        if let Some(md5) = md5 {
            self.validated().insert(lb_id.to_string(), md5);
        }
        Ok(())
    }

    /// Directory of one load balancer.
    pub fn lb_dir(&self, lb_id: &str) -> PathBuf {
        self.base_path.join(lb_id)
    }

    /// Its configuration file.
    pub fn config_path(&self, lb_id: &str) -> PathBuf {
        self.lb_dir(lb_id).join("haproxy.cfg")
    }

    /// Its master's pid file.
    pub fn pid_path(&self, lb_id: &str) -> PathBuf {
        self.lb_dir(lb_id).join(format!("{lb_id}.pid"))
    }

    /// Its stats socket (rendered by the controller as `stats socket <base_path>/<lb_id>.sock`).
    pub fn stats_socket(&self, lb_id: &str) -> PathBuf {
        self.base_path.join(format!("{lb_id}.sock"))
    }

    fn log_path(&self, lb_id: &str) -> PathBuf {
        self.lb_dir(lb_id).join("haproxy.log")
    }

    /// The installed HAProxy's version (`2.6.12-1+deb12u4`), cached after the first success.
    pub async fn version(&self) -> Option<String> {
        self.version
            .get_or_try_init(|| async {
                let out = Command::new(&self.cmd)
                    .arg("-v")
                    .output()
                    .await
                    .map_err(|_| ())?;
                let text = String::from_utf8_lossy(&out.stdout);
                let first = text.lines().next().ok_or(())?;
                let version = first
                    .strip_prefix("HAProxy version ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .ok_or(())?;
                Ok::<String, ()>(version.to_owned())
            })
            .await
            .ok()
            .cloned()
    }

    /// Load balancers that have a configuration, sorted.
    pub fn load_balancers(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.base_path) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| crate::is_safe_id(name))
            .filter(|name| self.config_path(name).is_file())
            .collect();
        ids.sort();
        ids
    }

    /// Whether the load balancer has a configuration.
    pub fn exists(&self, lb_id: &str) -> bool {
        self.config_path(lb_id).is_file()
    }

    /// The running master's pid, if any.
    pub fn master_pid(&self, lb_id: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.pid_path(lb_id)).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        is_our_haproxy(pid, &self.config_path(lb_id)).then_some(pid)
    }

    /// Whether the load balancer's HAProxy runs.
    pub fn is_running(&self, lb_id: &str) -> bool {
        self.master_pid(lb_id).is_some()
    }

    /// Checks a configuration file with `haproxy -c`; the error carries HAProxy's output.
    pub async fn validate(&self, path: &Path) -> Result<()> {
        config_check::check(&self.cmd, &["-c"], path)
            .await?
            .map_err(AgentError::InvalidHaproxyConfig)
    }

    /// Stores a new configuration after `haproxy -c` accepts it and returns its MD5 (hex).
    /// A refused configuration is kept as `haproxy.cfg.new-failed`; the current one is untouched.
    pub async fn upload_config(&self, lb_id: &str, text: &[u8]) -> Result<String> {
        let _guard = self.lock.lock().await;
        let dir = self.lb_dir(lb_id);
        fsutil::create_dir(&dir, 0o755)?;
        let staged = dir.join("haproxy.cfg.new");
        fsutil::write_file(&staged, text, 0o644)?;
        if let Err(error) = self.validate(&staged).await {
            let failed = dir.join("haproxy.cfg.new-failed");
            std::fs::rename(&staged, &failed)
                .map_err(|e| AgentError::io("keep refused haproxy config", &failed, e))?;
            // A directory created only for a refused config must not make the LB "exist".
            tracing::warn!(lb_id, %error, "haproxy config refused");
            return Err(error);
        }
        let target = self.config_path(lb_id);
        std::fs::rename(&staged, &target)
            .map_err(|e| AgentError::io("install haproxy config", &target, e))?;
        tracing::info!(lb_id, "haproxy config installed");
        let md5 = md5_hex(text);
        self.validated().insert(lb_id.to_string(), md5.clone());
        Ok(md5)
    }

    /// The current configuration and its MD5.
    pub fn read_config(&self, lb_id: &str) -> Result<(Vec<u8>, String)> {
        let path = self.config_path(lb_id);
        let text = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                lb_not_found(lb_id)
            } else {
                AgentError::io("read haproxy config", &path, e)
            }
        })?;
        let md5 = md5_hex(&text);
        Ok((text, md5))
    }

    /// Runs a lifecycle action.
    pub async fn act(&self, lb_id: &str, action: Action) -> Result<Outcome> {
        let _guard = self.lock.lock().await;
        if !self.exists(lb_id) {
            return Err(lb_not_found(lb_id));
        }
        match action {
            Action::Start => {
                let _ = std::fs::remove_file(self.lb_dir(lb_id).join(STOPPED_MARKER));
                if self.is_running(lb_id) {
                    return Ok(Outcome::AlreadyRunning);
                }
                self.validate_installed(lb_id).await?;
                self.spawn_master(lb_id).await
            }
            Action::Reload => {
                self.validate_installed(lb_id).await?;
                let _ = std::fs::remove_file(self.lb_dir(lb_id).join(STOPPED_MARKER));
                match self.master_pid(lb_id) {
                    Some(pid) => {
                        let old_worker = self.worker_pid(lb_id).await;
                        self.save_server_state(lb_id).await;
                        signal(pid, Signal::USR2)?;
                        tracing::info!(lb_id, pid, "haproxy reload signalled");
                        // Answer only once the new worker serves: the caller marks the
                        // change applied when we return, and a reload HAProxy could not do
                        // (it keeps the old worker) must not look like a success.
                        let worker = self.wait_worker(lb_id, pid, old_worker, "reload").await?;
                        tracing::info!(lb_id, pid, worker, "haproxy reloaded");
                        Ok(Outcome::Reloaded)
                    }
                    None => self.spawn_master(lb_id).await,
                }
            }
            Action::Stop => {
                fsutil::write_file(&self.lb_dir(lb_id).join(STOPPED_MARKER), b"", 0o644)?;
                self.stop_master(lb_id).await
            }
        }
    }

    /// Stops HAProxy and removes every file of the load balancer (config, pid, socket).
    pub async fn delete(&self, lb_id: &str) -> Result<()> {
        let _guard = self.lock.lock().await;
        let dir = self.lb_dir(lb_id);
        if !dir.is_dir() {
            return Err(lb_not_found(lb_id));
        }
        self.stop_master(lb_id).await?;
        std::fs::remove_dir_all(&dir)
            .map_err(|e| AgentError::io("remove lb directory", &dir, e))?;
        let _ = std::fs::remove_file(self.stats_socket(lb_id));
        tracing::info!(lb_id, "load balancer removed");
        Ok(())
    }

    /// Brings every configured load balancer to its wanted state: a running master is adopted
    /// (never started twice), a dead one is started again unless it was stopped on purpose.
    /// Called at agent start and periodically by the supervisor.
    pub async fn supervise(&self) {
        for lb_id in self.load_balancers() {
            let _guard = self.lock.lock().await;
            if !self.exists(&lb_id) || self.lb_dir(&lb_id).join(STOPPED_MARKER).exists() {
                continue;
            }
            if self.is_running(&lb_id) {
                continue;
            }
            tracing::warn!(lb_id = %lb_id, "haproxy not running, starting it");
            if let Err(error) = self.spawn_master(&lb_id).await {
                tracing::error!(lb_id = %lb_id, %error, "haproxy restart failed");
            }
        }
    }

    async fn spawn_master(&self, lb_id: &str) -> Result<Outcome> {
        let pid_path = self.pid_path(lb_id);
        let _ = std::fs::remove_file(&pid_path);
        let log_path = self.log_path(lb_id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| AgentError::io("open haproxy log", &log_path, e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| AgentError::io("open haproxy log", &log_path, e))?;
        let config = self.config_path(lb_id);
        // -W: master-worker; -db: the master stays in the foreground as our child even when the
        // configuration says `daemon`; its own process group keeps it alive across agent restarts.
        let mut child = Command::new(&self.cmd)
            .arg("-W")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .arg("-p")
            .arg(&pid_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| AgentError::Command {
                command: format!("{} -W", self.cmd.display()),
                details: e.to_string(),
            })?;
        let child_pid = child.id();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(pid) = self.master_pid(lb_id) {
                let lb = lb_id.to_owned();
                // Supervise: reap the master when it exits and say so.
                tokio::spawn(async move {
                    match child.wait().await {
                        Ok(status) => {
                            tracing::info!(lb_id = %lb, pid, %status, "haproxy master exited")
                        }
                        Err(error) => {
                            tracing::warn!(lb_id = %lb, %error, "waiting for haproxy failed")
                        }
                    }
                });
                let worker = self.wait_worker(lb_id, pid, None, "start").await?;
                tracing::info!(lb_id, pid, worker, "haproxy started");
                return Ok(Outcome::Started);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(AgentError::Command {
                    command: format!("{} -W -f {}", self.cmd.display(), config.display()),
                    details: format!("exited with {status}: {}", tail(&log_path)),
                });
            }
            if Instant::now() > deadline {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(AgentError::Command {
                    command: format!("{} -W -f {}", self.cmd.display(), config.display()),
                    details: format!(
                        "no pid file after {START_TIMEOUT:?} (child pid {child_pid:?}): {}",
                        tail(&log_path)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Where the running worker's server states are saved before a reload; the rendered
    /// configuration names it (`server-state-file`) and its backends load it
    /// (`load-server-state-from-file global`).
    pub fn server_state_path(&self, lb_id: &str) -> PathBuf {
        self.lb_dir(lb_id).join("servers-state")
    }

    /// Save `show servers state` of the running worker, so the new worker starts with each
    /// member's health and administrative state instead of assuming every member up (which
    /// would send traffic to members known to be down until their checks fail again). A
    /// failure is logged, not fatal: the reload goes on, as it would without the file.
    async fn save_server_state(&self, lb_id: &str) {
        let path = self.server_state_path(lb_id);
        let saved = match crate::stats::show(&self.stats_socket(lb_id), "show servers state").await
        {
            Ok(state) if state.starts_with('1') => {
                fsutil::write_file(&path, state.as_bytes(), 0o600).map(|()| state.lines().count())
            }
            Ok(other) => {
                let first = other.lines().next().unwrap_or("").to_string();
                tracing::warn!(lb_id, answer = %first, "unexpected answer to show servers state");
                return;
            }
            Err(e) => Err(e),
        };
        match saved {
            Ok(lines) => tracing::debug!(lb_id, lines, "saved server state before reload"),
            Err(e) => tracing::warn!(lb_id, error = %e, "server state not saved before reload"),
        }
    }

    /// The pid of the worker answering on the load balancer's stats socket (`show info`).
    async fn worker_pid(&self, lb_id: &str) -> Option<u32> {
        let info = crate::stats::show(&self.stats_socket(lb_id), "show info")
            .await
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|p| p.trim().parse().ok())
    }

    /// Waits until a worker other than `old` answers on the stats socket (its listeners are
    /// bound by then: the master binds them before it forks the worker). Errs when the master
    /// (`master`, which keeps its pid across the re-exec of a reload) dies or nothing new
    /// answers within [`READY_TIMEOUT`].
    async fn wait_worker(
        &self,
        lb_id: &str,
        master: i32,
        old: Option<u32>,
        what: &str,
    ) -> Result<u32> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.worker_pid(lb_id).await {
                Some(pid) if Some(pid) != old => return Ok(pid),
                _ => {}
            }
            let failure = if !alive(master) {
                Some("the haproxy master exited".to_string())
            } else if Instant::now() > deadline {
                Some(match old {
                    Some(old) => format!(
                        "worker {old} still serves {READY_TIMEOUT:?} after the signal \
                         (the new configuration did not start)"
                    ),
                    None => format!("no worker answered within {READY_TIMEOUT:?}"),
                })
            } else {
                None
            };
            if let Some(why) = failure {
                return Err(AgentError::Command {
                    command: format!("haproxy {what} of {lb_id}"),
                    details: format!("{why}: {}", tail(&self.log_path(lb_id))),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop_master(&self, lb_id: &str) -> Result<Outcome> {
        let Some(pid) = self.master_pid(lb_id) else {
            return Ok(Outcome::NotRunning);
        };
        let config = self.config_path(lb_id);
        signal(pid, Signal::TERM)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while is_our_haproxy(pid, &config) {
            if Instant::now() > deadline {
                tracing::warn!(lb_id, pid, "haproxy ignored SIGTERM, killing it");
                let _ = signal(pid, Signal::KILL);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(self.pid_path(lb_id));
        let _ = std::fs::remove_file(self.stats_socket(lb_id));
        tracing::info!(lb_id, pid, "haproxy stopped");
        Ok(Outcome::Stopped)
    }

    /// Listener ids and types served by one load balancer's configuration (frontend names,
    /// except internal Prometheus ones).
    pub fn listeners(&self, lb_id: &str) -> Vec<(String, &'static str)> {
        std::fs::read_to_string(self.config_path(lb_id))
            .map(|text| frontends(&text))
            .unwrap_or_default()
    }

    /// The processes of every running HAProxy: each master and its children (the worker, and
    /// old workers still finishing their connections after a reload).
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for lb_id in self.load_balancers() {
            if let Some(master) = self.master_pid(&lb_id) {
                pids.push(master);
                pids.extend(children(master));
            }
        }
        pids
    }

    /// All load balancers whose HAProxy runs.
    pub fn running(&self) -> BTreeSet<String> {
        self.load_balancers()
            .into_iter()
            .filter(|lb| self.is_running(lb))
            .collect()
    }
}

/// The frontends of a configuration with their listener type (`mode` may come from the
/// preceding `defaults` section).
pub fn frontends(config: &str) -> Vec<(String, &'static str)> {
    struct Frontend {
        name: String,
        http: bool,
        tls: bool,
    }
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut default_http = false;
    let mut in_defaults = false;
    let mut current: Option<Frontend> = None;
    let flush = |current: &mut Option<Frontend>, out: &mut Vec<(String, &'static str)>| {
        if let Some(f) = current.take() {
            if !f.name.contains("prometheus") {
                let kind = match (f.http, f.tls) {
                    (true, true) => "TERMINATED_HTTPS",
                    (true, false) => "HTTP",
                    _ => "TCP",
                };
                out.push((f.name, kind));
            }
        }
    };
    for line in config.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        match first {
            "frontend" | "listen" | "backend" | "global" | "defaults" | "peers" | "resolvers"
            | "userlist" | "program" | "cache" | "ring" | "mailers" | "http-errors" => {
                flush(&mut current, &mut out);
                in_defaults = first == "defaults";
                if first == "frontend" {
                    if let Some(name) = words.next() {
                        current = Some(Frontend {
                            name: name.to_owned(),
                            http: default_http,
                            tls: false,
                        });
                    }
                }
            }
            "mode" => {
                let http = words.next() == Some("http");
                if in_defaults {
                    default_http = http;
                } else if let Some(f) = current.as_mut() {
                    f.http = http;
                }
            }
            "bind" => {
                if let Some(f) = current.as_mut() {
                    if words.any(|w| w == "ssl") {
                        f.tls = true;
                    }
                }
            }
            _ => {}
        }
    }
    flush(&mut current, &mut out);
    out
}

fn lb_not_found(lb_id: &str) -> AgentError {
    AgentError::not_found(
        "Loadbalancer Not Found",
        format!("No loadbalancer with UUID: {lb_id}"),
    )
}

/// Hex MD5 of `data` (the ETag and `md5sum` of Octavia's agent).
pub fn md5_hex(data: &[u8]) -> String {
    let digest = Md5::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn signal(pid: i32, sig: Signal) -> Result<()> {
    let target = Pid::from_raw(pid).ok_or_else(|| AgentError::Command {
        command: "kill".into(),
        details: format!("invalid pid {pid}"),
    })?;
    kill_process(target, sig).map_err(|e| AgentError::Command {
        command: format!("kill -{sig:?} {pid}"),
        details: e.to_string(),
    })
}

/// Whether `pid` is a live (not zombie) process started with `config` among its arguments
/// (HAProxy's or keepalived's configuration file); guards against pid reuse.
pub(crate) fn is_our_haproxy(pid: i32, config: &Path) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z") | Some("X") | None) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let wanted = config.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == wanted)
}

/// The child processes of `pid`: `/proc/<pid>/task/*/children`, or where the kernel has no
/// such file, every process whose parent it is.
fn children(pid: i32) -> Vec<i32> {
    let parse = |text: &str| -> Vec<i32> {
        text.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let mut found = None;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                found.get_or_insert_with(Vec::new).extend(parse(&text));
            }
        }
    }
    if let Some(children) = found {
        return children;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&candidate| {
            std::fs::read_to_string(format!("/proc/{candidate}/stat"))
                .ok()
                .and_then(|stat| parent_pid(&stat))
                == Some(pid)
        })
        .collect()
}

/// The parent pid in a `/proc/<pid>/stat` line (field 4, the second after the command name).
fn parent_pid(stat: &str) -> Option<i32> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether `pid` runs (exists and is not a zombie).
pub(crate) fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The state follows the parenthesised command name, which may contain spaces.
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|s| s != "Z" && s != "X")
        })
        .unwrap_or(false)
}

/// The last ten lines of a log file.
pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontends_and_types() {
        let cfg = "global\n  daemon\nfrontend l1\n  mode http\n  bind 1.2.3.4:80\n\
                   frontend l2\n  bind :443 ssl crt-list /x.pem\n  mode http\n\
                   frontend l3\n  mode tcp\nfrontend prometheus-exporter-internal-endpoint\n  mode http\n\
                   backend p:l1\n  mode http\n\
                   defaults\n  mode http\nfrontend l4\n  bind :80\n";
        assert_eq!(
            frontends(cfg),
            vec![
                ("l1".to_owned(), "HTTP"),
                ("l2".to_owned(), "TERMINATED_HTTPS"),
                ("l3".to_owned(), "TCP"),
                ("l4".to_owned(), "HTTP")
            ]
        );
    }

    #[test]
    fn parent_pid_follows_the_command_name() {
        assert_eq!(parent_pid("42 (hap) x) S 7 42 42 0"), Some(7));
        assert_eq!(parent_pid("42 (haproxy)"), None);
    }

    #[test]
    fn children_of_this_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let me = i32::try_from(std::process::id()).expect("pid");
        let found = children(me);
        let _ = child.kill();
        let _ = child.wait();
        let pid = i32::try_from(child.id()).expect("pid");
        assert!(found.contains(&pid), "{pid} not in {found:?}");
    }

    #[test]
    fn actions_are_case_insensitive() {
        assert_eq!(Action::parse("ReLoAd"), Some(Action::Reload));
        assert_eq!(Action::parse("STOP"), Some(Action::Stop));
        assert_eq!(Action::parse("restart"), None);
    }

    #[test]
    fn md5_matches_known_value() {
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }
}
