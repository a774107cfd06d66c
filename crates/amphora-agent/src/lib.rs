//! The amphora agent: runs inside each amphora, serves Octavia's `/1.0` REST API over mutual
//! TLS, drives one HAProxy master-worker per load balancer, sends signed v3 heartbeats and
//! serves the metrics proxy of PROMETHEUS listeners.
//! It has no database and knows nothing of the controller beyond the wire formats.

pub mod api;
pub mod certificates;
pub mod config;
pub mod config_check;
pub mod error;
pub mod fsutil;
pub mod haproxy;
pub mod heartbeat;
pub mod host;
pub mod keepalived;
pub mod limits;
pub mod netif;
pub mod pingcheck;
pub mod prometheus;
pub mod stats;
pub mod tls;
pub mod usage;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::AgentConfig;
pub use error::{AgentError, Result};

use certificates::CertificateStore;
use haproxy::HaproxyManager;
use heartbeat::HeartbeatSettings;
use keepalived::KeepalivedManager;
use tls::{ClientCa, ServerCertificate};

/// How often the supervisor checks that every wanted HAProxy runs.
const SUPERVISE_INTERVAL: Duration = Duration::from_secs(2);

/// An id used in a file path: letters, digits, `-` and `_` only (UUIDs qualify).
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The running agent's shared state.
#[derive(Debug)]
pub struct Agent {
    config: RwLock<AgentConfig>,
    config_path: Option<PathBuf>,
    haproxy: Arc<HaproxyManager>,
    keepalived: Arc<KeepalivedManager>,
    certificates: CertificateStore,
    server_cert: Arc<ServerCertificate>,
    client_ca: Arc<ClientCa>,
    heartbeat: watch::Sender<HeartbeatSettings>,
}

