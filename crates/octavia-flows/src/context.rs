//! What every step of a job sees: the store, the drivers, the job and the settings.

use std::collections::BTreeSet;
use std::time::Duration;

use octavia_db::{Filter, FilterValue, ListQuery, Store};
use octavia_drivers::{AntiAffinity, Drivers};
use octavia_model::{
    Action, Amphora, AmphoraId, AmphoraRole, AvailabilityZoneMetadata, FlavorId, FlavorMetadata,
    JobId, JobSpec, LoadBalancer, LoadBalancerId, ObjectKind, ProvisioningStatus, Topology,
};
use octavia_render::{KeepalivedSettings, RenderSettings};
use uuid::Uuid;

use crate::{FlowError, Result};

/// How long a failover waits for a surviving peer's agent before leaving the peer out
/// (Octavia's `failover_connection_*`: 2 tries 5 s apart).
pub const PEER_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Knobs of the flows (`[controller_worker]` and `[haproxy_amphora]` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSettings {
    /// Image to boot amphorae from; `None` = newest image with `amp_image_tag`.
    pub amp_image_id: Option<String>,
    /// Tag selecting the amphora image (a flavor's `amp_image_tag` wins).
    pub amp_image_tag: Option<String>,
    /// Compute flavor of amphorae (a flavor's `compute_flavor` wins).
    pub amp_flavor: Option<String>,
    /// How long an amphora instance may take to become active.
    pub amp_boot_timeout: Duration,
    /// How often the instance status is polled while it boots.
    pub amp_boot_poll: Duration,
    /// How long the agent of a new amphora may take to answer.
    pub agent_connect_timeout: Duration,
    /// How haproxy.cfg is rendered (`[haproxy_amphora]` options). Its `max_global_maxconn`
    /// must fit the amphorae's open-file limit: HAProxy refuses to start when it cannot get
    /// the descriptors its global `maxconn` needs (see
    /// [`octavia_render::max_global_maxconn_for_fd_limit`]).
    pub render: RenderSettings,
    /// How keepalived.conf is rendered for ACTIVE_STANDBY amphorae (`[keepalived_vrrp]`).
    pub keepalived: KeepalivedSettings,
    /// `[nova]`: how the amphorae of an ACTIVE_STANDBY load balancer keep apart (`None`:
    /// anti-affinity off).
    pub anti_affinity: Option<AntiAffinity>,
    /// A build takes only spares heard from this recently (three `[health_manager]
    /// heartbeat_interval`s): one that went silent is the health manager's to replace.
    pub spare_heartbeat_within: Duration,
}

impl Default for FlowSettings {
    fn default() -> Self {
        Self {
            amp_image_id: None,
            amp_image_tag: Some("amphora".to_string()),
            amp_flavor: None,
            amp_boot_timeout: Duration::from_secs(300),
            amp_boot_poll: Duration::from_secs(1),
            agent_connect_timeout: Duration::from_secs(600),
            render: RenderSettings::default(),
            keepalived: KeepalivedSettings::default(),
            anti_affinity: Some(AntiAffinity::Hard),
            spare_heartbeat_within: Duration::from_secs(30),
        }
    }
}

/// What the amphorae of a load balancer are built with: the configuration
/// ([`FlowSettings`]), overridden by the settings of the load balancer's flavor profile
/// (`amp_image_tag`, `compute_flavor`) and availability zone profile (`compute_zone`,
/// `management_network`). The topology is not here: the API wrote the flavor's onto the load
/// balancer row when it created it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AmphoraSpec {
    /// `[controller_worker] amp_image_id`: wins over any tag, as in Octavia.
    pub image_id: Option<String>,
    /// The flavor's `amp_image_tag`, else `[controller_worker] amp_image_tag`.
    pub image_tag: Option<String>,
    /// The flavor's `compute_flavor`, else `[controller_worker] amp_flavor_id`.
    pub compute_flavor: Option<String>,
    /// The availability zone's `compute_zone` (`None`: anywhere).
    pub compute_zone: Option<String>,
    /// The availability zone's `management_network` (`None`: the driver's own).
    pub management_network: Option<String>,
}

