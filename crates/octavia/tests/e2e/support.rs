//! Helpers for process-level tests: scratch configs, child processes, polling.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use octavia_test_support::eventually;

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Start `binary --config config` with extra environment; stderr goes to a log file.
    pub fn start(name: &str, binary: &str, config: &Path, env: &[(&str, &str)]) -> Proc {
        let log = config.with_file_name(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create log file");
        let mut cmd = Command::new(binary);
        cmd.arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// kill -9 and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("----- log of {} -----\n{}", self.name, self.log());
        }
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Write a config file for the given database and API port.
pub fn write_config(dir: &Path, name: &str, db_url: &str, port: u16, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[api_settings]\nbind_host = \"127.0.0.1\"\nbind_port = {port}\n\n[database]\nconnection = \"{db_url}\"\n\n{extra}"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Wait until the API at `base` answers `GET /`.
pub async fn wait_api(base: &str) {
    let client = reqwest::Client::new();
    eventually("the API to answer", Duration::from_secs(30), || {
        let client = client.clone();
        let url = format!("{base}/");
        async move {
            match client.get(url).send().await {
                Ok(r) if r.status().is_success() => Some(()),
                _ => None,
            }
        }
    })
    .await
}
