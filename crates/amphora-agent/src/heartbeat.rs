//! The heartbeat sender: every `heartbeat_interval`, one signed v3 heartbeat with the status and
//! counters of every running load balancer, to the next health manager of the list (round-robin);
//! none while keepalived is configured but dead (reference §5.1).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use amphora_proto::heartbeat::{self, CounterDeltas, HeartbeatMessage, HEARTBEAT_VERSION};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::config::{AgentConfig, HeartbeatKey};
use crate::fsutil;
use crate::haproxy::HaproxyManager;
use crate::keepalived::KeepalivedManager;
use crate::stats;

/// What the sender needs; replaced at run time by `PUT /1.0/config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatSettings {
    /// The amphora id sent as `id`.
    pub amphora_id: String,
    /// Time between heartbeats.
    pub interval: Duration,
    /// Destinations, used round-robin.
    pub controllers: Vec<SocketAddr>,
    /// HMAC key; no heartbeat is sent without one.
    pub key: Option<HeartbeatKey>,
}

impl HeartbeatSettings {
    /// The settings of a configuration.
    pub fn from_config(config: &AgentConfig) -> Self {
        Self {
            amphora_id: config.amphora_agent.amphora_id.clone(),
            interval: config.health_manager.heartbeat_interval,
            controllers: config.health_manager.controller_ip_port_list.clone(),
            key: config.health_manager.heartbeat_key.clone(),
        }
    }
}

/// The sender's state between heartbeats.
struct Sender {
    haproxy: Arc<HaproxyManager>,
    keepalived: Arc<KeepalivedManager>,
    counters_path: PathBuf,
    deltas: CounterDeltas,
    seq: u64,
    next: usize,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Sender {
    /// Builds the message of this round.
    async fn message(&mut self, amphora_id: &str) -> HeartbeatMessage {
        let mut listeners = BTreeMap::new();
        let mut pools = BTreeMap::new();
        for lb_id in self.haproxy.running() {
            let socket = self.haproxy.stats_socket(&lb_id);
            match stats::show_stat(&socket).await {
                Ok(csv) => stats::add_rows(
                    &stats::parse_show_stat(&csv),
                    &mut self.deltas,
                    &mut listeners,
                    &mut pools,
                ),
                Err(error) => tracing::warn!(lb_id = %lb_id, %error, "no stats for load balancer"),
            }
        }
        self.deltas.retain(|id| listeners.contains_key(id));
        let msg = HeartbeatMessage {
            id: amphora_id.to_owned(),
            seq: self.seq,
            ver: HEARTBEAT_VERSION,
            listeners,
            pools,
            vip_held: self.keepalived.last_vip_held(),
        };
        self.seq += 1;
        msg
    }

    async fn socket_for(&mut self, dest: SocketAddr) -> std::io::Result<&UdpSocket> {
        let slot = if dest.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        };
        if slot.is_none() {
            let bind: SocketAddr = if dest.is_ipv4() {
                "0.0.0.0:0".parse().map_err(std::io::Error::other)?
            } else {
                "[::]:0".parse().map_err(std::io::Error::other)?
            };
            *slot = Some(UdpSocket::bind(bind).await?);
        }
        slot.as_ref()
            .ok_or_else(|| std::io::Error::other("udp socket missing"))
    }

    async fn round(&mut self, settings: &HeartbeatSettings) {
        let Some(key) = settings.key.as_ref() else {
            tracing::debug!("no heartbeat_key configured, heartbeat not sent");
            return;
        };
        if settings.controllers.is_empty() {
            tracing::debug!("no controller_ip_port_list configured, heartbeat not sent");
            return;
        }
        if self.keepalived.is_dead() {
            // Octavia's rule: an amphora whose keepalived is configured but dead cannot take
            // the VIP; its silence makes the controller replace it.
            tracing::warn!("keepalived is configured but not running, heartbeat not sent");
            return;
        }
        let msg = self.message(&settings.amphora_id).await;
        let packet = heartbeat::encode(&msg, key.expose());
        let dest = settings.controllers[self.next % settings.controllers.len()];
        self.next = self.next.wrapping_add(1);
        let sent = match self.socket_for(dest).await {
            Ok(socket) => socket.send_to(&packet, dest).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => {
                tracing::debug!(%dest, seq = msg.seq, listeners = msg.listeners.len(), "heartbeat sent")
            }
            Err(error) => tracing::debug!(%dest, %error, "heartbeat send failed"),
        }
        match serde_json::to_vec(&self.deltas) {
            Ok(json) => {
                if let Err(error) = fsutil::write_file(&self.counters_path, &json, 0o600) {
                    tracing::warn!(%error, "saving stats counters failed");
                }
            }
            Err(error) => tracing::warn!(%error, "serialising stats counters failed"),
        }
    }
}

/// Runs the sender until the settings channel closes. Counter memory persists in
/// `counters_path` (Octavia's `stats_counters.json`) so a restarted agent keeps sending deltas.
pub async fn run(
    haproxy: Arc<HaproxyManager>,
    keepalived: Arc<KeepalivedManager>,
    counters_path: PathBuf,
    mut settings: watch::Receiver<HeartbeatSettings>,
) {
    let deltas = std::fs::read(&counters_path)
        .ok()
        .and_then(|data| serde_json::from_slice(&data).ok())
        .unwrap_or_default();
    let mut sender = Sender {
        haproxy,
        keepalived,
        counters_path,
        deltas,
        seq: 0,
        next: 0,
        v4: None,
        v6: None,
    };
    loop {
        let current = settings.borrow_and_update().clone();
        // One heartbeat per interval from the start of each round, so a slow round (stats
        // from a busy HAProxy) does not stretch the gap the health manager sees.
        let next = tokio::time::Instant::now() + current.interval;
        sender.round(&current).await;
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            changed = settings.changed() => {
                if changed.is_err() {
                    return;
                }
                tracing::info!(interval = ?settings.borrow().interval, "heartbeat settings changed");
            }
        }
    }
}
