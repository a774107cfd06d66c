//! Image rotation: which amphorae are not on the image their next build would boot
//! (`octavia amphora list --image-outdated`), the order a batch replaces them in, and the
//! progress of a batch (`octavia amphora rotate`). The rotations themselves are amphora
//! failover jobs the store queues and the workers run (`octavia_db::Store::queue_rotations`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Context;
use octavia_db::{JobRecord, ListQuery, Store};
use octavia_drivers::ComputeDriver;
use octavia_flows::{AmphoraSpec, FlowSettings};
use octavia_model::{
    Amphora, AmphoraId, AmphoraRole, JobState, LoadBalancerId, ProvisioningStatus,
};
use serde::Serialize;

/// An amphora as the rotation commands show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutdatedAmphora {
    pub id: AmphoraId,
    pub loadbalancer_id: LoadBalancerId,
    pub role: Option<AmphoraRole>,
    pub status: ProvisioningStatus,
    /// The image it runs (`None`: not recorded).
    pub image_id: Option<String>,
    /// The image its replacement would boot now.
    pub current_image_id: String,
    /// The hypervisor host it runs on, as the compute driver says.
    pub host: Option<String>,
}

/// The image each of `amphorae` would be rebuilt from now: `[controller_worker]
/// amp_image_id` when set, else the newest image carrying its load balancer's image tag
/// (the flavor's `amp_image_tag`, else the configuration's), asked of the compute driver
/// once per tag. Amphorae of no load balancer are left out.
pub async fn current_images(
    store: &Store,
    compute: &dyn ComputeDriver,
    settings: &FlowSettings,
    amphorae: &[Amphora],
) -> anyhow::Result<HashMap<AmphoraId, String>> {
    let mut by_lb: HashMap<LoadBalancerId, String> = HashMap::new();
    let mut by_tag: HashMap<String, String> = HashMap::new();
    let mut out = HashMap::new();
    for a in amphorae {
        let Some(lb_id) = a.load_balancer_id else {
            continue;
        };
        if let Some(image) = by_lb.get(&lb_id) {
            out.insert(a.id, image.clone());
            continue;
        }
        let Some(lb) = store.get_load_balancer(lb_id).await? else {
            continue;
        };
        let spec = AmphoraSpec::of(store, settings, &lb)
            .await
            .with_context(|| format!("read what load balancer {lb_id} is built with"))?;
        let image = match (spec.image_id, spec.image_tag) {
            (Some(id), _) => id,
            (None, Some(tag)) => match by_tag.get(&tag) {
                Some(image) => image.clone(),
                None => {
                    let image = compute
                        .current_image(&tag)
                        .await
                        .with_context(|| format!("find the newest image tagged '{tag}'"))?;
                    by_tag.insert(tag, image.clone());
                    image
                }
            },
            (None, None) => anyhow::bail!(
                "load balancer {lb_id} is built with neither an image id nor an image tag \
                 ([controller_worker] amp_image_id, amp_image_tag)"
            ),
        };
        by_lb.insert(lb_id, image.clone());
        out.insert(a.id, image);
    }
    Ok(out)
}

/// The live amphorae of a load balancer whose image is not the one their replacement would
/// boot, with their hosts.
pub async fn outdated(
    store: &Store,
    compute: &dyn ComputeDriver,
    settings: &FlowSettings,
) -> anyhow::Result<Vec<OutdatedAmphora>> {
    let amphorae: Vec<Amphora> = store
        .list_amphorae(&ListQuery::default())
        .await?
        .into_iter()
        .filter(|a| {
            a.load_balancer_id.is_some()
                && !matches!(
                    a.status,
                    ProvisioningStatus::Deleted | ProvisioningStatus::PendingDelete
                )
        })
        .collect();
    let current = current_images(store, compute, settings, &amphorae).await?;
    let mut out = Vec::new();
    for a in amphorae {
        let (Some(lb), Some(image)) = (a.load_balancer_id, current.get(&a.id)) else {
            continue;
        };
        if a.image_id.as_deref() == Some(image.as_str()) {
            continue;
        }
        let host = match &a.compute_id {
            Some(c) => compute.instance(c).await.ok().and_then(|i| i.host),
            None => None,
        };
        out.push(OutdatedAmphora {
            id: a.id,
            loadbalancer_id: lb,
            role: a.role,
            status: a.status,
            image_id: a.image_id,
            current_image_id: image.clone(),
            host,
        });
    }
    Ok(out)
}