impl Agent {
    /// The current configuration.
    pub fn config(&self) -> AgentConfig {
        match self.config.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The HAProxy manager.
    pub fn haproxy(&self) -> &HaproxyManager {
        &self.haproxy
    }

    /// The keepalived manager (ACTIVE_STANDBY).
    pub fn keepalived(&self) -> &KeepalivedManager {
        &self.keepalived
    }

    /// The certificate store.
    pub fn certificates(&self) -> &CertificateStore {
        &self.certificates
    }

    /// Replaces the server certificate (PEM cert + key): written over `agent_server_cert`
    /// (mode 0600) and used by every new TLS handshake.
    pub fn replace_server_certificate(&self, pem: &[u8]) -> Result<()> {
        let key = tls::certified_key_from_pem(pem)?;
        let path = self.config().amphora_agent.agent_server_cert;
        fsutil::write_file(&path, pem, 0o600)?;
        self.server_cert.replace(key);
        tracing::info!("server certificate replaced");
        Ok(())
    }

    /// Replaces the client CA bundle (PEM, one or more CA certificates; ours, not Octavia's):
    /// written over `agent_server_ca` (mode 0644) and used to verify every new TLS handshake;
    /// connections already established, the request's own included, are unaffected.
    pub fn replace_client_ca(&self, pem: &[u8]) -> Result<()> {
        let verifier = tls::client_verifier_from_pem(pem)?;
        let path = self.config().amphora_agent.agent_server_ca;
        fsutil::write_file(&path, pem, 0o644)?;
        self.client_ca.replace(verifier);
        tracing::info!("client ca replaced");
        Ok(())
    }

    /// Applies a new configuration file text: stored over the agent's config file (mode 0600);
    /// the heartbeat key, interval, controller list and amphora id apply at once, the rest at
    /// the next start.
    pub fn replace_config(&self, text: &[u8]) -> Result<()> {
        let text = std::str::from_utf8(text)
            .map_err(|_| AgentError::Config("configuration is not utf-8".into()))?;
        let new = AgentConfig::parse(text)?;
        if let Some(path) = &self.config_path {
            fsutil::write_file(path, text.as_bytes(), 0o600)?;
        }
        self.heartbeat
            .send_replace(HeartbeatSettings::from_config(&new));
        match self.config.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        tracing::info!("agent configuration replaced");
        Ok(())
    }
}

/// A started agent: its address and the tasks serving it. Dropping it stops the server, the
/// supervisor, the heartbeat sender and the metrics proxy; HAProxy keeps serving.
#[derive(Debug)]
pub struct RunningAgent {
    /// The address the HTTPS server listens on.
    pub local_addr: std::net::SocketAddr,
    /// The address the Prometheus metrics proxy listens on; `None` when it is disabled or
    /// could not bind.
    pub metrics_proxy_addr: Option<std::net::SocketAddr>,
    /// The shared state.
    pub agent: Arc<Agent>,
    stop: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningAgent {
    /// Waits until the HTTPS server stops (after [`RunningAgent::shutdown`] or on error).
    pub async fn wait(&mut self) {
        if let Some(server) = self.server.as_mut() {
            let _ = server.await;
            self.server = None;
        }
    }

    /// Stops accepting connections, lets in-flight requests finish (at most `grace`), then
    /// stops the supervisor, the heartbeat sender and the metrics proxy. HAProxy keeps serving.
    pub async fn shutdown_gracefully(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(grace, server).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Stops everything at once (HAProxy keeps serving).
    pub fn shutdown(self) {
        drop(self)
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
        for task in &self.background {
            task.abort();
        }
    }
}

/// Starts the agent: adopts or starts HAProxy for every configured load balancer, then serves
/// the REST API, supervises HAProxy, sends heartbeats and serves the metrics proxy (which,
/// when it cannot bind, is logged and left out). `config_path` is where `PUT /config` stores
/// a new configuration.
pub async fn start(config: AgentConfig, config_path: Option<PathBuf>) -> Result<RunningAgent> {
    let section = &config.amphora_agent;
    let pem = std::fs::read(&section.agent_server_cert)
        .map_err(|e| AgentError::io("read server certificate", &section.agent_server_cert, e))?;
    let server_cert = ServerCertificate::new(tls::certified_key_from_pem(&pem)?);
    let client_ca = ClientCa::from_file(&section.agent_server_ca)?;
    let tls_config = tls::server_config(
        client_ca.clone(),
        server_cert.clone(),
        section.agent_tls_protocol,
    )?;
    match limits::raise_nofile_limit() {
        Ok(limit) => tracing::info!(
            soft_before = ?limit.soft_before,
            soft = ?limit.soft,
            hard = ?limit.hard,
            "open file limit raised to the hard limit for the agent and haproxy"
        ),
        Err(error) => {
            let (soft, hard) = limits::nofile_limit();
            tracing::warn!(%error, ?soft, ?hard, "cannot raise the open file limit");
        }
    }
    let hp = &config.haproxy_amphora;
    fsutil::create_dir(&hp.base_path, 0o755)?;
    pingcheck::install(&hp.base_path)?;
    if section.allow_unprivileged_ping {
        if let Err(error) = pingcheck::allow_unprivileged_ping() {
            tracing::warn!(%error, "PING health monitors will see every member down");
        }
    }
    let haproxy = Arc::new(HaproxyManager::new(
        hp.haproxy_cmd.clone(),
        hp.base_path.clone(),
    ));
    haproxy.supervise().await;
    let keepalived = Arc::new(KeepalivedManager::new(
        hp.keepalived_cmd.clone(),
        hp.base_path.clone(),
    ));
    keepalived.supervise().await;
    let listener = TcpListener::bind(config.bind_addr())
        .await
        .map_err(|e| AgentError::Config(format!("bind {}: {e}", config.bind_addr())))?;
    let tls_listener = tls::TlsListener::new(listener, tls_config)
        .map_err(|e| AgentError::Config(format!("listen: {e}")))?;
    let local_addr = axum::serve::Listener::local_addr(&tls_listener)
        .map_err(|e| AgentError::Config(format!("listen: {e}")))?;
    let metrics_proxy = prometheus::spawn(&config, haproxy.clone()).await;
    let (heartbeat_tx, heartbeat_rx) = watch::channel(HeartbeatSettings::from_config(&config));
    let counters_path = hp.base_path.join("stats_counters.json");
    let timeout = section.agent_request_read_timeout;
    let agent = Arc::new(Agent {
        certificates: CertificateStore::new(hp.base_cert_dir.clone()),
        config: RwLock::new(config),
        config_path,
        haproxy: haproxy.clone(),
        keepalived: keepalived.clone(),
        server_cert,
        client_ca,
        heartbeat: heartbeat_tx,
    });
    let router = api::router(agent.clone(), timeout);
    let (stop, mut stopping) = watch::channel(false);
    let server = tokio::spawn(async move {
        let serve = axum::serve(tls_listener, router).with_graceful_shutdown(async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        });
        if let Err(error) = serve.await {
            tracing::error!(%error, "agent server stopped");
        }
    });
    let vip_watch = {
        let keepalived = keepalived.clone();
        tokio::spawn(async move { keepalived.watch_vip().await })
    };
    let supervisor = {
        let haproxy = haproxy.clone();
        let keepalived = keepalived.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SUPERVISE_INTERVAL).await;
                haproxy.supervise().await;
                keepalived.supervise().await;
            }
        })
    };
    let sender = tokio::spawn(heartbeat::run(
        haproxy,
        keepalived,
        counters_path,
        heartbeat_rx,
    ));
    tracing::info!(%local_addr, "amphora agent listening");
    let mut background = vec![supervisor, sender, vip_watch];
    let metrics_proxy_addr = metrics_proxy.map(|(addr, task)| {
        background.push(task);
        addr
    });
    Ok(RunningAgent {
        local_addr,
        metrics_proxy_addr,
        agent,
        stop,
        server: Some(server),
        background,
    })
}
