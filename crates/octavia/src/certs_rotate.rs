//! `octavia certs rotate-ca` and `octavia certs rotate-client`: replace the server CA or the
//! client CA without failing over an amphora (the phases are in
//! `octavia_drivers::ca_rotation`). The command runs the phases itself: the CA files change
//! in `[certificates] ca_dir` (every control-plane process of the machine follows them at
//! its next connection), amphora certificates are renewed by `rotate_certificate_amphora`
//! jobs the workers run, and client CA bundles are pushed to the agents by this command
//! (`PUT /1.0/client_ca`), throttled to `--rate` amphorae a minute. Its state is saved in
//! the CA directory after every step, so a run that is interrupted (Ctrl-C, crash) goes on
//! where it stopped when it is started again.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use octavia_db::{ListQuery, Store};
use octavia_drivers::ca_rotation::{self, Phase, RotationLock, RotationState};
use octavia_drivers::certs::{self, CaRole};
use octavia_drivers::{AgentClient, AgentClientConfig, CertificateAuthority};
use octavia_model::{Amphora, AmphoraId, JobId, JobState, ProvisioningStatus};

use crate::config::Config;
use crate::settings;

/// How often the per-amphora phases look again at amphorae they wait for.
const POLL: Duration = Duration::from_secs(1);

/// The options of both commands.
#[derive(Debug, Clone, clap::Args)]
pub struct RotateArgs {
    /// Amphorae per minute to renew or push to (the throttle of a large fleet).
    #[arg(long, default_value_t = 60)]
    pub rate: u32,
    /// Say what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Show the rotation in progress (phase, done/total, failures) and change nothing.
    #[arg(long)]
    pub status: bool,
}

fn command(role: CaRole) -> &'static str {
    match role {
        CaRole::Server => "rotate-ca",
        CaRole::Client => "rotate-client",
    }
}

/// Amphorae a phase must do: every one that is not deleted, being deleted or in ERROR.
fn live(amphorae: Vec<Amphora>) -> Vec<Amphora> {
    amphorae
        .into_iter()
        .filter(|a| {
            !matches!(
                a.status,
                ProvisioningStatus::Deleted
                    | ProvisioningStatus::PendingDelete
                    | ProvisioningStatus::Error
            )
        })
        .collect()
}

/// An amphora an agent call can reach now: serving, a spare, or kept out of failovers
/// (others are still being built: waited for).
fn reachable(a: &Amphora) -> bool {
    matches!(
        a.status,
        ProvisioningStatus::Allocated
            | ProvisioningStatus::Ready
            | ProvisioningStatus::FailoverStopped
    ) && a.lb_network_ip.is_some()
}

async fn live_amphorae(store: &Store) -> anyhow::Result<Vec<Amphora>> {
    Ok(live(store.list_amphorae(&ListQuery::default()).await?))
}

/// Run `octavia certs rotate-ca` (`role` Server) or `rotate-client` (Client).
pub fn run(config: &Config, role: CaRole, args: RotateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1 amphora a minute");
    let dir = Path::new(&config.certificates.ca_dir).to_path_buf();
    crate::ops::require_ca(&dir)?;
    let state = ca_rotation::load_state(&dir)?;
    if let Some(s) = &state {
        anyhow::ensure!(
            s.role == role,
            "a rotation of the {} CA is in progress (phase {:?}); finish it first with \
             `octavia certs {}`",
            match s.role {
                CaRole::Server => "server",
                CaRole::Client => "client",
            },
            s.phase,
            command(s.role)
        );
    }
    let ca = Arc::new(settings::certificate_authority(config)?);
    crate::runtime::block_on(async move {
        let store = crate::runtime::open_store(config).await?;
        store.migrate().await?;
        if args.status || args.dry_run {
            return show(&store, role, state.as_ref(), args.dry_run, args.rate).await;
        }
        let _lock = RotationLock::acquire(&dir)?;
        // Read again under the lock: the run that held it may have moved on.
        let mut state = match ca_rotation::load_state(&dir)? {
            Some(s) => {
                println!(
                    "resuming the {} started at {} at phase {:?}",
                    command(role),
                    s.started_at,
                    s.phase
                );
                s
            }
            None => RotationState::new(role, octavia_model::now().and_utc().to_rfc3339()),
        };
        ca_rotation::save_state(&dir, &state)?;
        let mut rotation = Rotation {
            config,
            store,
            ca,
            dir: &dir,
            every: Duration::from_secs_f64(60.0 / f64::from(args.rate)),
        };
        let interrupt = tokio::signal::ctrl_c();
        tokio::pin!(interrupt);
        tokio::select! {
            r = rotation.drive(&mut state) => r,
            r = &mut interrupt => {
                r.context("listen for Ctrl-C")?;
                let phase = ca_rotation::load_state(&dir)?.map(|s| s.phase);
                anyhow::bail!(
                    "interrupted at phase {phase:?}; run `octavia certs {}` again to continue",
                    command(role)
                )
            }
        }
    })
}

