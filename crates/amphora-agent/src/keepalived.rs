//! keepalived (VRRP) of an ACTIVE_STANDBY amphora: the uploaded configuration, validated with
//! `keepalived -t`; the check scripts it tracks; and the daemon (start, reload by SIGHUP, stop,
//! re-adoption after an agent restart, restart after a crash while it is wanted).
//!
//! Files under `<base_path>/vrrp/` (reference §4): `octavia-keepalived.conf`, `.pid` (the
//! parent), `-vrrp.pid` (the VRRP child), `.log` (keepalived's console output),
//! `check_script.sh` (what the rendered configuration tracks: runs every script of
//! `check_scripts/`) and `check_scripts/haproxy_check_script.sh` (fails unless every
//! load balancer's HAProxy that is not stopped on purpose runs).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use amphora_proto::agent::{KEEPALIVED_CONFIG_FILE, VRRP_CHECK_SCRIPT_FILE, VRRP_DIR};
use rustix::process::Signal;
use tokio::process::Command;
use tokio::sync::Mutex;

use crate::error::{AgentError, Result};
use crate::haproxy::{alive, is_our_haproxy as runs_with, md5_hex, signal, tail, Action};
use crate::{config_check, fsutil};

/// How long a start waits for keepalived to write its pid file.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for keepalived to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Marker file: present while keepalived is wanted running (after start or reload, until stop).
const WANTED_MARKER: &str = "started";
/// The check scripts' directory in `vrrp/`.
const CHECK_SCRIPTS_DIR: &str = "check_scripts";
/// The HAProxy check in [`CHECK_SCRIPTS_DIR`].
const HAPROXY_CHECK_SCRIPT: &str = "haproxy_check_script.sh";

/// What a lifecycle request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// keepalived was started.
    Started,
    /// The running keepalived was told to reload its configuration (SIGHUP).
    Reloaded,
    /// keepalived was stopped.
    Stopped,
    /// Nothing was running.
    NotRunning,
}

/// Manages the amphora's one keepalived under `<base_path>/vrrp`.
#[derive(Debug)]
pub struct KeepalivedManager {
    cmd: PathBuf,
    base_path: PathBuf,
    /// Serialises uploads, lifecycle changes and supervision.
    lock: Mutex<()>,
    version: tokio::sync::OnceCell<String>,
    /// The newest [`KeepalivedManager::vip_held`] answer of [`KeepalivedManager::watch_vip`]
    /// (0 unknown, 1 no, 2 yes), for heartbeats, which must never wait for `ip`.
    held: std::sync::atomic::AtomicU8,
}

/// How often [`KeepalivedManager::watch_vip`] looks whether this amphora holds the VIP.
pub const VIP_WATCH_INTERVAL: Duration = Duration::from_millis(250);

impl KeepalivedManager {
    /// A manager for `keepalived_cmd`, keeping its files under `<base_path>/vrrp`.
    pub fn new(keepalived_cmd: PathBuf, base_path: PathBuf) -> Self {
        Self {
            cmd: keepalived_cmd,
            base_path,
            lock: Mutex::new(()),
            version: tokio::sync::OnceCell::new(),
            held: std::sync::atomic::AtomicU8::new(0),
        }
    }

    /// `<base_path>/vrrp`.
    pub fn dir(&self) -> PathBuf {
        self.base_path.join(VRRP_DIR)
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir().join(KEEPALIVED_CONFIG_FILE)
    }

    /// The parent process's pid file.
    pub fn pid_path(&self) -> PathBuf {
        self.dir().join("octavia-keepalived.pid")
    }

    fn vrrp_pid_path(&self) -> PathBuf {
        self.dir().join("octavia-keepalived-vrrp.pid")
    }

