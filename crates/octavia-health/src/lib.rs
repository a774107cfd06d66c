//! The health manager's heartbeat side: a UDP receiver that authenticates and decodes v3
//! heartbeats (reference §5), batches them, and writes health rows, listener statistics and
//! operating statuses through the store (reference §2.5, §5.3, §5.4).
//!
//! Layout: [`report`] turns a decoded message into a store record, `receiver` owns the socket
//! and decodes, `writer` batches and writes, `ratelog` keeps reject warnings from flooding
//! the log. [`HealthReceiver`] is the entry point: bind (port 0 works for tests), then run
//! until the shutdown future resolves.
//!
//! Metrics (`metrics` facade): `octavia_heartbeats_received_total`,
//! `octavia_heartbeats_rejected_total{reason}` (`too_short`, `bad_hmac`, `bad_zlib`,
//! `bad_json`, `unknown_amphora`, `no_load_balancer`, `too_slow`, `db_error`),
//! `octavia_heartbeat_batch_write_seconds` (histogram) and `octavia_heartbeat_batch_size`.

pub mod keys;
mod ratelog;
mod receiver;
pub mod report;
mod stale;
mod writer;

pub use keys::{RingKey, StoredKeys};
pub use stale::{run_stale_checker, StaleSettings};

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use octavia_db::Store;

/// A secret string (a heartbeat key) whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret value, for the code that signs or verifies with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The shortest wait that makes a heartbeat "processed too slowly". Octavia's rule (the
/// heartbeat interval) was made for 10 s intervals; with 1 s ones a short stall of the
/// health manager (a busy host) would discard every heartbeat at once and fail healthy
/// amphorae over. A late write is harmless: the health timestamp written is the time the
/// heartbeat was received, never the time it was written.
pub const SLOW_FLOOR: Duration = Duration::from_secs(5);

/// Settings of the heartbeat receiver (`[health_manager]`).
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Address to bind (`bind_ip`, default 127.0.0.1).
    pub bind_ip: IpAddr,
    /// UDP port (`bind_port`, default 5555; 0 picks a free port).
    pub bind_port: u16,
    /// Key ring: the current `heartbeat_key` first, then previous keys still accepted.
    pub heartbeat_keys: Vec<Secret>,
    /// `heartbeat_interval` (default 1 s): a heartbeat that waited this long, and at least
    /// [`SLOW_FLOOR`], before being written does not refresh the health timestamp
    /// ("processed too slowly").
    pub heartbeat_interval: Duration,
    /// Most heartbeats written in one batch (one transaction).
    pub batch_max: usize,
    /// How long a batch waits for more heartbeats after its first one.
    pub batch_window: Duration,
    /// Batches written at once (separate transactions) on PostgreSQL; SQLite writes one at
    /// a time.
    pub writers: usize,
    /// Decoded heartbeats waiting for the writer; beyond this they are dropped (`too_slow`).
    pub queue_max: usize,
    /// Socket receive buffer in bytes (`sock_rlimit`; 0 = OS default).
    pub sock_rlimit: usize,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            bind_port: 5555,
            heartbeat_keys: Vec::new(),
            heartbeat_interval: Duration::from_secs(1),
            batch_max: 2000,
            batch_window: Duration::from_millis(50),
            writers: 3,
            queue_max: 50_000,
            sock_rlimit: 0,
        }
    }
}

/// Errors of the health manager.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The settings cannot work (no key, zero batch size).
    #[error("invalid health manager settings: {0}")]
    Settings(String),
    /// The UDP socket could not be created or bound.
    #[error("bind heartbeat socket {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Running totals, readable while the receiver runs (tests, benchmarks, status pages).
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams received.
    pub received: AtomicU64,
    /// Heartbeats decoded and authenticated.
    pub decoded: AtomicU64,
    /// Rejected for a bad digest.
    pub bad_hmac: AtomicU64,
    /// Rejected: signed payload not zlib.
    pub bad_zlib: AtomicU64,
    /// Rejected: inflated payload not heartbeat JSON.
    pub bad_json: AtomicU64,
    /// Rejected: too short to hold a digest.
    pub too_short: AtomicU64,
    /// Dropped: the amphora is unknown or DELETED.
    pub unknown_amphora: AtomicU64,
    /// Dropped: the amphora has no live load balancer.
    pub no_load_balancer: AtomicU64,
    /// Written late (no health refresh) or dropped because the writer queue was full.
    pub too_slow: AtomicU64,
    /// Lost with a batch the store refused.
    pub db_error: AtomicU64,
    /// Heartbeats written by the store (known amphora with a load balancer).
    pub written: AtomicU64,
    /// Batches written.
    pub batches: AtomicU64,
}