/// `--status` and `--dry-run`.
async fn show(
    store: &Store,
    role: CaRole,
    state: Option<&RotationState>,
    dry_run: bool,
    rate: u32,
) -> anyhow::Result<()> {
    let amphorae = live_amphorae(store).await?;
    let total = amphorae.len();
    match state {
        None if !dry_run => println!("no {} in progress", command(role)),
        None => {
            let minutes = (total as f64 / f64::from(rate)).ceil();
            println!("would run, in order (no amphora is failed over):");
            for (i, phase) in Phase::all(role)
                .iter()
                .filter(|p| **p != Phase::Done)
                .enumerate()
            {
                let what = if phase.per_amphora() {
                    format!(
                        "{} ({total} amphorae now, at most {rate} a minute: about {minutes} min)",
                        phase.describe()
                    )
                } else {
                    phase.describe().to_string()
                };
                println!("  {}. {what}", i + 1);
            }
        }
        Some(s) => {
            let (n, of) = s.phase.number(role);
            let ids: Vec<String> = amphorae.iter().map(|a| a.id.to_string()).collect();
            let remaining = s.remaining(ids.iter().map(String::as_str)).len();
            println!(
                "{} started {}: phase {n}/{of}: {}; amphorae done {}/{total}; failures: {}",
                command(role),
                s.started_at,
                s.phase.describe(),
                total - remaining,
                s.failures.len()
            );
            for (amp, e) in &s.failures {
                println!("  failed: amphora {amp}: {e}");
            }
            if dry_run {
                println!("a run now would continue from this phase");
            }
        }
    }
    Ok(())
}

struct Rotation<'a> {
    config: &'a Config,
    store: Store,
    ca: Arc<CertificateAuthority>,
    dir: &'a Path,
    /// Pause between two amphorae queued or pushed to (`--rate`).
    every: Duration,
}