    /// keepalived's console output.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("octavia-keepalived.log")
    }

    /// The check script the rendered configuration tracks.
    pub fn check_script_path(&self) -> PathBuf {
        self.dir().join(VRRP_CHECK_SCRIPT_FILE)
    }

    fn check_scripts_dir(&self) -> PathBuf {
        self.dir().join(CHECK_SCRIPTS_DIR)
    }

    /// The installed keepalived's version (`2.2.7`), cached after the first success.
    pub async fn version(&self) -> Option<String> {
        self.version
            .get_or_try_init(|| async {
                let out = Command::new(&self.cmd)
                    .arg("--version")
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .map_err(|_| ())?;
                // keepalived prints "Keepalived v2.2.7 (01/16,2022)" on stderr.
                let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stdout));
                parse_version(&text).ok_or(())
            })
            .await
            .ok()
            .cloned()
    }

    /// Whether a configuration was uploaded.
    pub fn configured(&self) -> bool {
        self.config_path().is_file()
    }

    /// The running keepalived's (parent) pid, if any.
    pub fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.pid_path()).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        runs_with(pid, &self.config_path()).then_some(pid)
    }

    /// Whether keepalived runs.
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Whether keepalived is configured but does not run: the heartbeat is not sent then
    /// (reference §5.1), so the controller fails the amphora over instead of trusting a pair
    /// that cannot take the VIP.
    pub fn is_dead(&self) -> bool {
        self.configured() && !self.is_running()
    }

    /// The VIPs of the configuration (`virtual_ipaddress` and `virtual_ipaddress_excluded`).
    pub fn vips(&self) -> Vec<IpAddr> {
        std::fs::read_to_string(self.config_path())
            .map(|text| virtual_addresses(&text))
            .unwrap_or_default()
    }

    /// The last answer of [`KeepalivedManager::watch_vip`], at once. Heartbeats use this: a
    /// query spawns `ip`, which waits for the kernel's network lock, and that lock can be
    /// held for seconds while namespaces are torn down next door (a lost host).
    pub fn last_vip_held(&self) -> Option<bool> {
        match self.held.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        }
    }

    /// Keeps [`KeepalivedManager::last_vip_held`] current, every [`VIP_WATCH_INTERVAL`].
    pub async fn watch_vip(&self) {
        loop {
            let v = if self.configured() {
                match self.vip_held().await {
                    Some(false) => 1,
                    Some(true) => 2,
                    None => 0,
                }
            } else {
                0
            };
            self.held.store(v, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(VIP_WATCH_INTERVAL).await;
        }
    }

    /// Whether every VIP of the configuration is on an interface of this amphora: `None`
    /// without a keepalived configuration, or when the interfaces cannot be read. Reported in
    /// `/details` and in every heartbeat, so the controller's MASTER is the amphora that
    /// holds the VIP now, also after keepalived moved it.
    pub async fn vip_held(&self) -> Option<bool> {
        let vips = self.vips();
        if vips.is_empty() {
            return None;
        }
        for vip in vips {
            match crate::netif::interface_of(vip).await {
                Ok(Some(_)) => {}
                Ok(None) => return Some(false),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the interfaces for vip_held");
                    return None;
                }
            }
        }
        Some(true)
    }

    /// Checks a configuration with `keepalived -t`; the error carries keepalived's output.
    /// keepalived checks against the amphora's namespace: the interface must exist and the
    /// tracked check script must be installed.
    pub async fn validate(&self, path: &Path) -> Result<()> {
        config_check::check(&self.cmd, &["-t", "-l"], path)
            .await?
            .map_err(AgentError::InvalidKeepalivedConfig)
    }

    /// Installs the check scripts, then stores the configuration if `keepalived -t` accepts it,
    /// and returns its MD5 (hex). A refused configuration is kept as
    /// `octavia-keepalived.conf.new-failed`; the current one is untouched.
    pub async fn upload_config(&self, text: &[u8]) -> Result<String> {
        let _guard = self.lock.lock().await;
        let dir = self.dir();
        fsutil::create_dir(&dir, 0o755)?;
        fsutil::create_dir(&self.check_scripts_dir(), 0o755)?;
        fsutil::write_file(
            &self.check_script_path(),
            check_script(&self.check_scripts_dir()).as_bytes(),
            0o755,
        )?;
        fsutil::write_file(
            &self.check_scripts_dir().join(HAPROXY_CHECK_SCRIPT),
            haproxy_check_script(&self.base_path).as_bytes(),
            0o755,
        )?;
        let staged = dir.join(format!("{KEEPALIVED_CONFIG_FILE}.new"));
        fsutil::write_file(&staged, text, 0o644)?;
        if let Err(error) = self.validate(&staged).await {
            let failed = dir.join(format!("{KEEPALIVED_CONFIG_FILE}.new-failed"));
            std::fs::rename(&staged, &failed)
                .map_err(|e| AgentError::io("keep refused keepalived config", &failed, e))?;
            tracing::warn!(%error, "keepalived config refused");
            return Err(error);
        }
        let target = self.config_path();
        std::fs::rename(&staged, &target)
            .map_err(|e| AgentError::io("install keepalived config", &target, e))?;
        tracing::info!("keepalived config installed");
        Ok(md5_hex(text))
    }

    /// Runs a lifecycle action: start (a reload when keepalived runs, as Octavia), reload
    /// (a start when it does not run), stop.
    pub async fn act(&self, action: Action) -> Result<Outcome> {
        let _guard = self.lock.lock().await;
        if !self.configured() {
            return Err(AgentError::not_found(
                "Keepalived Not Configured",
                "no keepalived configuration was uploaded (PUT /1.0/vrrp/upload first)",
            ));
        }
        match action {
            Action::Start | Action::Reload => {
                self.validate(&self.config_path()).await?;
                fsutil::write_file(&self.dir().join(WANTED_MARKER), b"", 0o644)?;
                match self.pid() {
                    Some(pid) => {
                        signal(pid, Signal::HUP)?;
                        tracing::info!(pid, "keepalived reload signalled");
                        Ok(Outcome::Reloaded)
                    }
                    None => self.spawn().await,
                }
            }
            Action::Stop => {
                let _ = std::fs::remove_file(self.dir().join(WANTED_MARKER));
                self.stop().await
            }
        }
    }

    /// Starts keepalived again when it is wanted and does not run (it is adopted from its pid
    /// file when it does). Called at agent start and periodically by the supervisor.
    pub async fn supervise(&self) {
        let _guard = self.lock.lock().await;
        if !self.configured() || !self.dir().join(WANTED_MARKER).exists() || self.is_running() {
            return;
        }
        tracing::warn!("keepalived not running, starting it");
        if let Err(error) = self.spawn().await {
            tracing::error!(%error, "keepalived restart failed");
        }
    }

    async fn spawn(&self) -> Result<Outcome> {
        let pid_path = self.pid_path();
        let _ = std::fs::remove_file(&pid_path);
        let _ = std::fs::remove_file(self.vrrp_pid_path());
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| AgentError::io("open keepalived log", &log_path, e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| AgentError::io("open keepalived log", &log_path, e))?;
        let config = self.config_path();
        let command = format!("{} -f {}", self.cmd.display(), config.display());
        // -n: the parent stays in the foreground as our child; its own process group keeps it
        // alive across agent restarts (it is re-adopted from its pid file). -P: VRRP only (no
        // LVS checker). -l -G: log to the console, which goes to the log file, not to syslog.
        // The pid files live in vrrp/ so amphorae sharing a host's /run never collide.
        let mut child = Command::new(&self.cmd)
            .arg("-n")
            .arg("-P")
            .arg("-l")
            .arg("-D")
            .arg("-G")
            .arg("-f")
            .arg(&config)
            .arg("-p")
            .arg(&pid_path)
            .arg("-r")
            .arg(self.vrrp_pid_path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| AgentError::Command {
                command: command.clone(),
                details: e.to_string(),
            })?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(pid) = self.pid() {
                tokio::spawn(async move {
                    match child.wait().await {
                        Ok(status) => tracing::info!(pid, %status, "keepalived exited"),
                        Err(error) => tracing::warn!(%error, "waiting for keepalived failed"),
                    }
                });
                tracing::info!(pid, "keepalived started");
                return Ok(Outcome::Started);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(AgentError::Command {
                    command,
                    details: format!("exited with {status}: {}", tail(&log_path)),
                });
            }
            if Instant::now() > deadline {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(AgentError::Command {
                    command,
                    details: format!("no pid file after {START_TIMEOUT:?}: {}", tail(&log_path)),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&self) -> Result<Outcome> {
        let Some(pid) = self.pid() else {
            return Ok(Outcome::NotRunning);
        };
        signal(pid, Signal::TERM)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while alive(pid) {
            if Instant::now() > deadline {
                tracing::warn!(pid, "keepalived ignored SIGTERM, killing its process group");
                let _ = rustix::process::Pid::from_raw(pid)
                    .map(|p| rustix::process::kill_process_group(p, Signal::KILL));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(self.pid_path());
        let _ = std::fs::remove_file(self.vrrp_pid_path());
        tracing::info!(pid, "keepalived stopped");
        Ok(Outcome::Stopped)
    }
}

/// The version in keepalived's banner (`Keepalived v2.2.7 (01/16,2022)` → `2.2.7`).
fn parse_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Keepalived v"))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// The addresses of the `virtual_ipaddress` and `virtual_ipaddress_excluded` blocks of a
/// keepalived configuration (the first word of each line, without a `/prefix`).
pub fn virtual_addresses(config: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in config.lines() {
        let line = line.split(['#', '!']).next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if inside {
            if first == "}" {
                inside = false;
            } else if let Ok(addr) = first.split('/').next().unwrap_or(first).parse() {
                out.push(addr);
            }
        } else if matches!(first, "virtual_ipaddress" | "virtual_ipaddress_excluded")
            && words.next() == Some("{")
        {
            inside = true;
        }
    }
    out
}

/// A shell word that stays one word whatever the path holds.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// `check_script.sh`: runs every script of `dir` and fails when one of them fails (Octavia's
/// runner sums their exit codes, which can wrap to 0 past 255).
pub fn check_script(dir: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # keepalived's vrrp_script: fails when one of the checks of {dir} fails.\n\
         status=0\n\
         for check in {dir}/*; do\n\
         \x20   [ -f \"$check\" ] || continue\n\
         \x20   sh \"$check\" || status=1\n\
         done\n\
         exit $status\n",
        dir = quote(dir)
    )
}

/// `haproxy_check_script.sh`: fails unless every load balancer under `base_path` that is not
/// stopped on purpose has a live HAProxy master running its configuration, with its stats
/// socket in place; fails when there is no such load balancer (an amphora that serves nothing
/// must not hold the VIP, as Octavia's `exit 1`).
pub fn haproxy_check_script(base_path: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # Fails unless every HAProxy of this amphora runs (checked by keepalived).\n\
         base={base}\n\
         found=0\n\
         for cfg in \"$base\"/*/haproxy.cfg; do\n\
         \x20   [ -f \"$cfg\" ] || continue\n\
         \x20   dir=${{cfg%/haproxy.cfg}}\n\
         \x20   lb=${{dir##*/}}\n\
         \x20   [ -e \"$dir/stopped\" ] && continue\n\
         \x20   found=1\n\
         \x20   pid=$(head -n 1 \"$dir/$lb.pid\" 2>/dev/null)\n\
         \x20   [ -n \"$pid\" ] || exit 1\n\
         \x20   tr '\\000' '\\n' < \"/proc/$pid/cmdline\" 2>/dev/null | grep -qxF \"$cfg\" || exit 1\n\
         \x20   [ -S \"$base/$lb.sock\" ] || exit 1\n\
         done\n\
         [ \"$found\" = 1 ]\n",
        base = quote(base_path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_the_banner() {
        assert_eq!(
            parse_version("Keepalived v2.2.7 (01/16,2022)\n\nCopyright(C) ...").as_deref(),
            Some("2.2.7")
        );
        assert_eq!(parse_version("something else"), None);
    }

    #[test]
    fn virtual_addresses_of_both_blocks() {
        let text = "vrrp_instance x {\n    unicast_peer {\n        10.0.0.6\n    }\n\
                    virtual_ipaddress {\n        10.0.0.10\n        10.0.0.11/24 dev eth1\n    }\n\
                    virtual_ipaddress_excluded {\n        fd00::10 # v6\n    }\n\
                    virtual_routes {\n        10.0.0.0/24 dev eth1\n    }\n}\n";
        let want: Vec<IpAddr> = ["10.0.0.10", "10.0.0.11", "fd00::10"]
            .iter()
            .map(|a| a.parse().expect("ip"))
            .collect();
        assert_eq!(virtual_addresses(text), want);
    }

    /// The scripts run under `sh` and fail or pass as a keepalived check must.
    #[test]
    fn haproxy_check_script_fails_unless_every_haproxy_runs() {
        let base = tempfile::tempdir().expect("tempdir");
        let script = base.path().join("check.sh");
        std::fs::write(&script, haproxy_check_script(base.path())).expect("write");
        let run = || {
            std::process::Command::new("sh")
                .arg(&script)
                .status()
                .expect("run sh")
                .success()
        };
        assert!(!run(), "no load balancer: the check fails");
        // A load balancer whose "HAProxy" is this test process (its command line names no
        // such config): fails; one stopped on purpose is skipped.
        let lb = base.path().join("lb1");
        std::fs::create_dir(&lb).expect("mkdir");
        std::fs::write(lb.join("haproxy.cfg"), "").expect("cfg");
        std::fs::write(lb.join("lb1.pid"), format!("{}\n", std::process::id())).expect("pid");
        assert!(!run(), "pid of another program: the check fails");
        std::fs::write(lb.join("stopped"), "").expect("marker");
        assert!(
            !run(),
            "only a stopped load balancer: nothing serves, the check fails"
        );
        // A process whose command line names the config, and the socket: passes.
        std::fs::remove_file(lb.join("stopped")).expect("rm");
        let cfg = lb.join("haproxy.cfg");
        let mut child = std::process::Command::new("tail")
            .arg("-f")
            .arg(&cfg)
            .spawn()
            .expect("spawn");
        std::fs::write(lb.join("lb1.pid"), format!("{}\n", child.id())).expect("pid");
        let sock = std::os::unix::net::UnixListener::bind(base.path().join("lb1.sock"));
        let passes = run();
        let _ = child.kill();
        let _ = child.wait();
        assert!(sock.is_ok());
        assert!(
            passes,
            "a live master naming its config and a socket: the check passes"
        );
        assert!(!run(), "the master died: the check fails");
    }

    #[test]
    fn check_script_fails_when_one_check_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let checks = dir.path().join("it's checks");
        std::fs::create_dir(&checks).expect("mkdir");
        let script = dir.path().join("check_script.sh");
        std::fs::write(&script, check_script(&checks)).expect("write");
        let run = || {
            std::process::Command::new("sh")
                .arg(&script)
                .status()
                .expect("run sh")
                .success()
        };
        assert!(run(), "no checks: nothing fails");
        std::fs::write(checks.join("a.sh"), "exit 0\n").expect("a");
        assert!(run());
        std::fs::write(checks.join("b.sh"), "exit 1\n").expect("b");
        assert!(!run());
    }
}