impl AmphoraSpec {
    /// What `lb`'s amphorae are built with under `settings`: the build step's answer
    /// ([`JobContext::amphora_spec`]), and image rotation's, which compares each amphora's
    /// image with the one its next build would boot.
    pub async fn of(store: &Store, settings: &FlowSettings, lb: &LoadBalancer) -> Result<Self> {
        let mut spec = AmphoraSpec {
            image_id: settings.amp_image_id.clone(),
            image_tag: settings.amp_image_tag.clone(),
            compute_flavor: settings.amp_flavor.clone(),
            ..AmphoraSpec::default()
        };
        if let Some(raw) = &lb.flavor_id {
            let missing = || FlowError::Missing {
                kind: "flavor",
                id: raw.clone(),
            };
            let id: FlavorId = raw.parse().map_err(|_| missing())?;
            let (_, profile) = store
                .get_flavor_with_profile(id)
                .await?
                .ok_or_else(missing)?;
            let flavor = FlavorMetadata::parse(&profile.flavor_data).map_err(|e| {
                FlowError::Internal(format!("flavor profile {} settings: {e}", profile.id))
            })?;
            spec.image_tag = flavor.amp_image_tag.or(spec.image_tag);
            spec.compute_flavor = flavor.compute_flavor.or(spec.compute_flavor);
        }
        if let Some(name) = &lb.availability_zone {
            let (_, profile) = store
                .get_availability_zone_with_profile(name)
                .await?
                .ok_or_else(|| FlowError::Missing {
                    kind: "availability zone",
                    id: name.clone(),
                })?;
            let zone =
                AvailabilityZoneMetadata::parse(&profile.availability_zone_data).map_err(|e| {
                    FlowError::Internal(format!(
                        "availability zone profile {} settings: {e}",
                        profile.id
                    ))
                })?;
            spec.compute_zone = zone.compute_zone;
            spec.management_network = zone.management_network;
        }
        Ok(spec)
    }
}

/// The context of one job's steps.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub store: Store,
    pub drivers: Drivers,
    pub job_id: JobId,
    pub spec: JobSpec,
    pub settings: FlowSettings,
    /// Set by a phase of an ACTIVE_STANDBY load balancer failover: the role the one
    /// replacement it builds gets (Octavia's order: the amphora that does not hold the VIP
    /// is replaced by a BACKUP first, the holder by a MASTER last).
    pub replacement_role: Option<AmphoraRole>,
}

/// Namespace of the amphora ids a job creates (UUIDv5 of job id and role), so that a
/// resumed job finds the amphorae an earlier attempt created instead of building more.
const AMPHORA_NS: Uuid = Uuid::from_u128(0x0c7a_71a0_a3f0_4a11_9d1e_5eed_a3f0_0001);

fn role_key(role: AmphoraRole) -> &'static str {
    role.as_str()
}

impl JobContext {
    /// The load balancer the job works under.
    pub fn load_balancer_id(&self) -> Result<LoadBalancerId> {
        if let Some(id) = self.spec.locks.load_balancer_id {
            return Ok(id);
        }
        if self.spec.target_kind == ObjectKind::LoadBalancer {
            return Ok(LoadBalancerId(self.spec.target_id));
        }
        Err(FlowError::Internal(format!(
            "job {} names no load balancer",
            self.spec
        )))
    }

    /// The load balancer row.
    pub async fn load_balancer(&self) -> Result<LoadBalancer> {
        let id = self.load_balancer_id()?;
        self.store
            .get_load_balancer(id)
            .await?
            .ok_or_else(|| FlowError::Missing {
                kind: "load balancer",
                id: id.to_string(),
            })
    }

    /// The VIP address of the load balancer as stored. Reading never allocates: only the
    /// `allocate_vip` step asks the network driver for a VIP, and it stores what it gets.
    pub fn vip_address(lb: &LoadBalancer) -> Result<String> {
        lb.vip.ip_address.clone().ok_or_else(|| {
            FlowError::Internal(format!("load balancer {} has no VIP allocated", lb.id))
        })
    }

    /// What `lb`'s amphorae are built with ([`AmphoraSpec`]), read from the store when the
    /// build step runs rather than resolved into the job when it was queued: the store keeps
    /// a profile's settings fixed while a flavor or zone uses it and refuses to delete a
    /// flavor or zone a live load balancer uses, so every attempt of a job (a resumed one
    /// too) reads what the create saw, even if the operator edits the catalogue meanwhile;
    /// and the failovers the health manager queues, knowing nothing of flavors, build
    /// replacements the way the originals were built.
    pub async fn amphora_spec(&self, lb: &LoadBalancer) -> Result<AmphoraSpec> {
        AmphoraSpec::of(&self.store, &self.settings, lb).await
    }

    /// Every amphora row of the load balancer (including DELETED and ERROR ones).
    pub async fn all_amphorae(&self) -> Result<Vec<Amphora>> {
        let lb = self.load_balancer_id()?;
        let q = ListQuery {
            filters: vec![Filter {
                column: "load_balancer_id".into(),
                value: FilterValue::Text(lb.to_string()),
            }],
            ..ListQuery::default()
        };
        let mut amps = self.store.list_amphorae(&q).await?;
        amps.retain(|a| a.load_balancer_id == Some(lb));
        Ok(amps)
    }

