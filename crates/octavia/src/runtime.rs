//! Process wiring: open the store, install metrics, start the roles, stop on a signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use octavia_db::{QuotaDefaults, Store, StoreOptions};
use tokio::sync::watch;
use tracing::info;

use crate::config::Config;

/// Which control-plane roles a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Every role in one process (`octavia`).
    AllInOne,
    /// `octavia-api`.
    Api,
    /// `octavia-worker`.
    Worker,
    /// `octavia-health-manager`.
    HealthManager,
    /// `octavia-housekeeping`.
    Housekeeping,
}

impl Role {
    fn runs_api(self) -> bool {
        matches!(self, Role::AllInOne | Role::Api)
    }
    fn runs_worker(self) -> bool {
        matches!(self, Role::AllInOne | Role::Worker)
    }
    fn runs_health_manager(self) -> bool {
        matches!(self, Role::AllInOne | Role::HealthManager)
    }
    fn runs_housekeeping(self) -> bool {
        matches!(self, Role::AllInOne | Role::Housekeeping)
    }
    /// The port of this role's own metrics endpoint: none where the API serves `/metrics`,
    /// none when configured 0.
    fn metrics_port(self, m: &crate::config::MetricsSection) -> Option<u16> {
        let port = match self {
            Role::AllInOne | Role::Api => 0,
            Role::Worker => m.worker_port,
            Role::HealthManager => m.health_manager_port,
            Role::Housekeeping => m.housekeeping_port,
        };
        (port != 0).then_some(port)
    }
}

/// Structured logs to stderr; `RUST_LOG` overrides the default `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Run a future on a multi-threaded runtime.
pub fn block_on<F: Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?
        .block_on(f)
}

/// Run a future that yields a value on a multi-threaded runtime.
pub fn block_on_value<T, F: Future<Output = anyhow::Result<T>>>(f: F) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?
        .block_on(f)
}

/// Open (and for SQLite, create the directory of) the configured store.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = &config.database.connection;
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(dir) = Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("create database directory {}", dir.display()))?;
            }
        }
    }
    let q = &config.quotas;
    let store = Store::connect(StoreOptions {
        url: url.clone(),
        max_connections: config.database.max_pool_size,
        quota_defaults: QuotaDefaults {
            load_balancer: q.default_load_balancer_quota,
            listener: q.default_listener_quota,
            pool: q.default_pool_quota,
            health_monitor: q.default_health_monitor_quota,
            member: q.default_member_quota,
            l7policy: q.default_l7policy_quota,
            l7rule: q.default_l7rule_quota,
        },
    })
    .await
    .with_context(|| format!("connect to database {}", redact(url)))?;
    Ok(store)
}

