//! `amphora-agent --config FILE`: the agent process inside an amphora.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// The amphora agent: mutual-TLS REST API, HAProxy lifecycle, heartbeats.
#[derive(Debug, Parser)]
#[command(name = "amphora-agent", version)]
struct Args {
    /// Configuration file (TOML with Octavia's amphora-agent.conf section and option names).
    #[arg(long, default_value = "/etc/octavia/amphora-agent.toml")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = amphora_agent::AgentConfig::load(&args.config)
        .with_context(|| format!("load {}", args.config.display()))?;
    let mut running = amphora_agent::start(config, Some(args.config))
        .await
        .context("start amphora agent")?;
    tokio::select! {
        _ = running.wait() => anyhow::bail!("agent server stopped"),
        _ = shutdown_signal() => {}
    }
    tracing::info!("shutting down; haproxy keeps serving");
    running.shutdown_gracefully(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Longest time in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
