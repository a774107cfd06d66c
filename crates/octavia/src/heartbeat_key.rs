//! `octavia heartbeat-key rotate` and `status`: a new heartbeat key reaches every amphora
//! without a failover.
//!
//! A rotation, in the store's key ring (`octavia_db::heartbeat_key`): (1) the new key becomes
//! CURRENT and the old one PREVIOUS (both accepted); (2) the command waits until every
//! running health manager says it accepts the new key (each writes its ring at each
//! refresh), so no amphora signs with a key a receiver would refuse; (3) it queues an agent
//! configuration push (`update_amphora` job, class Operator: behind failovers and tenant
//! work; `--rate` per minute) for each live amphora, whose agent swaps its key live; (4) it
//! waits until every live amphora's newest heartbeat was verified with the new key; (5) the
//! old key is RETIRED and the health managers drop it at their next refresh. Amphorae built
//! meanwhile boot with the CURRENT key (the build step reads it). The rotation is state in
//! the database: Ctrl-C leaves the queued pushes to finish and the old key accepted, and
//! running `rotate` again resumes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use octavia_db::{AmphoraKeyReport, HeartbeatKey, HeartbeatKeyRing, HeartbeatKeyState, Store};
use octavia_health::keys::RING_SEEN_WITHIN;
use octavia_model::{AmphoraId, JobState, Timestamp};

use crate::config::Config;
use crate::ops::Format;

/// `octavia heartbeat-key ...`.
#[derive(Debug, Subcommand)]
pub enum HeartbeatKeyCommand {
    /// Replace the heartbeat key on every amphora without a failover: the health managers
    /// accept the old and the new key, the new key is pushed to each amphora (agent
    /// configuration update), and the old key is retired once every amphora reported with
    /// the new one. Shows progress; Ctrl-C stops watching (queued pushes finish), running
    /// it again resumes.
    Rotate {
        /// Read the new key from this file (surrounding whitespace ignored; 16 to 255
        /// printable ASCII characters). Without it, a random key is generated.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Start at most this many agent configuration pushes per minute.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        rate: Option<u32>,
        /// Show what would be done and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The keys (id, state, age; never the secrets), the rotation in progress, what each
    /// health manager accepts, and how many amphorae report with which key.
    Status {
        /// `table` (default) or `json`.
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// How long a rotation's lease on the database lasts without renewal (the command renews
/// it every poll): a command that died is replaced after this.
const LEASE: Duration = Duration::from_secs(30);
/// How long the health managers have to accept a new key before the command gives up.
const HEALTH_MANAGER_WAIT: Duration = Duration::from_secs(60);
/// How long after its push an amphora has to report with the new key.
const REPORT_GRACE: Duration = Duration::from_secs(60);
/// Time between two looks at the store.
const POLL: Duration = Duration::from_millis(500);

pub fn run(config: &Config, command: HeartbeatKeyCommand) -> anyhow::Result<()> {
    match command {
        HeartbeatKeyCommand::Rotate {
            key_file,
            rate,
            dry_run,
        } => {
            let new_key = key_file.as_deref().map(read_key_file).transpose()?;
            crate::runtime::block_on(rotate(config, new_key, rate, dry_run))
        }
        HeartbeatKeyCommand::Status { format } => crate::runtime::block_on(status(config, format)),
    }
}

/// A key from a file: trimmed, 16 to 255 printable ASCII characters (it is written into
/// TOML files and signs with its bytes).
pub fn read_key_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read the new heartbeat key from {}", path.display()))?;
    let key = text.trim();
    if key.len() < 16 || key.len() > 255 {
        anyhow::bail!(
            "the key in {} has {} characters; give 16 to 255",
            path.display(),
            key.len()
        );
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        anyhow::bail!(
            "the key in {} holds characters other than printable ASCII (no spaces)",
            path.display()
        );
    }
    Ok(key.to_string())
}

/// A random key: 64 hexadecimal characters (244 random bits).
fn generate_key() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The health managers (of `rings`, the running ones) that do not accept key `key` yet.
pub fn laggards(rings: &[HeartbeatKeyRing], key: i64) -> Vec<String> {
    rings
        .iter()
        .filter(|r| !r.accepted.contains(&key))
        .map(|r| r.health_manager.clone())
        .collect()
}

/// The health managers (of `rings`) that still accept key `key`.
pub fn still_accepting(rings: &[HeartbeatKeyRing], key: i64) -> Vec<String> {
    rings
        .iter()
        .filter(|r| r.accepted.contains(&key))
        .map(|r| r.health_manager.clone())
        .collect()
}

/// Where the push of key `key` stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Live amphorae.
    pub total: usize,
    /// Live amphorae whose newest heartbeat was verified with the key.
    pub reporting: usize,
    /// Amphorae whose push runs now.
    pub pushing: Vec<AmphoraId>,
    /// Amphorae whose push is queued.
    pub queued: usize,
    /// Amphorae to queue a push for (none queued or running, none done by this run).
    pub todo: Vec<AmphoraId>,
    /// Amphorae not on the key whose push failed in this run, or that did not report with
    /// the key within [`REPORT_GRACE`] of a push that succeeded, with the reason.
    pub failures: Vec<(AmphoraId, String)>,
}

impl Progress {
    /// From the live amphorae and the pushes queued since the rotation began (`jobs`);
    /// `run_start`: when this command started (older finished pushes are done again).
    pub fn of(
        key: i64,
        amphorae: &[AmphoraKeyReport],
        jobs: &[octavia_db::JobRecord],
        run_start: Timestamp,
        now: Timestamp,
    ) -> Progress {
        let mut last: BTreeMap<AmphoraId, &octavia_db::JobRecord> = BTreeMap::new();
        for j in jobs {
            if let Some(a) = j.spec.amphora_id {
                last.insert(a, j);
            }
        }
        let mut p = Progress {
            total: amphorae.len(),
            ..Progress::default()
        };
        for a in amphorae {
            if a.heartbeat_key_id == Some(key) {
                p.reporting += 1;
                continue;
            }
            match last.get(&a.amphora_id) {
                Some(j) if j.state == JobState::Queued => p.queued += 1,
                Some(j) if j.state == JobState::Running => p.pushing.push(a.amphora_id),
                Some(j) if j.created_at >= run_start && j.state == JobState::Failed => {
                    p.failures.push((
                        a.amphora_id,
                        j.error.clone().unwrap_or_else(|| "failed".into()),
                    ))
                }
                Some(j) if j.created_at >= run_start => {
                    if j.finished_at
                        .is_some_and(|f| (now - f).to_std().is_ok_and(|d| d > REPORT_GRACE))
                    {
                        p.failures.push((
                            a.amphora_id,
                            format!(
                                "pushed, but no heartbeat with the new key within {} s \
                                 (is the amphora heartbeating?)",
                                REPORT_GRACE.as_secs()
                            ),
                        ));
                    }
                }
                _ => p.todo.push(a.amphora_id),
            }
        }
        p
    }