/// A database URL with its password replaced, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Resolves when SIGINT or SIGTERM arrives.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The help text of every metric the daemons export (Prometheus `# HELP`; `promtool check
/// metrics` wants one for each). A metric registered anywhere must be described here
/// (checked by `xtask`).
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        "octavia_api_request_duration_seconds",
        Unit::Seconds,
        "API request latency, by method, route and status."
    );
    describe_counter!("octavia_jobs_total", "Jobs finished, by kind and result.");
    describe_histogram!(
        "octavia_job_duration_seconds",
        Unit::Seconds,
        "Time from a job's claim to its end, by kind."
    );
    describe_gauge!(
        "octavia_job_queue_depth",
        "Jobs waiting to be claimed, by class (failover, tenant, operator)."
    );
    describe_counter!(
        "octavia_amphora_builds_total",
        "Amphora builds, by result (success, failure)."
    );
    describe_histogram!(
        "octavia_amphora_build_seconds",
        Unit::Seconds,
        "Time from asking the compute driver for an amphora to its agent answering."
    );
    describe_counter!(
        "octavia_failovers_total",
        "Failovers finished, by cause (heartbeat, operator) and result."
    );
    describe_counter!(
        "octavia_failovers_queued_total",
        "Failovers queued, by cause (heartbeat, operator)."
    );
    describe_gauge!(
        "octavia_stale_amphorae",
        "Amphorae whose heartbeats are older than the heartbeat timeout, at the last sweep."
    );
    describe_gauge!(
        "octavia_failover_stopped_amphorae",
        "Amphorae in FAILOVER_STOPPED (the failover circuit breaker held them)."
    );
    describe_gauge!(
        "octavia_failover_circuit_open",
        "1 while the failover circuit breaker holds amphorae in FAILOVER_STOPPED, else 0."
    );
    describe_counter!(
        "octavia_heartbeats_received_total",
        "Heartbeat datagrams received by this health manager."
    );
    describe_counter!(
        "octavia_heartbeats_rejected_total",
        "Heartbeat datagrams refused, by reason."
    );
    describe_counter!(
        "octavia_heartbeats_previous_key_total",
        "Heartbeats accepted with a key other than the current one (the PREVIOUS key of a rotation, or heartbeat_previous_keys)."
    );
    describe_histogram!(
        "octavia_heartbeat_batch_write_seconds",
        Unit::Seconds,
        "Time to write one batch of heartbeats to the database."
    );
    describe_histogram!(
        "octavia_heartbeat_batch_size",
        "Heartbeats written per database batch."
    );
    describe_counter!(
        "octavia_housekeeping_purged_total",
        "Rows the housekeeper purged after their expiry age, by kind (amphora, load_balancer, job)."
    );
    describe_counter!(
        "octavia_certificate_renewals_queued_total",
        "Amphora certificate renewals the housekeeper queued (certificates within cert_expiry_buffer of expiry)."
    );
    describe_gauge!(
        "octavia_amphora_certificate_expiry_timestamp_seconds",
        Unit::Seconds,
        "When the soonest-expiring live amphora certificate expires (Unix time), as of the housekeeper's last look."
    );
    describe_gauge!(
        "octavia_spare_pool_size",
        "Spare amphorae each pool is kept at ([house_keeping] spare_amphora_pool_size)."
    );
    describe_gauge!(
        "octavia_spare_amphorae",
        "Untaken spare amphorae by zone and state (ready, building), as of the housekeeper's last pass."
    );
    describe_counter!(
        "octavia_spare_amphorae_queued_total",
        "Spare amphora builds the housekeeper queued."
    );
    describe_counter!(
        "octavia_spare_amphorae_taken_total",
        "Spare amphorae a load balancer create or failover took instead of building."
    );
    describe_counter!(
        "octavia_spare_amphorae_retired_total",
        "Spare amphorae deleted, by reason (surplus: pool made smaller; silent: stopped heartbeating; unanswered: agent silent when taken)."
    );
    describe_counter!(
        "octavia_zombie_amphorae_deleted_total",
        "Compute instances of zombie amphorae (heartbeating, but deleted or serving nothing) removed."
    );
}

/// The options a running daemon takes on when SIGHUP makes it re-read its configuration
/// file; any other change is reported as needing a restart.
pub const LIVE_OPTIONS: &[&str] = &[
    "health_manager.failover_threshold",
    "health_manager.failover_threads",
    "health_manager.health_check_interval",
    "health_manager.heartbeat_previous_keys",
    "health_manager.heartbeat_timeout",
    "house_keeping.spare_amphora_pool_size",
    "house_keeping.spare_check_interval",
];

/// The senders through which a re-read configuration reaches the running roles.
struct LiveSenders {
    stale: watch::Sender<octavia_health::StaleSettings>,
    /// The health manager's accepted heartbeat keys.
    keys: watch::Sender<Vec<octavia_health::Secret>>,
    /// The housekeeper's spare pool.
    spares: watch::Sender<octavia_housekeeping::SpareSettings>,
}

/// `current` with the [`LIVE_OPTIONS`] of `new`.
fn take_live(current: &Config, new: &Config) -> Config {
    let mut next = current.clone();
    let (h, n) = (&mut next.health_manager, &new.health_manager);
    h.failover_threshold = n.failover_threshold;
    h.failover_threads = n.failover_threads;
    h.health_check_interval = n.health_check_interval;
    h.heartbeat_timeout = n.heartbeat_timeout;
    h.heartbeat_previous_keys = n.heartbeat_previous_keys.clone();
    let (k, n) = (&mut next.house_keeping, &new.house_keeping);
    k.spare_amphora_pool_size = n.spare_amphora_pool_size;
    k.spare_check_interval = n.spare_check_interval;
    next
}