    /// The id of the amphora this job builds for `role` when it takes no spare.
    pub fn built_amphora_id(&self, role: AmphoraRole) -> AmphoraId {
        AmphoraId(Uuid::new_v5(
            &AMPHORA_NS,
            format!("{}/{}", self.job_id, role_key(role)).as_bytes(),
        ))
    }

    /// The id of the job's amphora for `role`: the spare it took for that role (recorded
    /// in the store, so a resumed job finds it), else the one it builds.
    pub async fn new_amphora_id(&self, role: AmphoraRole) -> Result<AmphoraId> {
        let taken = self.store.spares_taken_by(self.job_id).await?;
        Ok(self.amphora_id_among(&taken, role))
    }

    /// [`JobContext::new_amphora_id`] with the job's taken spares already read.
    fn amphora_id_among(&self, taken: &[(AmphoraRole, AmphoraId)], role: AmphoraRole) -> AmphoraId {
        taken
            .iter()
            .rev()
            .find(|(r, _)| *r == role)
            .map(|(_, id)| *id)
            .unwrap_or_else(|| self.built_amphora_id(role))
    }

    /// Every id an amphora of this job may have: the ones it builds and the spares it took.
    async fn new_amphora_ids(&self) -> Result<BTreeSet<AmphoraId>> {
        let mut ids: BTreeSet<AmphoraId> = [
            AmphoraRole::Standalone,
            AmphoraRole::Master,
            AmphoraRole::Backup,
        ]
        .into_iter()
        .map(|r| self.built_amphora_id(r))
        .collect();
        ids.extend(
            self.store
                .spares_taken_by(self.job_id)
                .await?
                .into_iter()
                .map(|(_, id)| id),
        );
        Ok(ids)
    }

    fn is_failover(&self) -> bool {
        self.spec.action == Action::Failover
    }

    /// Amphorae this job replaces (failover only): for a load balancer failover every
    /// amphora the job did not build, for an amphora failover the named one; never DELETED.
    pub async fn old_amphorae(&self) -> Result<Vec<Amphora>> {
        if !self.is_failover() {
            return Ok(Vec::new());
        }
        let new = self.new_amphora_ids().await?;
        let wanted = self.spec.amphora_id.or(match self.spec.target_kind {
            ObjectKind::Amphora => Some(AmphoraId(self.spec.target_id)),
            _ => None,
        });
        Ok(self
            .all_amphorae()
            .await?
            .into_iter()
            .filter(|a| a.status != ProvisioningStatus::Deleted && !new.contains(&a.id))
            .filter(|a| wanted.is_none_or(|w| w == a.id))
            .collect())
    }

    /// The roles of the amphorae this job builds, with their ids.
    pub async fn amphorae_to_build(&self) -> Result<Vec<(AmphoraRole, AmphoraId)>> {
        let roles: Vec<AmphoraRole> = if let Some(role) = self.replacement_role {
            vec![role]
        } else if self.is_failover() {
            let old = self.old_amphorae().await?;
            let topology = self.load_balancer().await?.topology;
            if old.is_empty() && self.spec.target_kind == ObjectKind::LoadBalancer {
                topology_roles(topology)
            } else if let Some(started) = self.started_replacements(old.len()).await? {
                // Decided once: roles move while the job runs (the VIP holder is recorded
                // MASTER, by a handover or by heartbeats), and a resume or a revert that
                // recomputed them would pick another id than the one it built.
                started
            } else {
                // The roles the load balancer lacks once the old amphorae are gone (after a
                // takeover the failed MASTER's replacement is the BACKUP, whatever the row
                // of the dead amphora still says); else the old amphorae's own roles.
                let new = self.new_amphora_ids().await?;
                let staying: Vec<AmphoraRole> = self
                    .serving_amphorae()
                    .await?
                    .iter()
                    .filter(|a| !new.contains(&a.id))
                    .filter_map(|a| a.role)
                    .collect();
                let lacking: Vec<AmphoraRole> = topology_roles(topology)
                    .into_iter()
                    .filter(|r| !staying.contains(r))
                    .collect();
                if lacking.len() == old.len() {
                    lacking
                } else {
                    old.iter()
                        .map(|a| a.role.unwrap_or(AmphoraRole::Standalone))
                        .collect()
                }
            }
        } else {
            topology_roles(self.load_balancer().await?.topology)
        };
        let taken = self.store.spares_taken_by(self.job_id).await?;
        let mut out: Vec<(AmphoraRole, AmphoraId)> = Vec::new();
        for r in roles {
            if !out.iter().any(|(role, _)| *role == r) {
                out.push((r, self.amphora_id_among(&taken, r)));
            }
        }
        Ok(out)
    }

