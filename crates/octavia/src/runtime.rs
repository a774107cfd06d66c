//! Process wiring: open the store, install metrics, start the roles, stop on a signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
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

/// Run the roles of `role` until a signal arrives.
pub async fn run(config: Config, role: Role) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0,
        ])
        .context("metrics buckets")?
        .install_recorder()
        .context("install the metrics recorder")?;
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
                let stop = stopped(stop_rx.clone());
                let (zombie_tx, zombie_rx) = tokio::sync::mpsc::channel(1024);
                tokio::spawn(reap_zombies(
                    store.clone(),
                    drivers.compute.clone(),
                    zombie_rx,
                ));
                tasks.spawn(async move {
                    octavia_health::run(receiver_store, settings, Some(zombie_tx), stop)
                        .await
                        .context("run the heartbeat receiver")
                });
                // The stale checker runs only beside a receiver: without heartbeats every
                // amphora would look silent.
                let store = store.clone();
                let stop = stopped(stop_rx.clone());
                let stale = crate::settings::stale_settings(&config);
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
            octavia_housekeeping::run(store, settings, stop).await;
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
