//! Operator commands that act on the drivers' local state: the CA, amphora images and
//! tenant networks of the `netns` drivers.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use octavia_drivers::netns::NetworkSpec;

use crate::config::Config;
use crate::{rotate, settings};
use octavia_model::{JobState, Rotation};

/// `octavia certs ...`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create the local CA in `[certificates] ca_dir` (keeps an existing one) and print its files.
    Init,
    /// Every certificate with its expiry, soonest first: the CAs, the controller's client
    /// certificate, and each live amphora's certificate as recorded (`cert_expiration`).
    Status {
        /// `table` (default) or `json`.
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Replace the server CA without a failover: trust old + new, renew every amphora's
    /// certificate from the new CA, then retire the old one.
    RotateCa(crate::certs_rotate::RotateArgs),
    /// Replace the client CA and the controller's certificate without a failover: every
    /// amphora trusts old + new, the controller switches, then every amphora trusts the new.
    RotateClient(crate::certs_rotate::RotateArgs),
}

/// One line of `octavia certs status`.
#[derive(Debug, serde::Serialize)]
struct CertStatus {
    /// "server CA", "client CA", "controller client certificate" or "amphora".
    kind: String,
    /// The amphora id; empty for the others.
    id: String,
    /// The amphora's load balancer, if any.
    load_balancer_id: Option<String>,
    /// End of validity (UTC, RFC 3339); `None` when an amphora's is not recorded.
    expires_at: Option<String>,
    /// Seconds until then (negative once expired).
    seconds_left: Option<i64>,
    /// A renewal is queued or running (`cert_busy`).
    renewing: bool,
}

/// `octavia image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Register an amphora image: copies the agent binary into a new versioned image.
    Register {
        /// Tag(s) the image carries; `[controller_worker] amp_image_tag` selects the newest.
        #[arg(long = "tag", required = true)]
        tags: Vec<String>,
        /// The amphora-agent binary.
        path: PathBuf,
    },
    /// List registered images, newest first.
    List,
    /// Delete an image no amphora uses any more.
    Delete {
        /// Image id.
        id: String,
    },
}

/// `octavia amphora ...`.
#[derive(Debug, Subcommand)]
pub enum AmphoraCommand {
    /// List the live (not DELETED) amphorae, with the filters of the operator guide.
    List {
        /// Only this status (ALLOCATED, ERROR, FAILOVER_STOPPED, ...).
        #[arg(long)]
        status: Option<String>,
        /// Only this role (STANDALONE, MASTER, BACKUP).
        #[arg(long)]
        role: Option<String>,
        /// Only amphorae booted from this image id.
        #[arg(long)]
        image: Option<String>,
        /// Only amphorae on this hypervisor host.
        #[arg(long)]
        host: Option<String>,
        /// Only amphorae of this load balancer.
        #[arg(long)]
        loadbalancer: Option<String>,
        /// Only amphorae of a load balancer that are not on the image their replacement
        /// would boot (`amp_image_id`, else the newest image of their tag), with the image
        /// they should be on.
        #[arg(long)]
        image_outdated: bool,
        /// Output format.
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Replace outdated amphorae with amphorae on the current image: queues one amphora
    /// failover each (class Operator: behind automatic failovers and tenant operations),
    /// BACKUP before MASTER and one amphora of a load balancer at a time, then shows the
    /// progress until done. Ctrl-C stops watching; the queued rotations go on.
    #[command(group(clap::ArgGroup::new("what").required(true)
        .args(["all_outdated", "loadbalancer", "amphora", "cancel"])))]
    Rotate {
        /// Every outdated amphora.
        #[arg(long)]
        all_outdated: bool,
        /// The outdated amphorae of this load balancer.
        #[arg(long)]
        loadbalancer: Option<String>,
        /// This amphora (when it is outdated).
        #[arg(long)]
        amphora: Option<String>,
        /// At most this many rotations start per minute.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        rate: Option<u32>,
        /// Print the plan; queue nothing.
        #[arg(long)]
        dry_run: bool,
        /// Withdraw every queued rotation that has not started (running ones finish).
        #[arg(long, conflicts_with_all = ["rate", "dry_run"])]
        cancel: bool,
    },
    /// Shut the amphora's management port (the guide's manual rotation): its heartbeats
    /// stop and the health manager fails it over.
    Isolate {
        /// Amphora id.
        id: String,
    },
}