/// The READY spares not on the image a spare would be built from now (`[controller_worker]
/// amp_image_id`, else the newest image tagged `amp_image_tag`): a rotation retires them
/// and the spare pool builds their replacements.
pub async fn outdated_spares(
    store: &Store,
    compute: &dyn ComputeDriver,
    settings: &FlowSettings,
) -> anyhow::Result<Vec<AmphoraId>> {
    let spares = store.ready_spares().await?;
    if spares.is_empty() {
        return Ok(Vec::new());
    }
    let current = match (&settings.amp_image_id, &settings.amp_image_tag) {
        (Some(id), _) => id.clone(),
        (None, Some(tag)) => compute
            .current_image(tag)
            .await
            .with_context(|| format!("find the newest image tagged '{tag}'"))?,
        (None, None) => return Ok(Vec::new()),
    };
    Ok(spares
        .into_iter()
        .filter(|s| s.amphora.image_id.as_deref() != Some(current.as_str()))
        .map(|s| s.amphora.id)
        .collect())
}

/// The order a batch rotates `amphorae` in: load balancer by load balancer (in id order),
/// and within one, the BACKUP first and the MASTER last (Octavia's order for a pair: the
/// amphora not serving goes first, so the VIP moves once, onto an amphora on the new image).
/// The store starts a load balancer's rotations one at a time, in this order.
pub fn plan(mut amphorae: Vec<OutdatedAmphora>) -> Vec<OutdatedAmphora> {
    let rank = |r: Option<AmphoraRole>| match r {
        Some(AmphoraRole::Backup) => 0,
        Some(AmphoraRole::Master) => 2,
        _ => 1,
    };
    amphorae.sort_by_key(|a| {
        (
            a.loadbalancer_id.to_string(),
            rank(a.role),
            a.id.to_string(),
        )
    });
    amphorae
}

/// Where a batch stands, from its job rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Jobs that ended (DONE or FAILED).
    pub finished: usize,
    /// Jobs in the batch (less after a `--cancel`).
    pub total: usize,
    /// The amphorae being replaced now.
    pub current: Vec<AmphoraId>,
    /// Amphorae whose rotation failed, with the error.
    pub failures: Vec<(AmphoraId, String)>,
    /// Amphorae skipped at start (gone already), with the reason.
    pub skipped: Vec<(AmphoraId, String)>,
}

impl Progress {
    /// The progress of a batch whose jobs are `jobs`.
    pub fn of(jobs: &[JobRecord]) -> Progress {
        let mut p = Progress {
            total: jobs.len(),
            ..Progress::default()
        };
        for j in jobs {
            let Some(amp) = j.spec.amphora_id else {
                continue;
            };
            match j.state {
                JobState::Queued => {}
                JobState::Running => p.current.push(amp),
                JobState::Done => {
                    p.finished += 1;
                    if let Some(e) = &j.error {
                        p.skipped.push((amp, e.clone()));
                    }
                }
                JobState::Failed => {
                    p.finished += 1;
                    p.failures
                        .push((amp, j.error.clone().unwrap_or_else(|| "failed".into())));
                }
            }
        }
        p
    }

    /// Whether every job of the batch ended.
    pub fn is_done(&self) -> bool {
        self.finished == self.total
    }

