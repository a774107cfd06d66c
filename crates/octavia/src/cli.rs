//! Command-line entry points of the binaries.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::runtime::{self, Role};

/// Default configuration file, as Octavia's.
pub const DEFAULT_CONFIG: &str = "/etc/octavia/octavia.toml";

#[derive(Debug, Parser)]
#[command(
    name = "octavia",
    version,
    about = "octavia-rs: load balancing as a service"
)]
struct AllInOneArgs {
    /// Configuration file (TOML). Without it, built-in defaults apply.
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every control-plane role in this process (the default).
    Run,
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Database tools.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// The local certificate authority.
    Certs {
        #[command(subcommand)]
        command: crate::ops::CertsCommand,
    },
    /// Amphora images (netns compute driver).
    Image {
        #[command(subcommand)]
        command: crate::ops::ImageCommand,
    },
    /// Amphorae: list them, isolate one (manual rotation).
    Amphora {
        #[command(subcommand)]
        command: crate::ops::AmphoraCommand,
    },
    /// Hypervisor hosts (netns compute driver): list them, lose one, bring it back.
    Host {
        #[command(subcommand)]
        command: crate::ops::HostCommand,
    },
    /// The heartbeat key: rotate it on every amphora without a failover, show its state.
    HeartbeatKey {
        #[command(subcommand)]
        command: crate::heartbeat_key::HeartbeatKeyCommand,
    },
    /// Tenant networks (netns network driver).
    Network {
        #[command(subcommand)]
        command: crate::ops::NetworkCommand,
    },
    /// Load-generate against a fresh all-in-one and print throughput and latency.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration file and print the effective configuration.
    Check,
    /// Print the sample configuration (every option, its doc and default).
    Sample,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Apply pending migrations and exit.
    Migrate,
}

#[derive(Debug, Parser)]
#[command(version)]
struct RoleArgs {
    /// Configuration file (TOML). Without it, built-in defaults apply.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => {
            let default = PathBuf::from(DEFAULT_CONFIG);
            if default.exists() {
                Ok(Config::load(&default)?)
            } else {
                Ok(Config::default())
            }
        }
    }
}

/// The file the configuration comes from, if any (what SIGHUP re-reads).
fn config_path(path: Option<&PathBuf>) -> Option<PathBuf> {
    match path {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `octavia`.
pub fn main_all_in_one() -> ExitCode {
    let args = AllInOneArgs::parse();
    report(all_in_one(args))
}

fn all_in_one(args: AllInOneArgs) -> anyhow::Result<()> {
    match args.command {
        Some(Command::Config {
            command: ConfigCommand::Sample,
        }) => {
            print!("{}", Config::sample());
            Ok(())
        }
        Some(Command::Config {
            command: ConfigCommand::Check,
        }) => {
            let config = load_config(args.config.as_ref())?;
            println!("configuration is valid");
            print!("{}", toml::to_string(&config)?);
            Ok(())
        }
        Some(Command::Db {
            command: DbCommand::Migrate,
        }) => {
            let config = load_config(args.config.as_ref())?;
            runtime::init_tracing();
            runtime::block_on(async {
                let store = runtime::open_store(&config).await?;
                store.migrate().await?;
                println!("database is up to date");
                Ok(())
            })
        }
        Some(Command::Bench(bench)) => crate::bench::run(bench),
        Some(Command::Certs { command }) => {
            crate::ops::certs(&load_config(args.config.as_ref())?, command)
        }
        Some(Command::Image { command }) => {
            crate::ops::image(&load_config(args.config.as_ref())?, command)
        }
        Some(Command::Amphora { command }) => {
            crate::ops::amphora(&load_config(args.config.as_ref())?, command)
        }
        Some(Command::Host { command }) => {
            crate::ops::host(&load_config(args.config.as_ref())?, command)
        }
        Some(Command::HeartbeatKey { command }) => {
            crate::heartbeat_key::run(&load_config(args.config.as_ref())?, command)
        }
        Some(Command::Network { command }) => {
            crate::ops::network(&load_config(args.config.as_ref())?, command)
        }
        Some(Command::Run) | None => {
            let config = load_config(args.config.as_ref())?;
            runtime::init_tracing();
            runtime::block_on(runtime::run_from(
                config_path(args.config.as_ref()),
                config,
                Role::AllInOne,
            ))
        }
    }
}

/// `octavia-api` and `octavia-worker`.
pub fn main_role(role: Role) -> ExitCode {
    let args = RoleArgs::parse();
    report((|| {
        let config = load_config(args.config.as_ref())?;
        runtime::init_tracing();
        runtime::block_on(runtime::run_from(
            config_path(args.config.as_ref()),
            config,
            role,
        ))
    })())
}