/// How a listing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a header.
    Table,
    /// One JSON array.
    Json,
}

/// `octavia host ...` (netns compute driver).
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// The hosts amphorae are placed on: zone, state, number of amphorae.
    List,
    /// Lose a host, as a hypervisor losing power: every amphora on it dies at once (all
    /// processes killed, namespaces and interfaces gone) and nothing is placed on it until
    /// `host recover`. The health manager fails the amphorae over onto the other hosts.
    Fail {
        /// Host name (one of `[netns] hosts`).
        host: String,
    },
    /// Put a failed host back into service.
    Recover {
        /// Host name.
        host: String,
    },
}

/// `octavia network ...`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a tenant network (a bridge on this host) with one IPv4 subnet.
    Create {
        /// Unique name.
        name: String,
        /// IPv4 CIDR of its subnet, e.g. 10.0.0.0/24.
        #[arg(long)]
        cidr: String,
        /// Gateway address inside the CIDR (held by the host side of the bridge).
        #[arg(long)]
        gateway: Option<String>,
        /// Bridge name (at most 15 characters); default derived from the id.
        #[arg(long)]
        bridge: Option<String>,
    },
    /// List tenant networks.
    List,
    /// Show one network (by id or name) with its allocated addresses.
    Show {
        /// Network id or name.
        network: String,
    },
    /// Delete a network (refused while addresses are allocated on it).
    Delete {
        /// Network id or name.
        network: String,
    },
    /// Reserve an address on a network for a server outside any amphora (e.g. a member);
    /// prints the address.
    ReserveAddress {
        /// Network id or name.
        network: String,
        /// What the address is for.
        #[arg(long, default_value = "member server")]
        description: String,
    },
    /// Release an address reserved with `reserve-address`, by its port id.
    ReleaseAddress {
        /// Port id printed by `show`.
        port_id: String,
    },
}

/// Run `octavia certs ...`.
pub fn certs(config: &Config, command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init => {
            let ca = settings::certificate_authority(config)?;
            println!("certificate authority ready in {}", ca.dir().display());
            Ok(())
        }
        CertsCommand::Status { format } => certs_status(config, format),
        CertsCommand::RotateCa(args) => {
            crate::certs_rotate::run(config, octavia_drivers::certs::CaRole::Server, args)
        }
        CertsCommand::RotateClient(args) => {
            crate::certs_rotate::run(config, octavia_drivers::certs::CaRole::Client, args)
        }
    }
}

/// Refuse a command that needs the CA before `octavia certs init` made one.
pub(crate) fn require_ca(dir: &std::path::Path) -> anyhow::Result<()> {
    let empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    anyhow::ensure!(
        !empty,
        "no certificate authority in {} ([certificates] ca_dir): run `octavia certs init`",
        dir.display()
    );
    Ok(())
}

fn certs_status(config: &Config, format: Format) -> anyhow::Result<()> {
    require_ca(std::path::Path::new(&config.certificates.ca_dir))?;
    let ca = settings::certificate_authority(config)?;
    let now = octavia_model::now();
    let line = |kind: &str,
                id: String,
                lb: Option<String>,
                at: Option<octavia_model::Timestamp>,
                renewing| CertStatus {
        kind: kind.into(),
        id,
        load_balancer_id: lb,
        expires_at: at.map(|t| t.and_utc().to_rfc3339()),
        seconds_left: at.map(|t| (t - now).num_seconds()),
        renewing,
    };
    let mut rows = Vec::new();
    // A CA file holds several certificates during a rotation: one line each.
    let mut pems = Vec::new();
    for (kind, bundle) in [
        ("server CA", ca.server_ca_pem()),
        ("client CA", ca.client_ca_pem()),
    ] {
        for pem in octavia_drivers::certs::pem_certs(&bundle)? {
            pems.push((kind, pem));
        }
    }
    pems.push((
        "controller client certificate",
        ca.controller_identity().cert_pem,
    ));
    for (kind, pem) in pems {
        let at = octavia_drivers::certs::cert_expiration(&pem)
            .with_context(|| format!("read the {kind}"))?;
        rows.push(line(kind, String::new(), None, Some(at), false));
    }
    let amphorae = crate::runtime::block_on_value(async {
        let store = crate::runtime::open_store(config).await?;
        store.migrate().await?;
        Ok(store
            .list_amphorae(&octavia_db::ListQuery::default())
            .await?)
    })?;
    for a in amphorae
        .into_iter()
        .filter(|a| a.status != octavia_model::ProvisioningStatus::Deleted)
    {
        rows.push(line(
            "amphora",
            a.id.to_string(),
            a.load_balancer_id.map(|l| l.to_string()),
            a.cert_expiration,
            a.cert_busy,
        ));
    }
    // Soonest first; an amphora with no recorded expiry first of all (it is renewed at the
    // housekeeper's next look).
    rows.sort_by_key(|r| r.seconds_left.unwrap_or(i64::MIN));
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<30}  {:<36}  {:<25}  {:>10}  renewing",
        "certificate", "amphora", "expires", "days left"
    );
    for r in &rows {
        println!(
            "{:<30}  {:<36}  {:<25}  {:>10}  {}",
            r.kind,
            if r.id.is_empty() { "-" } else { &r.id },
            r.expires_at.as_deref().unwrap_or("not recorded"),
            r.seconds_left
                .map(|s| format!("{:.1}", s as f64 / 86_400.0))
                .unwrap_or_else(|| "-".into()),
            if r.renewing { "yes" } else { "no" }
        );
    }
    Ok(())
}