    /// Every live amphora reports with the key.
    pub fn is_done(&self) -> bool {
        self.reporting == self.total
    }

    /// Nothing more will happen without the operator: every amphora not on the key failed.
    pub fn is_stuck(&self) -> bool {
        !self.is_done() && self.reporting + self.failures.len() == self.total
    }

    /// One line for the operator.
    pub fn line(&self, key: i64) -> String {
        let pushing = if self.pushing.is_empty() {
            "-".to_string()
        } else {
            self.pushing
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "amphorae reporting with key {key}: {}/{}; pushing: {pushing}; queued: {}; \
             failures: {}",
            self.reporting,
            self.total,
            self.queued,
            self.failures.len()
        )
    }
}

/// This command's name in the rotation lease.
fn owner(config: &Config) -> String {
    format!(
        "heartbeat-key-rotate@{}-{}",
        crate::settings::host(config),
        std::process::id()
    )
}

async fn rotate(
    config: &Config,
    new_key: Option<String>,
    rate: Option<u32>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let store = crate::runtime::open_store(config).await?;
    store.migrate().await?;
    let me = owner(config);
    let keys = store.accepted_heartbeat_keys().await?;
    let in_progress = keys.iter().any(|k| k.state == HeartbeatKeyState::Previous);
    let current = keys.iter().find(|k| k.state == HeartbeatKeyState::Current);
    if in_progress {
        let cur = current.context("a PREVIOUS heartbeat key without a CURRENT one")?;
        if new_key.as_deref().is_some_and(|k| k != cur.secret()) {
            anyhow::bail!(
                "a rotation to key {} is in progress; run `octavia heartbeat-key rotate` \
                 without --key-file to resume it (a second rotation starts only after it ends)",
                cur.id
            );
        }
    }
    if dry_run {
        let amphorae = store.amphora_heartbeat_keys().await?;
        let rings = store.heartbeat_key_rings(RING_SEEN_WITHIN).await?;
        if in_progress {
            println!(
                "would resume the rotation to key {}",
                current.map_or(0, |k| k.id)
            );
        } else {
            println!(
                "would add a new heartbeat key ({}) as CURRENT, the current one ({}) staying \
                 accepted until every amphora reports with the new one",
                if new_key.is_some() {
                    "from the key file"
                } else {
                    "generated"
                },
                current.map_or("the configuration's heartbeat_key".to_string(), |k| {
                    format!("key {}", k.id)
                })
            );
        }
        println!(
            "{} health managers must accept it first: {}",
            rings.len(),
            rings
                .iter()
                .map(|r| r.health_manager.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "{} live amphorae would get it through an agent configuration push ({})",
            amphorae.len(),
            rate.map_or("all queued at once".to_string(), |r| format!(
                "at most {r} per minute"
            ))
        );
        println!("dry run: nothing changed");
        return Ok(());
    }

    let key = match store.claim_heartbeat_key_rotation(&me, LEASE).await? {
        Some(k) => {
            println!(
                "resuming the rotation to heartbeat key {} (added {})",
                k.id,
                k.created_at.format("%F %T UTC")
            );
            k
        }
        None => {
            let bootstrap = config
                .health_manager
                .heartbeat_key
                .as_ref()
                .map(|k| k.0.clone())
                .context(
                    "[health_manager] heartbeat_key is not set: the amphorae's current key \
                     is unknown, so there is nothing to rotate from",
                )?;
            if store
                .heartbeat_key_rings(RING_SEEN_WITHIN)
                .await?
                .is_empty()
            {
                anyhow::bail!(
                    "no health manager recorded its heartbeat keys in the last {} s: start \
                     them (every health manager must accept the new key before amphorae get \
                     it) and run this again; nothing changed",
                    RING_SEEN_WITHIN.as_secs()
                );
            }
            let secret = new_key.unwrap_or_else(generate_key);
            let k = store
                .begin_heartbeat_key_rotation(&bootstrap, &secret, &me)
                .await?;
            println!(
                "added heartbeat key {} (CURRENT); the previous key stays accepted until \
                 every amphora reports with the new one",
                k.id
            );
            k
        }
    };
    let result = drive(&store, &me, &key, rate).await;
    if !matches!(result, Ok(Outcome::Done)) {
        // Another command may resume at once; the rotation itself stays in progress.
        if let Err(error) = store.release_heartbeat_key_rotation(&me).await {
            eprintln!(
                "warning: could not release the rotation lease ({error}); it expires in {} s",
                LEASE.as_secs()
            );
        }
    }
    match result? {
        Outcome::Done => Ok(()),
        Outcome::Interrupted => {
            // Counted now, not at the last poll: heartbeats went on meanwhile.
            let amphorae = store.amphora_heartbeat_keys().await?;
            let on_key = amphorae
                .iter()
                .filter(|a| a.heartbeat_key_id == Some(key.id))
                .count();
            println!(
                "stopped: {}/{} amphorae report with key {}; the queued pushes run on and both \
                 keys stay accepted; run `octavia heartbeat-key rotate` again to finish",
                on_key,
                amphorae.len(),
                key.id
            );
            Ok(())
        }
    }
}

enum Outcome {
    Done,
    Interrupted,
}

/// Phases 2 to 5 of a rotation to `key`, which `me` holds the lease of.
async fn drive(
    store: &Store,
    me: &str,
    key: &HeartbeatKey,
    rate: Option<u32>,
) -> anyhow::Result<Outcome> {
    // Listening from here on: a Ctrl-C at any time ends the command through its own path
    // (the lease released, what happened said), never by the default handler.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("listen for Ctrl-C")?;
    let renew = || async {
        store
            .claim_heartbeat_key_rotation(me, LEASE)
            .await?
            .context("the rotation ended while this command ran (another command finished it?)")
    };

    // 2. Every running health manager accepts the new key.
    let started = Instant::now();
    let mut last_line = String::new();
    loop {
        let rings = store.heartbeat_key_rings(RING_SEEN_WITHIN).await?;
        let late = laggards(&rings, key.id);
        let line = format!(
            "health managers accepting key {}: {}/{}{}",
            key.id,
            rings.len() - late.len(),
            rings.len(),
            if late.is_empty() {
                String::new()
            } else {
                format!(" (waiting for {})", late.join(", "))
            }
        );
        if line != last_line {
            println!("{line}");
            last_line = line;
        }
        if late.is_empty() && !rings.is_empty() {
            break;
        }
        if started.elapsed() > HEALTH_MANAGER_WAIT {
            anyhow::bail!(
                "{} did not accept key {} within {} s (running an older version, or cannot \
                 read the database?); no amphora was given the key. Fix or stop them and run \
                 this again to resume",
                if rings.is_empty() {
                    "no health manager is running: they".to_string()
                } else {
                    format!("health managers {}", late.join(", "))
                },
                key.id,
                HEALTH_MANAGER_WAIT.as_secs()
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = sigint.recv() => return Ok(Outcome::Interrupted),
        }
        renew().await?;
    }

    // 3 and 4. Push the key to every live amphora, wait until each reports with it.
    let run_start = octavia_model::now();
    let spacing = rate.map(|r| Duration::from_secs(60) / r);
    let mut next_push = Instant::now();
    let mut queued_here: BTreeSet<AmphoraId> = BTreeSet::new();
    let mut shown_failures = 0;
    let progress = loop {
        let amphorae = store.amphora_heartbeat_keys().await?;
        let jobs = store.agent_config_jobs_since(key.created_at).await?;
        let mut p = Progress::of(key.id, &amphorae, &jobs, run_start, octavia_model::now());
        for a in p.todo.clone() {
            if queued_here.contains(&a) || Instant::now() < next_push {
                continue;
            }
            match store.update_amphora_config(a).await {
                Ok(_) => {}
                // Deleted meanwhile (a failover): its replacement boots with the new key.
                Err(octavia_db::DbError::NotFound { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("queue the push to amphora {a}")),
            }
            queued_here.insert(a);
            p.queued += 1;
            if let Some(s) = spacing {
                next_push = Instant::now() + s;
            }
        }
        for (a, why) in p.failures.iter().skip(shown_failures) {
            println!("failed: amphora {a}: {why}");
        }
        shown_failures = shown_failures.max(p.failures.len());
        let line = p.line(key.id);
        if line != last_line {
            println!("{line}");
            last_line = line;
        }
        if p.is_done() {
            break p;
        }
        if p.is_stuck() {
            anyhow::bail!(
                "{} amphorae did not take key {} (see above); both keys stay accepted. Fix \
                 them (or fail them over: a replacement boots with the new key) and run \
                 `octavia heartbeat-key rotate` again to push to them again and finish",
                p.failures.len(),
                key.id
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = sigint.recv() => return Ok(Outcome::Interrupted),
        }
        renew().await?;
    };

    // 5. Retire the previous key; the health managers drop it at their next refresh.
    let retired = store.retire_previous_heartbeat_key(key.id).await?;
    let Some(old) = retired else {
        anyhow::bail!(
            "key {} is no longer the current key: another command changed the ring",
            key.id
        );
    };
    println!(
        "every amphora ({}) reports with key {}; key {old} retired",
        progress.total, key.id
    );
    let started = Instant::now();
    loop {
        let rings = store.heartbeat_key_rings(RING_SEEN_WITHIN).await?;
        let still = still_accepting(&rings, old);
        if still.is_empty() {
            break;
        }
        if started.elapsed() > HEALTH_MANAGER_WAIT {
            println!(
                "warning: health managers {} still accept key {old} after {} s; they drop it \
                 at their next refresh of the key ring",
                still.join(", "),
                HEALTH_MANAGER_WAIT.as_secs()
            );
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    println!("done: key {} is the only stored key accepted", key.id);
    Ok(Outcome::Done)
}

/// `octavia heartbeat-key status` as JSON.
#[derive(Debug, serde::Serialize)]
struct StatusReport {
    /// Every stored key, newest first (no secrets). Empty: the configuration's
    /// heartbeat_key is the current key.
    keys: Vec<KeyView>,
    /// The key a rotation in progress pushes; `None`: no rotation in progress.
    rotating_to: Option<i64>,
    /// The command driving it, if one runs.
    rotation_owner: Option<String>,
    /// The running health managers and the stored keys they accept.
    health_managers: Vec<HeartbeatKeyRing>,
    /// Live amphorae by the key their newest heartbeat was verified with ("config": a key
    /// of the configuration only; "none": no heartbeat recorded).
    amphorae_by_key: BTreeMap<String, usize>,
}

#[derive(Debug, serde::Serialize)]
struct KeyView {
    id: i64,
    state: HeartbeatKeyState,
    created_at: String,
    age_seconds: i64,
    retired_at: Option<String>,
}

async fn status(config: &Config, format: Format) -> anyhow::Result<()> {
    let store = crate::runtime::open_store(config).await?;
    store.migrate().await?;
    let t = octavia_model::now();
    let keys = store.heartbeat_keys().await?;
    let rings = store.heartbeat_key_rings(RING_SEEN_WITHIN).await?;
    let amphorae = store.amphora_heartbeat_keys().await?;
    let rotating = keys.iter().any(|k| k.state == HeartbeatKeyState::Previous);
    let current = keys.iter().find(|k| k.state == HeartbeatKeyState::Current);
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for a in &amphorae {
        let k = match (a.heartbeat_key_id, a.last_update) {
            (Some(id), _) => id.to_string(),
            (None, Some(_)) => "config".to_string(),
            (None, None) => "none".to_string(),
        };
        *by_key.entry(k).or_default() += 1;
    }
    let report = StatusReport {
        keys: keys
            .iter()
            .map(|k| KeyView {
                id: k.id,
                state: k.state,
                created_at: k.created_at.format("%FT%TZ").to_string(),
                age_seconds: (t - k.created_at).num_seconds(),
                retired_at: k.retired_at.map(|r| r.format("%FT%TZ").to_string()),
            })
            .collect(),
        rotating_to: current.filter(|_| rotating).map(|k| k.id),
        rotation_owner: current
            .filter(|_| rotating)
            .and_then(|k| k.rotation_owner.clone()),
        health_managers: rings,
        amphorae_by_key: by_key,
    };
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if report.keys.is_empty() {
        println!("no stored key: [health_manager] heartbeat_key is the current key");
    }
    println!(
        "{:<6}  {:<9}  {:<20}  {:<10}  retired",
        "key", "state", "created", "age"
    );
    for k in &report.keys {
        println!(
            "{:<6}  {:<9}  {:<20}  {:<10}  {}",
            k.id,
            k.state_str(),
            k.created_at,
            format!("{}s", k.age_seconds),
            k.retired_at.as_deref().unwrap_or("-")
        );
    }
    match report.rotating_to {
        Some(id) => println!(
            "rotation to key {id} in progress ({})",
            report.rotation_owner.as_deref().map_or(
                "no command drives it: run `octavia heartbeat-key rotate` to resume".to_string(),
                |o| format!("driven by {o}")
            )
        ),
        None => println!("no rotation in progress"),
    }
    println!(
        "health managers (seen in the last {} s):",
        RING_SEEN_WITHIN.as_secs()
    );
    for r in &report.health_managers {
        println!(
            "  {:<40}  accepts keys: {}",
            r.health_manager,
            if r.accepted.is_empty() {
                "configuration's only".to_string()
            } else {
                r.accepted
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    println!("live amphorae by the key of their newest heartbeat:");
    for (k, n) in &report.amphorae_by_key {
        println!("  key {k:<8}  {n}");
    }
    Ok(())
}

impl KeyView {
    fn state_str(&self) -> &'static str {
        self.state.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use octavia_db::JobRecord;
    use octavia_model::{
        Action, JobClass, JobId, JobSpec, LockSet, ObjectKind, ProvisioningStatus,
    };

    fn amp(key: Option<i64>) -> AmphoraKeyReport {
        AmphoraKeyReport {
            amphora_id: AmphoraId::new(),
            status: ProvisioningStatus::Allocated,
            heartbeat_key_id: key,
            last_update: Some(octavia_model::now()),
        }
    }

    fn push(a: AmphoraId, state: JobState, created_at: Timestamp) -> JobRecord {
        JobRecord {
            id: JobId::new(),
            class: JobClass::Operator,
            kind: "update_amphora".into(),
            state,
            spec: JobSpec {
                amphora_id: Some(a),
                ..JobSpec::new(
                    Action::Update,
                    ObjectKind::Amphora,
                    a.uuid(),
                    LockSet::default(),
                )
            },
            attempt: 0,
            completed_steps: vec![],
            reverted_steps: vec![],
            lease_owner: None,
            error: (state == JobState::Failed).then(|| "agent unreachable".to_string()),
            created_at,
            started_at: None,
            finished_at: (matches!(state, JobState::Done | JobState::Failed)).then_some(created_at),
        }
    }

    fn ring(hm: &str, accepted: &[i64]) -> HeartbeatKeyRing {
        HeartbeatKeyRing {
            health_manager: hm.into(),
            accepted: accepted.to_vec(),
            seen_at: octavia_model::now(),
        }
    }

    #[test]
    fn health_managers_not_accepting_the_key_are_named() {
        let rings = [ring("hm-1", &[2, 1]), ring("hm-2", &[1]), ring("hm-3", &[])];
        assert_eq!(laggards(&rings, 2), ["hm-2", "hm-3"]);
        assert_eq!(still_accepting(&rings, 1), ["hm-1", "hm-2"]);
        assert!(laggards(&rings[..1], 2).is_empty());
    }

    #[test]
    fn progress_sorts_amphorae_by_what_they_need() {
        let t0 = octavia_model::now();
        let run_start = t0 + chrono::Duration::seconds(10);
        let now = run_start + chrono::Duration::seconds(5);
        let on_new = amp(Some(2));
        let (queued, running, failed, fresh, old_done, never) = (
            amp(Some(1)),
            amp(Some(1)),
            amp(Some(1)),
            amp(Some(1)),
            amp(Some(1)),
            amp(None),
        );
        let jobs = [
            push(queued.amphora_id, JobState::Queued, t0),
            push(running.amphora_id, JobState::Running, run_start),
            push(failed.amphora_id, JobState::Failed, run_start),
            push(fresh.amphora_id, JobState::Done, run_start),
            // Done by an earlier run, yet not reporting with the key: pushed again.
            push(old_done.amphora_id, JobState::Done, t0),
        ];
        let all = [
            on_new,
            queued,
            running.clone(),
            failed.clone(),
            fresh,
            old_done.clone(),
            never.clone(),
        ];
        let p = Progress::of(2, &all, &jobs, run_start, now);
        assert_eq!((p.reporting, p.total, p.queued), (1, 7, 1));
        assert_eq!(p.pushing, [running.amphora_id]);
        assert_eq!(
            p.failures,
            [(failed.amphora_id, "agent unreachable".to_string())]
        );
        let todo: BTreeSet<_> = p.todo.iter().copied().collect();
        assert_eq!(
            todo,
            [old_done.amphora_id, never.amphora_id]
                .into_iter()
                .collect()
        );
        assert!(!p.is_done() && !p.is_stuck());
        assert_eq!(
            p.line(2),
            format!(
                "amphorae reporting with key 2: 1/7; pushing: {}; queued: 1; failures: 1",
                running.amphora_id
            )
        );

        // A push that succeeded long ago without a heartbeat on the new key is a failure.
        let later = run_start + chrono::Duration::seconds(120);
        let p = Progress::of(2, &all[4..5], &jobs[3..4], run_start, later);
        assert_eq!(p.failures.len(), 1);
        assert!(p.is_stuck());

        let p = Progress::of(2, &all[..1], &[], run_start, now);
        assert!(p.is_done());
        assert!(Progress::of(2, &[], &[], run_start, now).is_done());
    }

    #[test]
    fn key_files_must_hold_a_usable_key() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        assert_eq!(
            read_key_file(&write("ok", "  0123456789abcdef-xyz\n")).unwrap(),
            "0123456789abcdef-xyz"
        );
        assert!(read_key_file(&write("short", "abc\n"))
            .unwrap_err()
            .to_string()
            .contains("16 to 255"));
        assert!(read_key_file(&write("space", "0123456789 abcdef\n")).is_err());
        assert!(read_key_file(&dir.path().join("missing")).is_err());
        assert_eq!(generate_key().len(), 64);
        assert_ne!(generate_key(), generate_key());
    }
}