/// On SIGHUP, re-read the configuration file: the [`LIVE_OPTIONS`] that changed take effect
/// at once (sent to the roles through `stale`), every other change is logged as waiting for a
/// restart, and a file that does not parse changes nothing.
async fn reload_on_sighup(path: Option<PathBuf>, mut current: Config, live: LiveSenders) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the configuration is read only at start");
            return;
        };
        while hup.recv().await.is_some() {
            let Some(path) = &path else {
                tracing::warn!(
                    "SIGHUP: this daemon started without a configuration file; nothing to re-read"
                );
                continue;
            };
            let new = match Config::load(path) {
                Ok(c) => c,
                Err(error) => {
                    tracing::error!(path = %path.display(), %error,
                        "SIGHUP: configuration not re-read; running on with the previous one");
                    continue;
                }
            };
            let changed = current.changed_options(&new);
            let (applied, restart): (Vec<&String>, Vec<&String>) = changed
                .iter()
                .partition(|k| LIVE_OPTIONS.contains(&k.as_str()));
            if changed.is_empty() {
                info!(path = %path.display(), "SIGHUP: configuration re-read, nothing changed");
                continue;
            }
            if !applied.is_empty() {
                current = take_live(&current, &new);
                live.stale
                    .send_replace(crate::settings::stale_settings(&current));
                live.keys
                    .send_replace(crate::settings::heartbeat_keys(&current));
                live.spares
                    .send_replace(crate::settings::spare_settings(&current));
                info!(options = ?applied, "SIGHUP: changed options applied");
            }
            if !restart.is_empty() {
                tracing::warn!(options = ?restart,
                    "SIGHUP: changed options that take effect only after a restart");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, current, live);
}

/// Run the roles of `role` until a signal arrives.
pub async fn run(config: Config, role: Role) -> anyhow::Result<()> {
    run_from(None, config, role).await
}

/// [`run`], with the file `config` was read from: SIGHUP re-reads it
/// ([`LIVE_OPTIONS`] apply at once).
pub async fn run_from(path: Option<PathBuf>, config: Config, role: Role) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0,
        ])
        .context("metrics buckets")?
        .install_recorder()
        .context("install the metrics recorder")?;
    describe_metrics();
    // The recorder keeps every histogram sample until upkeep folds it into the buckets;
    // without this a server nobody scrapes would grow by each request's latency sample.
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });

    let store = open_store(&config).await?;
    store.migrate().await.context("migrate the database")?;
    info!(
        engine = ?store.engine(),
        database = %redact(&config.database.connection),
        ?role,
        "store ready"
    );

    let driver_set = crate::settings::drivers(&config)?;
    if let Some(parts) = &driver_set.netns {
        if role.runs_worker() {
            crate::settings::reconcile(parts).await?;
        }
    }
    let drivers = driver_set.drivers;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (stale_tx, stale_rx) = watch::channel(crate::settings::stale_settings(&config));
    let (keys_tx, keys_rx) = watch::channel(crate::settings::heartbeat_keys(&config));
    let (spares_tx, spares_rx) = watch::channel(crate::settings::spare_settings(&config));
    tokio::spawn(reload_on_sighup(
        path,
        config.clone(),
        LiveSenders {
            stale: stale_tx,
            keys: keys_tx,
            spares: spares_tx,
        },
    ));
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let mut tasks = tokio::task::JoinSet::new();
    if role.runs_api() {
        let addr: SocketAddr = format!(
            "{}:{}",
            config.api_settings.bind_host, config.api_settings.bind_port
        )
        .parse()
        .context("api_settings.bind_host/bind_port")?;
        let render = metrics.clone();
        let app = octavia_api::router(octavia_api::ApiContext {
            store: store.clone(),
            settings: crate::settings::api_settings(&config),
            metrics_render: Some(Arc::new(move || render.render())),
            network: Some(drivers.network.clone()),
        })
        .context("build the API")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind the API to {addr}"))?;
        info!(%addr, "API listening");
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
                .context("serve the API")
        });
    }
    if let Some(port) = role.metrics_port(&config.metrics) {
        let addr: SocketAddr = format!("{}:{port}", config.metrics.bind_host)
            .parse()
            .context("metrics.bind_host and the role's port")?;
        let render = metrics.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let text = render.render();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        );
        // A taken port costs the metrics, not the daemon: it runs on and says so.
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                info!(%addr, "metrics endpoint listening");
                let stop = stopped(stop_rx.clone());
                tasks.spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                        .context("serve the metrics endpoint")
                });
            }
            Err(error) => tracing::error!(%addr, %error,
                "cannot serve metrics on this address (another daemon on this host uses the port?); running without them — set a free port in [metrics]"),
        }
    }
    if role.runs_worker() {
        let settings = crate::settings::worker_settings(&config);
        let drivers = drivers.clone();
        let store = store.clone();
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            octavia_worker::run(store, drivers, settings, stop)
                .await
                .context("run the worker")
        });
    }

    if role.runs_health_manager() {
        match crate::settings::health_settings(&config) {
            Some(settings) => {
                let receiver_store = store.clone();
                let stored = crate::settings::stored_keys(&config);
                let stop = stopped(stop_rx.clone());
                let (zombie_tx, zombie_rx) = tokio::sync::mpsc::channel(1024);
                tokio::spawn(reap_zombies(
                    store.clone(),
                    drivers.compute.clone(),
                    zombie_rx,
                ));
                tasks.spawn(async move {
                    octavia_health::run(
                        receiver_store,
                        settings,
                        Some(zombie_tx),
                        Some(keys_rx.clone()),
                        Some(stored),
                        stop,
                    )
                    .await
                    .context("run the heartbeat receiver")
                });
                // The stale checker runs only beside a receiver: without heartbeats every
                // amphora would look silent.
                let store = store.clone();
                let stop = stopped(stop_rx.clone());
                let stale = stale_rx.clone();
                tasks.spawn(async move {
                    octavia_health::run_stale_checker(store, stale, stop).await;
                    Ok(())
                });
            }
            None if role == Role::HealthManager => {
                anyhow::bail!(
                    "[health_manager] heartbeat_key is not set: heartbeats cannot be verified"
                )
            }
            None => tracing::warn!(
                "heartbeat receiver not started: [health_manager] heartbeat_key is not set"
            ),
        }
    }

    if role.runs_housekeeping() {
        let settings = crate::settings::housekeeping_settings(&config);
        let store = store.clone();
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            octavia_housekeeping::run(store, settings, spares_rx, stop).await;
            Ok(())
        });
    }

    tokio::select! {
        _ = shutdown_signal() => info!("shutting down"),
        Some(res) = tasks.join_next() => {
            // A role ended on its own: that is an error, stop the others.
            let _ = stop_tx.send(true);
            return match res {
                Ok(Ok(())) => Err(anyhow::anyhow!("a control-plane role stopped unexpectedly")),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::anyhow!("a control-plane role panicked: {e}")),
            };
        }
    }
    let _ = stop_tx.send(true);
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(anyhow::anyhow!("a control-plane role panicked: {e}")),
        }
    }
    info!("stopped");
    Ok(())
}