    /// One line for the operator: `done/total`, the current amphorae (with their load
    /// balancer and role from `plan`), the failures.
    pub fn line(&self, plan: &BTreeMap<AmphoraId, OutdatedAmphora>) -> String {
        let current = if self.current.is_empty() {
            "-".to_string()
        } else {
            self.current
                .iter()
                .map(|id| match plan.get(id) {
                    Some(a) => format!(
                        "{id} (load balancer {}, {})",
                        a.loadbalancer_id,
                        a.role.map_or("-".to_string(), |r| r.to_string())
                    ),
                    None => id.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "rotated {}/{}; current: {current}; failures: {}",
            self.finished,
            self.total,
            self.failures.len()
        )
    }
}

/// Poll the batch's jobs every `every` and print a line whenever its progress changes,
/// until every job ended or Ctrl-C. Returns the last progress and whether it was
/// interrupted.
pub async fn watch(
    store: &Store,
    batch: uuid::Uuid,
    plan: &BTreeMap<AmphoraId, OutdatedAmphora>,
    every: Duration,
) -> anyhow::Result<(Progress, bool)> {
    let mut last: Option<Progress> = None;
    let mut tick = tokio::time::interval(every);
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = &mut interrupt => {
                r.context("listen for Ctrl-C")?;
                return Ok((last.unwrap_or_default(), true));
            }
        }
        let jobs = store.rotation_jobs(Some(batch)).await?;
        let p = Progress::of(&jobs);
        if last.as_ref() != Some(&p) {
            let before = last.as_ref().map_or(0, |l| l.failures.len());
            for (amp, e) in p.failures.iter().skip(before) {
                println!("failed: amphora {amp}: {e}");
            }
            let skipped_before = last.as_ref().map_or(0, |l| l.skipped.len());
            for (amp, why) in p.skipped.iter().skip(skipped_before) {
                println!("amphora {amp}: {why}");
            }
            println!("{}", p.line(plan));
        }
        let done = p.is_done();
        last = Some(p);
        if done {
            return Ok((last.unwrap_or_default(), false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use octavia_model::{Action, JobClass, JobId, JobSpec, LockSet, ObjectKind};

    fn amp(lb: LoadBalancerId, role: AmphoraRole) -> OutdatedAmphora {
        OutdatedAmphora {
            id: AmphoraId::new(),
            loadbalancer_id: lb,
            role: Some(role),
            status: ProvisioningStatus::Allocated,
            image_id: Some("old".into()),
            current_image_id: "new".into(),
            host: None,
        }
    }

    #[test]
    fn plan_puts_each_backup_before_its_master() {
        let (pair, single) = (LoadBalancerId::new(), LoadBalancerId::new());
        let master = amp(pair, AmphoraRole::Master);
        let backup = amp(pair, AmphoraRole::Backup);
        let alone = amp(single, AmphoraRole::Standalone);
        let order: Vec<AmphoraId> = plan(vec![master.clone(), alone.clone(), backup.clone()])
            .iter()
            .map(|a| a.id)
            .collect();
        let pos = |id| order.iter().position(|x| *x == id).unwrap();
        assert_eq!(order.len(), 3);
        assert_eq!(pos(backup.id) + 1, pos(master.id), "{order:?}");
    }

    fn job(amphora: AmphoraId, state: JobState, error: Option<&str>) -> JobRecord {
        let t = octavia_model::now();
        JobRecord {
            id: JobId::new(),
            class: JobClass::Operator,
            kind: "failover_amphora".into(),
            state,
            spec: JobSpec {
                amphora_id: Some(amphora),
                ..JobSpec::new(
                    Action::Failover,
                    ObjectKind::Amphora,
                    amphora.uuid(),
                    LockSet::default(),
                )
            },
            attempt: 0,
            completed_steps: vec![],
            reverted_steps: vec![],
            lease_owner: None,
            error: error.map(str::to_string),
            created_at: t,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn progress_counts_finished_current_and_failed() {
        let lb = LoadBalancerId::new();
        let (a, b, c, d) = (
            amp(lb, AmphoraRole::Backup),
            amp(lb, AmphoraRole::Master),
            amp(LoadBalancerId::new(), AmphoraRole::Standalone),
            amp(LoadBalancerId::new(), AmphoraRole::Standalone),
        );
        let jobs = [
            job(a.id, JobState::Done, None),
            job(b.id, JobState::Running, None),
            job(c.id, JobState::Failed, Some("build failed")),
            job(d.id, JobState::Queued, None),
        ];
        let p = Progress::of(&jobs);
        assert_eq!((p.finished, p.total), (2, 4));
        assert_eq!(p.current, [b.id]);
        assert_eq!(p.failures, [(c.id, "build failed".to_string())]);
        assert!(!p.is_done());
        let plan: BTreeMap<_, _> = [(b.id, b.clone())].into_iter().collect();
        assert_eq!(
            p.line(&plan),
            format!(
                "rotated 2/4; current: {} (load balancer {lb}, MASTER); failures: 1",
                b.id
            )
        );
        let p = Progress::of(&jobs[..1]);
        assert!(p.is_done());
    }
}