impl Rotation<'_> {
    /// Run the phases from `state.phase` to the end, saving the state after every step.
    async fn drive(&mut self, state: &mut RotationState) -> anyhow::Result<()> {
        let role = state.role;
        loop {
            let (n, of) = state.phase.number(role);
            if state.phase != Phase::Done {
                println!("phase {n}/{of}: {}", state.phase.describe());
            }
            match state.phase {
                Phase::Introduce => {
                    certs::stage_new_ca(self.dir, role)?;
                    certs::introduce_new_ca(self.dir, role)?;
                }
                Phase::Renew => self.renew(state).await?,
                Phase::PushBundle | Phase::PushNew => self.push_client_ca(state).await?,
                Phase::SwitchController => {
                    if certs::reissue_controller_cert(self.dir)? {
                        println!("controller client certificate now signed by the new client CA");
                    }
                }
                Phase::Retire => certs::retire_old_ca(self.dir, role)?,
                Phase::Done => {
                    ca_rotation::clear_state(self.dir)?;
                    println!("done: {} finished", command(role));
                    return Ok(());
                }
            }
            state.advance();
            ca_rotation::save_state(self.dir, state)?;
        }
    }

    /// An agent client with the CA's current trust and identity and the configured port.
    fn agent_client(&self, server_ca_pem: Option<String>) -> anyhow::Result<AgentClient> {
        let h = &self.config.haproxy_amphora;
        let mut c = AgentClientConfig::from_ca(&self.ca);
        c.port = h.bind_port;
        c.connect_timeout = h.rest_request_conn_timeout.min(Duration::from_secs(5));
        c.read_timeout = h.rest_request_read_timeout.min(Duration::from_secs(30));
        c.max_retries = 0;
        Ok(match server_ca_pem {
            Some(pem) => {
                c.server_ca_pem = pem;
                AgentClient::new(c)?
            }
            None => AgentClient::following(c, self.ca.clone())?,
        })
    }

    fn progress(
        &self,
        state: &RotationState,
        (total, remaining): (usize, usize),
        extra: &str,
        last: &mut String,
    ) {
        let line = format!(
            "{}: {}/{total} amphorae done{extra}; failures: {}",
            state.phase.describe(),
            total - remaining,
            state.failures.len()
        );
        if *last != line {
            println!("{line}");
            *last = line;
        }
    }

    /// Phase Renew: every live amphora serves a certificate of the new server CA. An
    /// amphora that does not (a client trusting only the new CA is refused) gets a
    /// `rotate_certificate_amphora` job; the new CA signs every certificate issued since
    /// the introduction, so amphorae built meanwhile pass at once.
    async fn renew(&mut self, state: &mut RotationState) -> anyhow::Result<()> {
        let new_only = certs::stage_new_ca(self.dir, CaRole::Server)?;
        let probe = self.agent_client(Some(new_only))?;
        let mut jobs: HashMap<AmphoraId, JobId> = HashMap::new();
        let mut probed: HashSet<AmphoraId> = HashSet::new();
        let mut next_queue = tokio::time::Instant::now();
        let mut last = String::new();
        loop {
            let amphorae = live_amphorae(&self.store).await?;
            let mut waiting = 0usize;
            for a in &amphorae {
                let id = a.id.to_string();
                if state.done.contains(&id) {
                    continue;
                }
                if !reachable(a) {
                    waiting += 1;
                    continue;
                }
                if let Some(job) = jobs.get(&a.id).copied() {
                    match self.store.get_job(job).await?.map(|j| (j.state, j.error)) {
                        Some((JobState::Queued | JobState::Running, _)) => continue,
                        Some((JobState::Failed, error)) => {
                            let e = error.unwrap_or_else(|| "renewal job failed".into());
                            println!("renewal of amphora {id} failed: {e}");
                            state.failures.insert(id.clone(), e);
                        }
                        _ => {}
                    }
                    jobs.remove(&a.id);
                    probed.remove(&a.id);
                }
                if a.cert_busy {
                    // A renewal (the housekeeper's, or ours from an interrupted run) is
                    // running; it issues from the new CA too. Look once it ended.
                    probed.remove(&a.id);
                    continue;
                }
                if !probed.contains(&a.id) {
                    probed.insert(a.id);
                    if probe.check_reachable(a).await.is_ok() {
                        state.mark_done(&id);
                        ca_rotation::save_state(self.dir, state)?;
                        continue;
                    }
                }
                if tokio::time::Instant::now() < next_queue {
                    continue;
                }
                if let Some(job) = self.store.claim_certificate_renewal_of(a.id).await? {
                    jobs.insert(a.id, job);
                    next_queue = tokio::time::Instant::now() + self.every;
                }
            }
            let total = amphorae.len();
            let ids: Vec<String> = amphorae.iter().map(|a| a.id.to_string()).collect();
            let remaining = state.remaining(ids.iter().map(String::as_str)).len();
            self.progress(
                state,
                (total, remaining),
                &format!(", {} renewals running, {waiting} being built", jobs.len()),
                &mut last,
            );
            if remaining == 0 {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Phases PushBundle and PushNew: every live amphora gets the client CA file as it is
    /// now (`PUT /1.0/client_ca`). Amphorae still being built are waited for: they may have
    /// booted with the file as it was before.
    async fn push_client_ca(&mut self, state: &mut RotationState) -> anyhow::Result<()> {
        let pem = self.ca.client_ca_pem();
        let client = self.agent_client(None)?;
        let mut next_push = tokio::time::Instant::now();
        let mut last = String::new();
        loop {
            let amphorae = live_amphorae(&self.store).await?;
            let mut waiting = 0usize;
            for a in &amphorae {
                let id = a.id.to_string();
                if state.done.contains(&id) {
                    continue;
                }
                if !reachable(a) {
                    waiting += 1;
                    continue;
                }
                tokio::time::sleep_until(next_push).await;
                next_push = tokio::time::Instant::now() + self.every;
                match client.upload_client_ca(a, &pem).await {
                    Ok(()) => state.mark_done(&id),
                    Err(e) => {
                        if state.failures.get(&id) != Some(&e.to_string()) {
                            println!("amphora {id}: {e} (will try again)");
                        }
                        state.failures.insert(id, e.to_string());
                    }
                }
                ca_rotation::save_state(self.dir, state)?;
            }
            let total = amphorae.len();
            let ids: Vec<String> = amphorae.iter().map(|a| a.id.to_string()).collect();
            let remaining = state.remaining(ids.iter().map(String::as_str)).len();
            self.progress(
                state,
                (total, remaining),
                &format!(", {waiting} being built"),
                &mut last,
            );
            if remaining == 0 {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