/// A plain copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub received: u64,
    pub decoded: u64,
    pub bad_hmac: u64,
    pub bad_zlib: u64,
    pub bad_json: u64,
    pub too_short: u64,
    pub unknown_amphora: u64,
    pub no_load_balancer: u64,
    pub too_slow: u64,
    pub db_error: u64,
    pub written: u64,
    pub batches: u64,
}

impl Counters {
    /// Reads every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            received: r(&self.received),
            decoded: r(&self.decoded),
            bad_hmac: r(&self.bad_hmac),
            bad_zlib: r(&self.bad_zlib),
            bad_json: r(&self.bad_json),
            too_short: r(&self.too_short),
            unknown_amphora: r(&self.unknown_amphora),
            no_load_balancer: r(&self.no_load_balancer),
            too_slow: r(&self.too_slow),
            db_error: r(&self.db_error),
            written: r(&self.written),
            batches: r(&self.batches),
        }
    }

    /// Count `n` heartbeats rejected for `reason` (counter and metric).
    pub(crate) fn reject(&self, reason: Reject, n: u64) {
        let c = match reason {
            Reject::BadHmac => &self.bad_hmac,
            Reject::BadZlib => &self.bad_zlib,
            Reject::BadJson => &self.bad_json,
            Reject::TooShort => &self.too_short,
            Reject::UnknownAmphora => &self.unknown_amphora,
            Reject::NoLoadBalancer => &self.no_load_balancer,
            Reject::TooSlow => &self.too_slow,
            Reject::DbError => &self.db_error,
        };
        c.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("octavia_heartbeats_rejected_total", "reason" => reason.label())
            .increment(n);
    }
}

/// Why heartbeats were dropped or written late: the `reason` label of
/// `octavia_heartbeats_rejected_total`, one counter of [`Counters`] each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    TooShort,
    BadHmac,
    BadZlib,
    BadJson,
    UnknownAmphora,
    NoLoadBalancer,
    TooSlow,
    DbError,
}

impl Reject {
    /// The metric label (and rate-limited log key).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::BadHmac => "bad_hmac",
            Self::BadZlib => "bad_zlib",
            Self::BadJson => "bad_json",
            Self::UnknownAmphora => "unknown_amphora",
            Self::NoLoadBalancer => "no_load_balancer",
            Self::TooSlow => "too_slow",
            Self::DbError => "db_error",
        }
    }
}

impl From<&amphora_proto::heartbeat::HeartbeatError> for Reject {
    fn from(e: &amphora_proto::heartbeat::HeartbeatError) -> Self {
        use amphora_proto::heartbeat::HeartbeatError as E;
        match e {
            E::TooShort { .. } => Self::TooShort,
            E::BadHmac => Self::BadHmac,
            E::BadZlib(_) => Self::BadZlib,
            E::BadJson(_) => Self::BadJson,
        }
    }
}

/// A bound heartbeat receiver.
pub struct HealthReceiver {
    store: Store,
    settings: HealthSettings,
    socket: tokio::net::UdpSocket,
    counters: Arc<Counters>,
    zombies: Option<ZombieSink>,
    key_updates: Option<tokio::sync::watch::Receiver<Vec<Secret>>>,
    stored_keys: Option<StoredKeys>,
}

/// Where the receiver reports amphorae that heartbeat although the database says they are
/// deleted, unknown, or serve no load balancer (reference §5.3 step 2): the process that owns
/// the compute driver removes their instances. Each amphora is reported at most once per
/// [`ZOMBIE_REPORT_INTERVAL`].
pub type ZombieSink = tokio::sync::mpsc::Sender<octavia_model::AmphoraId>;

/// Least time between two reports of one zombie amphora.
pub const ZOMBIE_REPORT_INTERVAL: Duration = Duration::from_secs(60);