/// Remove the compute instances of zombie amphorae (reference §5.3 step 2): they heartbeat,
/// but the database says they are DELETED or serve no (live) load balancer. Amphorae still
/// being built and spares are left alone; an amphora the database does not know is only
/// logged (its instance cannot be found from here).
async fn reap_zombies(
    store: Store,
    compute: Arc<dyn octavia_drivers::ComputeDriver>,
    mut rx: tokio::sync::mpsc::Receiver<octavia_model::AmphoraId>,
) {
    use octavia_model::ProvisioningStatus as S;
    while let Some(id) = rx.recv().await {
        let amp = match store.get_amphora_any(id).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                tracing::warn!(amphora_id = %id, "heartbeat from an amphora the database does not know; remove its instance by hand");
                continue;
            }
            Err(error) => {
                tracing::warn!(amphora_id = %id, %error, "cannot look up a zombie amphora");
                continue;
            }
        };
        if matches!(amp.status, S::PendingCreate | S::Booting | S::Ready) {
            continue;
        }
        let Some(compute_id) = amp.compute_id.clone() else {
            tracing::warn!(amphora_id = %id, status = %amp.status, "zombie amphora has no compute id; remove its instance by hand");
            continue;
        };
        match compute.delete(&compute_id).await {
            Ok(()) => {
                tracing::warn!(amphora_id = %id, %compute_id, status = %amp.status, "deleted the compute instance of a zombie amphora");
                metrics::counter!("octavia_zombie_amphorae_deleted_total").increment(1);
            }
            Err(error) => {
                tracing::warn!(amphora_id = %id, %compute_id, %error, "deleting a zombie amphora's instance failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("postgres://octavia:s3cret@db:5432/octavia"),
            "postgres://octavia:***@db:5432/octavia"
        );
        assert_eq!(
            redact("sqlite:///var/lib/octavia/octavia.db"),
            "sqlite:///var/lib/octavia/octavia.db"
        );
    }
}