/// Run `octavia image ...`.
pub fn image(config: &Config, command: ImageCommand) -> anyhow::Result<()> {
    let registry = settings::image_registry(config)?;
    match command {
        ImageCommand::Register { tags, path } => {
            let image = registry
                .register(&path, &tags)
                .with_context(|| format!("register {}", path.display()))?;
            println!("{}", image.id);
            Ok(())
        }
        ImageCommand::List => {
            println!(
                "{:<36}  {:<20}  {:<25}  {:<12}  version",
                "id", "tags", "created_at", "sha256"
            );
            for i in registry.list()? {
                println!(
                    "{:<36}  {:<20}  {:<25}  {:<12}  {}",
                    i.id,
                    i.tags.join(","),
                    i.created_at,
                    &i.sha256[..i.sha256.len().min(12)],
                    i.version.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        ImageCommand::Delete { id } => {
            let users = crate::runtime::block_on_value(async {
                let store = crate::runtime::open_store(config).await?;
                store.migrate().await?;
                let q = octavia_db::ListQuery {
                    filters: vec![octavia_db::Filter {
                        column: "image_id".into(),
                        value: octavia_db::FilterValue::Text(id.clone()),
                    }],
                    ..octavia_db::ListQuery::default()
                };
                let amps = store.list_amphorae(&q).await?;
                Ok(amps
                    .into_iter()
                    .filter(|a| a.status != octavia_model::ProvisioningStatus::Deleted)
                    .count())
            })?;
            if users > 0 {
                anyhow::bail!("image {id} is used by {users} amphorae; fail them over first");
            }
            registry.delete(&id)?;
            println!("deleted image {id}");
            Ok(())
        }
    }
}

/// Run `octavia network ...`.
pub fn network(config: &Config, command: NetworkCommand) -> anyhow::Result<()> {
    let networks = settings::netns_network(config)?;
    match command {
        NetworkCommand::Create {
            name,
            cidr,
            gateway,
            bridge,
        } => {
            let net = networks.create_network(&NetworkSpec {
                name,
                bridge,
                cidr,
                gateway,
            })?;
            println!("network_id {}", net.id);
            println!("subnet_id  {}", net.subnet_id);
            println!("bridge     {}", net.bridge);
            println!("cidr       {}", net.cidr);
            println!("gateway    {}", net.gateway.as_deref().unwrap_or("-"));
            Ok(())
        }
        NetworkCommand::List => {
            println!(
                "{:<36}  {:<16}  {:<36}  {:<18}  {:<15}  bridge",
                "network_id", "name", "subnet_id", "cidr", "gateway"
            );
            for n in networks.list_networks()? {
                println!(
                    "{:<36}  {:<16}  {:<36}  {:<18}  {:<15}  {}",
                    n.id,
                    n.name,
                    n.subnet_id,
                    n.cidr,
                    n.gateway.as_deref().unwrap_or("-"),
                    n.bridge
                );
            }
            Ok(())
        }
        NetworkCommand::Show { network } => {
            let net = networks
                .find_network(&network)?
                .with_context(|| format!("no network {network:?}"))?;
            println!("{}", serde_json::to_string_pretty(&net)?);
            for p in networks.ports()?.iter().filter(|p| p.network_id == net.id) {
                println!("{}", serde_json::to_string(p)?);
            }
            Ok(())
        }
        NetworkCommand::Delete { network } => {
            if networks.delete_network(&network)? {
                println!("deleted network {network}");
                Ok(())
            } else {
                anyhow::bail!("no network {network:?}")
            }
        }
        NetworkCommand::ReserveAddress {
            network,
            description,
        } => {
            let port = networks.reserve_address(&network, &description)?;
            println!("{} {}", port.ip_address, port.id);
            Ok(())
        }
        NetworkCommand::ReleaseAddress { port_id } => {
            if networks.release_address(&port_id)? {
                println!("released {port_id}");
                Ok(())
            } else {
                anyhow::bail!("no port {port_id:?}")
            }
        }
    }
}

pub fn amphora(config: &Config, command: AmphoraCommand) -> anyhow::Result<()> {
    let driver_set = settings::drivers(config)?;
    match command {
        AmphoraCommand::List {
            status,
            role,
            image,
            host,
            loadbalancer,
            image_outdated: true,
            format,
        } => {
            let compute = driver_set.drivers.compute.clone();
            let flow_settings = settings::flow_settings(config);
            let rows = crate::runtime::block_on_value(async {
                let store = crate::runtime::open_store(config).await?;
                store.migrate().await?;
                crate::rotate::outdated(&store, compute.as_ref(), &flow_settings).await
            })?;
            let rows: Vec<_> = rotate::plan(rows)
                .into_iter()
                .filter(|a| {
                    let is = |want: &Option<String>, have: String| {
                        want.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(&have))
                    };
                    is(&status, a.status.to_string())
                        && is(&role, a.role.map(|r| r.to_string()).unwrap_or_default())
                        && is(&image, a.image_id.clone().unwrap_or_default())
                        && is(&loadbalancer, a.loadbalancer_id.to_string())
                        && is(&host, a.host.clone().unwrap_or_default())
                })
                .collect();
            print_outdated(&rows, format)
        }
        AmphoraCommand::List {
            status,
            role,
            image,
            host,
            loadbalancer,
            image_outdated: false,
            format,
        } => {
            let mut filters = Vec::new();
            for (column, value) in [
                ("status", status.map(|s| s.to_ascii_uppercase())),
                ("role", role.map(|s| s.to_ascii_uppercase())),
                ("image_id", image),
                ("load_balancer_id", loadbalancer),
            ] {
                if let Some(value) = value {
                    filters.push(octavia_db::Filter {
                        column: column.into(),
                        value: octavia_db::FilterValue::Text(value),
                    });
                }
            }
            let compute = driver_set.drivers.compute.clone();
            let rows = crate::runtime::block_on_value(async {
                let store = crate::runtime::open_store(config).await?;
                store.migrate().await?;
                let q = octavia_db::ListQuery {
                    filters,
                    ..octavia_db::ListQuery::default()
                };
                let mut rows = Vec::new();
                for a in store.list_amphorae(&q).await? {
                    let on = match &a.compute_id {
                        Some(c) => compute.instance(c).await.ok().and_then(|i| i.host),
                        None => None,
                    };
                    rows.push((a, on));
                }
                Ok(rows)
            })?;
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|(_, on)| host.as_ref().is_none_or(|h| on.as_ref() == Some(h)))
                .collect();
            if format == Format::Json {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(a, on)| {
                        serde_json::json!({
                            "id": a.id, "loadbalancer_id": a.load_balancer_id,
                            "compute_id": a.compute_id, "lb_network_ip": a.lb_network_ip,
                            "role": a.role.map(|r| r.to_string()),
                            "status": a.status.to_string(), "image_id": a.image_id,
                            "host": on,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!(
                "{:<36}  {:<16}  {:<15}  {:<10}  {:<16}  {:<36}  host",
                "id", "compute_id", "lb_network_ip", "role", "status", "image"
            );
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            for (a, on) in rows {
                println!(
                    "{:<36}  {:<16}  {:<15}  {:<10}  {:<16}  {:<36}  {}",
                    a.id,
                    dash(&a.compute_id),
                    dash(&a.lb_network_ip),
                    a.role.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                    a.status,
                    dash(&a.image_id),
                    dash(&on)
                );
            }
            Ok(())
        }
        AmphoraCommand::Rotate {
            all_outdated,
            loadbalancer,
            amphora,
            rate,
            dry_run,
            cancel,
        } => rotate_amphorae(
            config,
            driver_set.drivers.compute.clone(),
            all_outdated,
            loadbalancer,
            amphora,
            rate,
            dry_run,
            cancel,
        ),
        AmphoraCommand::Isolate { id } => {
            let parts = driver_set.netns.as_ref().ok_or_else(|| {
                anyhow::anyhow!("isolate needs the netns compute driver ([controller_worker])")
            })?;
            let amp_id: octavia_model::AmphoraId = id
                .parse()
                .map_err(|_| anyhow::anyhow!("'{id}' is not an amphora id"))?;
            let amp = crate::runtime::block_on_value(async {
                let store = crate::runtime::open_store(config).await?;
                Ok(store.get_amphora(amp_id).await?)
            })?
            .filter(|a| a.status != octavia_model::ProvisioningStatus::Deleted)
            .ok_or_else(|| anyhow::anyhow!("amphora {id} not found"))?;
            let compute_id = amp
                .compute_id
                .ok_or_else(|| anyhow::anyhow!("amphora {id} has no compute instance"))?;
            let port = parts.compute.isolate(&compute_id)?;
            println!(
                "amphora {id}: management port {port} is down; the health manager fails it \
                 over after [health_manager] heartbeat_timeout"
            );
            Ok(())
        }
    }
}

/// Print the rows of `amphora list --image-outdated`.
fn print_outdated(rows: &[rotate::OutdatedAmphora], format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    println!(
        "{:<36}  {:<36}  {:<10}  {:<16}  {:<36}  {:<36}  host",
        "id", "loadbalancer_id", "role", "status", "image", "current_image"
    );
    for a in rows {
        println!(
            "{:<36}  {:<36}  {:<10}  {:<16}  {:<36}  {:<36}  {}",
            a.id,
            a.loadbalancer_id,
            a.role.map_or("-".to_string(), |r| r.to_string()),
            a.status,
            a.image_id.as_deref().unwrap_or("-"),
            a.current_image_id,
            a.host.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// `octavia amphora rotate ...`.
#[allow(clippy::too_many_arguments)]
fn rotate_amphorae(
    config: &Config,
    compute: std::sync::Arc<dyn octavia_drivers::ComputeDriver>,
    all_outdated: bool,
    loadbalancer: Option<String>,
    amphora: Option<String>,
    rate: Option<u32>,
    dry_run: bool,
    cancel: bool,
) -> anyhow::Result<()> {
    let flow_settings = settings::flow_settings(config);
    crate::runtime::block_on(async move {
        let store = crate::runtime::open_store(config).await?;
        store.migrate().await?;
        if cancel {
            let n = store.cancel_rotations(None).await?;
            println!("withdrew {n} queued rotations; those already running finish");
            return Ok(());
        }
        if all_outdated {
            // Spares are not failed over: they are deleted and the pool builds new ones.
            let spares = rotate::outdated_spares(&store, compute.as_ref(), &flow_settings).await?;
            if !spares.is_empty() && dry_run {
                println!(
                    "{} spare amphorae on an outdated image would be deleted (the spare pool                      rebuilds them on the current image)",
                    spares.len()
                );
            } else if !spares.is_empty() {
                let retired = store.retire_spares(&spares).await?;
                println!(
                    "{} spare amphorae on an outdated image deleted; the spare pool rebuilds                      them on the current image",
                    retired.len()
                );
            }
        }
        let outdated = rotate::outdated(&store, compute.as_ref(), &flow_settings).await?;
        let busy: std::collections::BTreeSet<octavia_model::AmphoraId> = store
            .rotation_jobs(None)
            .await?
            .iter()
            .filter(|j| matches!(j.state, JobState::Queued | JobState::Running))
            .filter_map(|j| j.spec.amphora_id)
            .collect();
        let selected: Vec<_> = outdated
            .into_iter()
            .filter(|a| {
                all_outdated
                    || loadbalancer.as_deref() == Some(a.loadbalancer_id.to_string().as_str())
                    || amphora.as_deref() == Some(a.id.to_string().as_str())
            })
            .collect();
        let (queued, todo): (Vec<_>, Vec<_>) =
            selected.into_iter().partition(|a| busy.contains(&a.id));
        for a in &queued {
            println!("amphora {}: a rotation is already queued", a.id);
        }
        let todo = rotate::plan(todo);
        if todo.is_empty() {
            println!("nothing to rotate: the selected amphorae are on their current image");
            return Ok(());
        }
        println!("plan ({} amphorae, in this order):", todo.len());
        print_outdated(&todo, Format::Table)?;
        if dry_run {
            println!("dry run: nothing queued");
            return Ok(());
        }
        let batch = Rotation {
            batch: uuid::Uuid::new_v4(),
            rate_per_minute: rate,
        };
        let ids: Vec<_> = todo.iter().map(|a| a.id).collect();
        store.queue_rotations(batch, &ids).await?;
        println!(
            "queued {} rotations (batch {}); Ctrl-C stops watching and leaves them queued, \
             `octavia amphora rotate --cancel` withdraws those not started",
            ids.len(),
            batch.batch
        );
        let plan = todo.into_iter().map(|a| (a.id, a)).collect();
        let (progress, interrupted) = rotate::watch(
            &store,
            batch.batch,
            &plan,
            std::time::Duration::from_secs(1),
        )
        .await?;
        if interrupted {
            println!(
                "stopped watching: {} of {} rotations finished; the rest run on",
                progress.finished, progress.total
            );
            return Ok(());
        }
        if !progress.failures.is_empty() {
            anyhow::bail!(
                "{} of {} rotations failed (see above; a failed rotation leaves its \
                 amphora ERROR)",
                progress.failures.len(),
                progress.total
            );
        }
        println!("done: {} amphorae rotated", progress.total);
        Ok(())
    })
}

pub fn host(config: &Config, command: HostCommand) -> anyhow::Result<()> {
    let driver_set = settings::drivers(config)?;
    let parts = driver_set.netns.as_ref().ok_or_else(|| {
        anyhow::anyhow!("host commands need the netns compute driver ([controller_worker])")
    })?;
    match command {
        HostCommand::List => {
            println!("{:<20}  {:<16}  {:<7}  amphorae", "host", "zone", "state");
            for h in parts.compute.hosts()? {
                println!(
                    "{:<20}  {:<16}  {:<7}  {}",
                    h.name,
                    h.zone.as_deref().unwrap_or("-"),
                    if h.failed { "failed" } else { "up" },
                    h.instances
                );
            }
            Ok(())
        }
        HostCommand::Fail { host } => {
            let down = parts.compute.fail_host(&host)?;
            println!(
                "host {host} failed: {} amphorae down ({}); nothing is placed on it until \
                 `octavia host recover {host}`",
                down.len(),
                if down.is_empty() {
                    "-".to_string()
                } else {
                    down.join(", ")
                }
            );
            Ok(())
        }
        HostCommand::Recover { host } => {
            parts.compute.recover_host(&host)?;
            println!("host {host} is back in service");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: super::AmphoraCommand,
    }

    fn parses(args: &[&str]) -> bool {
        Cli::try_parse_from(std::iter::once("amphora").chain(args.iter().copied())).is_ok()
    }

    #[test]
    fn rotate_needs_a_selection_and_a_positive_rate() {
        assert!(!parses(&["rotate"]), "nothing selected");
        assert!(!parses(&["rotate", "--rate", "5"]), "nothing selected");
        assert!(!parses(&["rotate", "--all-outdated", "--rate", "0"]));
        assert!(!parses(&["rotate", "--cancel", "--dry-run"]));
        assert!(parses(&[
            "rotate",
            "--all-outdated",
            "--rate",
            "6",
            "--dry-run"
        ]));
        assert!(parses(&["rotate", "--loadbalancer", "lb-1"]));
        assert!(parses(&["rotate", "--cancel"]));
        assert!(parses(&["list", "--image-outdated", "-f", "json"]));
        assert!(!parses(&["list", "-f", "yaml"]));
    }
}