impl std::fmt::Debug for HealthReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthReceiver")
            .field("addr", &self.local_addr())
            .finish()
    }
}

impl HealthReceiver {
    /// Validates the settings and binds the UDP socket.
    pub async fn bind(store: Store, settings: HealthSettings) -> Result<Self, HealthError> {
        if settings.heartbeat_keys.is_empty() {
            return Err(HealthError::Settings("no heartbeat_key configured".into()));
        }
        if settings.batch_max == 0 || settings.queue_max == 0 {
            return Err(HealthError::Settings(
                "batch_max and queue_max must be positive".into(),
            ));
        }
        let socket = receiver::bind(&settings)?;
        Ok(Self {
            store,
            settings,
            socket,
            counters: Arc::new(Counters::default()),
            zombies: None,
            key_updates: None,
            stored_keys: None,
        })
    }

    /// Take a new key ring from `keys` whenever it changes (current key first); an empty
    /// ring is ignored.
    pub fn with_key_updates(mut self, keys: tokio::sync::watch::Receiver<Vec<Secret>>) -> Self {
        self.key_updates = Some(keys);
        self
    }

    /// Accept the keys stored by `octavia heartbeat-key rotate` too, re-read every
    /// `stored.refresh`, and record the ring in the store under `stored.name` (see
    /// [`keys`]).
    pub fn with_stored_keys(mut self, stored: StoredKeys) -> Self {
        self.stored_keys = Some(stored);
        self
    }

    /// Report zombie amphorae to `sink` (see [`ZombieSink`]).
    pub fn with_zombie_sink(mut self, sink: ZombieSink) -> Self {
        self.zombies = Some(sink);
        self
    }

    /// The bound address (the real port when `bind_port` was 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    /// Live counters.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Receives, decodes, batches and writes until `shutdown` resolves; then writes what
    /// is queued and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), HealthError> {
        let (tx, rx) = tokio::sync::mpsc::channel(self.settings.queue_max);
        let stop = Arc::new(tokio::sync::Notify::new());
        let writer = tokio::spawn(writer::run(
            self.store.clone(),
            self.settings.clone(),
            rx,
            self.counters.clone(),
            self.zombies.clone(),
        ));
        let config_keys = self.settings.heartbeat_keys.clone();
        let (ring_tx, ring_rx) =
            tokio::sync::watch::channel(keys::effective_ring(&config_keys, &[]));
        let refresh = tokio::spawn(keys::run_refresh(
            self.store.clone(),
            self.key_updates,
            config_keys,
            self.stored_keys,
            ring_tx,
        ));
        let recv = receiver::run(
            self.socket,
            ring_rx,
            tx,
            self.counters.clone(),
            stop.clone(),
        );
        tokio::pin!(recv);
        tokio::select! {
            _ = &mut recv => {}
            _ = shutdown => {
                stop.notify_one();
                recv.await;
            }
        }
        refresh.abort();
        // The sender side is dropped with the receiver loop: the writer drains and ends.
        if let Err(e) = writer.await {
            tracing::error!(error = %e, "heartbeat writer task failed");
        }
        tracing::info!("heartbeat receiver stopped");
        Ok(())
    }
}

/// Binds with `settings` and runs until `shutdown` resolves; zombie amphorae go to
/// `zombies` when given.
///
/// With `keys`, the key ring may change while it runs (the daemon re-read its
/// configuration): the current key first, then the previous ones still accepted. With
/// `stored`, the keys of `octavia heartbeat-key rotate` are accepted too ([`keys`]).
pub async fn run(
    store: Store,
    settings: HealthSettings,
    zombies: Option<ZombieSink>,
    keys: Option<tokio::sync::watch::Receiver<Vec<Secret>>>,
    stored: Option<StoredKeys>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), HealthError> {
    let mut r = HealthReceiver::bind(store, settings).await?;
    if let Some(stored) = stored {
        r = r.with_stored_keys(stored);
    }
    if let Some(sink) = zombies {
        r = r.with_zombie_sink(sink);
    }
    if let Some(keys) = keys {
        r = r.with_key_updates(keys);
    }
    if let Some(addr) = r.local_addr() {
        tracing::info!(%addr, "heartbeat receiver listening");
    }
    r.run(shutdown).await
}