    /// The roles of the replacements this failover already started (rows under its own
    /// amphora ids), when there are as many as it replaces.
    async fn started_replacements(&self, replacing: usize) -> Result<Option<Vec<AmphoraRole>>> {
        let taken = self.store.spares_taken_by(self.job_id).await?;
        let mut roles = Vec::new();
        for role in [
            AmphoraRole::Master,
            AmphoraRole::Backup,
            AmphoraRole::Standalone,
        ] {
            if self
                .store
                .get_amphora(self.amphora_id_among(&taken, role))
                .await?
                .is_some()
            {
                roles.push(role);
            }
        }
        Ok((replacing > 0 && roles.len() >= replacing).then_some(roles))
    }

    /// The amphorae this job built (create and failover), as stored now.
    /// In a phase of a load balancer failover (`replacement_role`), only that phase's.
    pub async fn built_amphorae(&self) -> Result<Vec<Amphora>> {
        let new = match self.replacement_role {
            Some(role) => BTreeSet::from([self.new_amphora_id(role).await?]),
            None => self.new_amphora_ids().await?,
        };
        Ok(self
            .all_amphorae()
            .await?
            .into_iter()
            .filter(|a| new.contains(&a.id))
            .collect())
    }

    /// The amphorae that serve the load balancer and get its configuration: ALLOCATED
    /// ones, minus those a failover is replacing.
    pub async fn serving_amphorae(&self) -> Result<Vec<Amphora>> {
        let old: BTreeSet<AmphoraId> = self.old_amphorae().await?.iter().map(|a| a.id).collect();
        Ok(self
            .all_amphorae()
            .await?
            .into_iter()
            .filter(|a| a.status == ProvisioningStatus::Allocated && !old.contains(&a.id))
            .collect())
    }

    /// The serving amphorae a step pushes configuration to. Outside failovers, all of them.
    /// In a failover, a peer this job did not build is skipped when its instance is not
    /// running or its agent does not answer within [`PEER_ANSWER_TIMEOUT`]: both amphorae
    /// of a pair can die together, and a failover that waited for its dead peer would never
    /// finish, leaving the load balancer locked so the peer's own failover never starts.
    /// The skipped peer keeps its row; the health manager fails it over next (Octavia skips
    /// unreachable amphorae in the same place).
    pub async fn reachable_serving_amphorae(&self) -> Result<Vec<Amphora>> {
        let amps = self.serving_amphorae().await?;
        if !self.is_failover() {
            return Ok(amps);
        }
        let new = self.new_amphora_ids().await?;
        let mut out = Vec::with_capacity(amps.len());
        for amp in amps {
            if new.contains(&amp.id) || self.answers(&amp).await {
                out.push(amp);
            } else {
                tracing::warn!(amphora_id = %amp.id, compute_id = amp.compute_id.as_deref().unwrap_or("-"),
                    "a peer of the failed amphora does not answer either; this failover leaves it out and the health manager fails it over next");
            }
        }
        Ok(out)
    }

    /// Whether the amphora's instance runs and its agent answers within
    /// [`PEER_ANSWER_TIMEOUT`].
    async fn answers(&self, amp: &Amphora) -> bool {
        if !self.instance_running(amp).await {
            return false;
        }
        self.drivers
            .amphora
            .wait_for_connectivity(amp, PEER_ANSWER_TIMEOUT)
            .await
            .is_ok()
    }

    /// Whether the amphora's compute instance runs (ACTIVE); an amphora without one, or
    /// whose status cannot be read, does not.
    pub async fn instance_running(&self, amp: &Amphora) -> bool {
        match &amp.compute_id {
            Some(cid) => matches!(
                self.drivers.compute.status(cid).await,
                Ok(octavia_drivers::ComputeStatus::Active)
            ),
            None => false,
        }
    }

    /// Amphorae that still hold resources (not DELETED).
    pub async fn live_amphorae(&self) -> Result<Vec<Amphora>> {
        Ok(self
            .all_amphorae()
            .await?
            .into_iter()
            .filter(|a| a.status != ProvisioningStatus::Deleted)
            .collect())
    }
}

/// The roles a topology needs.
pub fn topology_roles(topology: Topology) -> Vec<AmphoraRole> {
    match topology {
        Topology::Single => vec![AmphoraRole::Standalone],
        Topology::ActiveStandby => vec![AmphoraRole::Master, AmphoraRole::Backup],
    }
}
