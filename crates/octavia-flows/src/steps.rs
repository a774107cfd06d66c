//! The steps flows are made of. Each reads what it needs from the store and is idempotent.

use std::collections::BTreeSet;
use std::net::IpAddr;

use async_trait::async_trait;
use octavia_drivers::{
    BuildRequest, ComputeStatus, DriverError, FaultOwner, Interface, MemberNetworkConfig,
    PortAddress, VipRequest, VrrpAction,
};
use octavia_model::{now, Amphora, AmphoraId, AmphoraRole, ProvisioningStatus, Topology};
use octavia_render::{
    render_keepalived, render_keepalived_takeover, KeepalivedInput, VrrpHostRoute, VrrpVip,
};
use tracing::{debug, info, warn};

use crate::context::{AmphoraSpec, JobContext};
use crate::engine::Step;
use crate::{config, FlowError, Result};

/// Every step of every flow; the name is the stable string failpoints and tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Allocate the load balancer's VIP through the network driver.
    AllocateVip,
    /// Build the job's amphorae (create: per topology; failover: one per replaced amphora).
    BuildAmphora,
    /// Wait until the agents of the built amphorae answer.
    WaitForAgent,
    /// Plug the VIP into the built amphorae (network port + agent interface).
    PlugVip,
    /// Attach the amphorae to the networks of the pool members, detach stale ones.
    PlugMemberNetworks,
    /// Push the rendered configuration to every serving amphora and reload it.
    UpdateAmphorae,
    /// ACTIVE_STANDBY: push each serving amphora's keepalived configuration (the others as
    /// unicast peers) and start keepalived, which then holds the VIP on one of them.
    ConfigureVrrp,
    /// Remove the load balancer's configuration from its amphorae (cascade delete).
    RemoveListeners,
    /// Unplug the VIP from every amphora of the load balancer.
    UnplugVip,
    /// Release the VIP.
    DeallocateVip,
    /// Delete the instances of every amphora of the load balancer; rows become DELETED.
    DeleteAmphorae,
    /// Delete the amphorae a failover replaced.
    DeleteOldAmphorae,
    /// ACTIVE_STANDBY load balancer failover: replace the pair one amphora at a time, the
    /// one that does not hold the VIP first (nothing to do for other topologies).
    ReplaceStandbyPair,
    /// Delete one amphora (the operator's `DELETE /amphorae/{id}` of an ERROR amphora).
    DeleteAmphora,
    /// Push the regenerated agent configuration to one amphora (`PUT /amphorae/{id}/config`).
    UpdateAgentConfig,
    /// Issue a new server certificate for one amphora, install it on its agent
    /// (`PUT /1.0/certificate`) and record its expiry (housekeeping's renewal).
    RotateCertificate,
    /// Boot a spare amphora for the spare pool and mark it READY once its agent answers.
    BuildSpare,
}

impl StepKind {
    /// The stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AllocateVip => "allocate_vip",
            Self::BuildAmphora => "build_amphora",
            Self::WaitForAgent => "wait_for_agent",
            Self::PlugVip => "plug_vip",
            Self::PlugMemberNetworks => "plug_member_networks",
            Self::UpdateAmphorae => "update_amphorae",
            Self::ConfigureVrrp => "configure_vrrp",
            Self::RemoveListeners => "remove_listeners",
            Self::UnplugVip => "unplug_vip",
            Self::DeallocateVip => "deallocate_vip",
            Self::DeleteAmphorae => "delete_amphorae",
            Self::DeleteOldAmphorae => "delete_old_amphorae",
            Self::ReplaceStandbyPair => "replace_standby_pair",
            Self::DeleteAmphora => "delete_amphora",
            Self::UpdateAgentConfig => "update_agent_config",
            Self::RotateCertificate => "rotate_certificate",
            Self::BuildSpare => "build_spare",
        }
    }
}

#[async_trait]
impl Step<JobContext> for StepKind {
    fn name(&self) -> &'static str {
        self.as_str()
    }

    async fn execute(&self, ctx: &JobContext) -> Result<()> {
        match self {
            Self::AllocateVip => allocate_vip(ctx).await,
            Self::BuildAmphora => build_amphorae(ctx).await,
            Self::WaitForAgent => wait_for_agent(ctx).await,
            Self::PlugVip => plug_vip(ctx).await,
            Self::PlugMemberNetworks => plug_member_networks(ctx).await,
            Self::UpdateAmphorae => update_amphorae(ctx).await,
            Self::ConfigureVrrp => configure_vrrp(ctx).await,
            Self::RemoveListeners => remove_listeners(ctx).await,
            Self::UnplugVip => unplug_vip(ctx, &ctx.live_amphorae().await?).await,
            Self::DeallocateVip => deallocate_vip(ctx).await,
            Self::DeleteAmphorae => delete_amphorae(ctx, ctx.live_amphorae().await?).await,
            Self::DeleteOldAmphorae => delete_old_amphorae(ctx).await,
            Self::ReplaceStandbyPair => replace_standby_pair(ctx).await,
            Self::DeleteAmphora => delete_one_amphora(ctx).await,
            Self::UpdateAgentConfig => update_agent_config(ctx).await,
            Self::RotateCertificate => rotate_certificate(ctx).await,
            Self::BuildSpare => build_spare(ctx).await,
        }
    }

    async fn revert(&self, ctx: &JobContext) -> Result<()> {
        match self {
            Self::AllocateVip => deallocate_vip(ctx).await,
            Self::BuildAmphora => revert_build(ctx).await,
            Self::PlugVip => unplug_vip(ctx, &ctx.built_amphorae().await?).await,
            Self::ConfigureVrrp => stop_vrrp(ctx).await,
            Self::ReplaceStandbyPair => revert_standby_pair(ctx).await,
            Self::BuildSpare => revert_spare(ctx).await,
            // Nothing these did can be taken back: waiting and pushing configuration leave
            // nothing allocated, and deletions cannot be undone. The job settles ERROR.
            Self::WaitForAgent
            | Self::PlugMemberNetworks
            | Self::UpdateAmphorae
            | Self::RemoveListeners
            | Self::UnplugVip
            | Self::DeallocateVip
            | Self::DeleteAmphorae
            | Self::DeleteOldAmphorae
            | Self::DeleteAmphora
            | Self::UpdateAgentConfig
            // The agent keeps whichever certificate it took last; an expiry recorded older
            // than it only brings the next renewal forward.
            | Self::RotateCertificate => {
                debug!(step = self.as_str(), "nothing to revert");
                Ok(())
            }
        }
    }
}

async fn allocate_vip(ctx: &JobContext) -> Result<()> {
    let lb = ctx.load_balancer().await?;
    let vip = ctx
        .drivers
        .network
        .allocate_vip(&VipRequest {
            load_balancer_id: lb.id,
            project_id: lb.project_id.clone(),
            requested: lb.vip.clone(),
        })
        .await?;
    if vip != lb.vip {
        ctx.store.set_load_balancer_vip(lb.id, &vip).await?;
    }
    info!(lb_id = %lb.id, vip = vip.ip_address.as_deref().unwrap_or("-"), "vip allocated");
    Ok(())
}

/// Release the load balancer's VIP: the driver releases whatever it allocated for the load
/// balancer, also when the store holds no VIP (an allocation that failed half-way).
async fn deallocate_vip(ctx: &JobContext) -> Result<()> {
    let lb = ctx.load_balancer().await?;
    ctx.drivers.network.deallocate_vip(lb.id, &lb.vip).await?;
    Ok(())
}

fn vrrp_priority(role: AmphoraRole) -> Option<i32> {
    octavia_render::vrrp_priority(role).map(i32::from)
}

/// keepalived's `virtual_router_id` of every amphora (Octavia's `vrrp_id`, always 1: each
/// load balancer's amphorae speak VRRP by unicast to each other only, so ids never meet).
const VRRP_ID: i32 = 1;

async fn build_amphorae(ctx: &JobContext) -> Result<()> {
    let lb = ctx.load_balancer().await?;
    let spec = ctx.amphora_spec(&lb).await?;
    let to_build = ctx.amphorae_to_build().await?;
    // Anti-affinity (when on): away from the load balancer's amphorae that stay (a
    // failover's survivor) and from each other.
    let keep_apart = ctx.settings.anti_affinity.is_some();
    let mut peers: Vec<String> = Vec::new();
    if keep_apart && lb.topology == Topology::ActiveStandby {
        let building: BTreeSet<AmphoraId> = to_build.iter().map(|(_, id)| *id).collect();
        peers.extend(
            ctx.serving_amphorae()
                .await?
                .into_iter()
                .filter(|a| !building.contains(&a.id))
                .filter_map(|a| a.compute_id),
        );
    }
    for (role, id) in to_build {
        // A first attempt takes a spare when one fits; a resume finds the row it made.
        let fresh = ctx.store.get_amphora(id).await?.is_none();
        let spare = match fresh {
            true => take_spare(ctx, &lb, &spec, role, &peers).await?,
            false => None,
        };
        let amp = match spare {
            Some(amp) => amp,
            None => build_one(ctx, &lb, &spec, role, id, &peers).await?,
        };
        if keep_apart {
            peers.extend(amp.compute_id);
        }
    }
    Ok(())
}

/// Take a spare for `role` when one fits what the build would make: READY, heartbeating
/// within [`crate::FlowSettings::spare_heartbeat_within`], its instance running, on the
/// image, compute flavor and zone the build would use, on the driver's own management
/// network, and — anti-affinity on — on none of `peers`' hosts (Octavia's spare pool could
/// not honour anti-affinity; this one never breaks it, and builds instead). The take is
/// recorded with the job, so a resume finds it; a spare whose agent does not answer once
/// taken is deleted and the next one tried. `None`: the build boots a new amphora.
async fn take_spare(
    ctx: &JobContext,
    lb: &octavia_model::LoadBalancer,
    spec: &AmphoraSpec,
    role: AmphoraRole,
    peers: &[String],
) -> Result<Option<Amphora>> {
    if spec.management_network.is_some() {
        return Ok(None);
    }
    let spares = ctx.store.ready_spares().await?;
    if spares.is_empty() {
        return Ok(None);
    }
    let image = match (&spec.image_id, &spec.image_tag) {
        (Some(id), _) => id.clone(),
        (None, Some(tag)) => match ctx.drivers.compute.current_image(tag).await {
            Ok(image) => image,
            Err(error) => {
                debug!(%error, "no current image to match spares against");
                return Ok(None);
            }
        },
        (None, None) => return Ok(None),
    };
    let mut peer_hosts = BTreeSet::new();
    for cid in peers {
        if let Some(host) = ctx.drivers.compute.host(cid).await? {
            peer_hosts.insert(host);
        }
    }
    let fresh_after = now() - ctx.settings.spare_heartbeat_within;
    for spare in spares {
        let amp = &spare.amphora;
        let Some(cid) = amp.compute_id.as_deref() else {
            continue;
        };
        let fits = amp.image_id.as_deref() == Some(image.as_str())
            && amp.compute_flavor == spec.compute_flavor
            && (spec.compute_zone.is_none() || amp.cached_zone == spec.compute_zone)
            // Heard from lately, or READY so lately that its first heartbeat may not
            // be recorded yet (its agent answered the build then).
            && spare
                .last_heartbeat
                .or(amp.updated_at)
                .is_some_and(|t| t >= fresh_after);
        if !fits {
            continue;
        }
        let instance = ctx.drivers.compute.instance(cid).await?;
        if instance.status != ComputeStatus::Active {
            continue;
        }
        if instance
            .host
            .as_ref()
            .is_some_and(|h| peer_hosts.contains(h))
        {
            continue;
        }
        let take = octavia_db::SpareTake {
            job: ctx.job_id,
            load_balancer: lb.id,
            role,
            vrrp_priority: vrrp_priority(role),
            vrrp_id: (role != AmphoraRole::Standalone).then_some(VRRP_ID),
        };
        if !ctx.store.take_spare(amp.id, take).await? {
            continue;
        }
        let Some(taken) = ctx.store.get_amphora(amp.id).await? else {
            continue;
        };
        if let Err(error) = ctx
            .drivers
            .amphora
            .wait_for_connectivity(&taken, crate::context::PEER_ANSWER_TIMEOUT)
            .await
        {
            warn!(amphora_id = %amp.id, %error, "a spare amphora taken for a load balancer does not answer; deleting it and trying another");
            ctx.drivers.compute.delete(cid).await?;
            let mut gone = taken;
            gone.status = ProvisioningStatus::Deleted;
            gone.updated_at = Some(now());
            ctx.store.save_amphora(&gone).await?;
            metrics::counter!("octavia_spare_amphorae_retired_total", "reason" => "unanswered")
                .increment(1);
            continue;
        }
        metrics::counter!("octavia_spare_amphorae_taken_total").increment(1);
        info!(amphora_id = %amp.id, lb_id = %lb.id, role = %role, "spare amphora taken");
        return Ok(Some(taken));
    }
    Ok(None)
}

/// One amphora built (or found built by an earlier attempt of the job). A build is counted
/// in `octavia_amphora_builds_total` by result and, when it succeeds, timed in
/// `octavia_amphora_build_seconds` (the operator guide's build rate, time and failures).
async fn build_one(
    ctx: &JobContext,
    lb: &octavia_model::LoadBalancer,
    spec: &AmphoraSpec,
    role: AmphoraRole,
    id: AmphoraId,
    peers: &[String],
) -> Result<Amphora> {
    let existing = ctx.store.get_amphora(id).await?;
    if let Some(a) = &existing {
        if a.status == ProvisioningStatus::Allocated && a.compute_id.is_some() {
            debug!(amphora_id = %id, "amphora already built");
            return Ok(a.clone());
        }
    }
    let started = std::time::Instant::now();
    let built = boot_one(ctx, lb, spec, role, id, peers, existing).await;
    count_build(started, built.is_ok());
    built
}

/// `octavia_amphora_builds_total` by result, and `octavia_amphora_build_seconds` of a
/// build that succeeded.
fn count_build(started: std::time::Instant, ok: bool) {
    let result = if ok { "success" } else { "failure" };
    metrics::counter!("octavia_amphora_builds_total", "result" => result).increment(1);
    if ok {
        metrics::histogram!("octavia_amphora_build_seconds")
            .record(started.elapsed().as_secs_f64());
    }
}

/// The job's spare (`create_amphora`, queued by the housekeeper with its row): booted as
/// the configuration builds amphorae (`amp_image_id` or the newest image of
/// `amp_image_tag`, `amp_flavor_id`) in its pool's zone, and READY once its agent answers.
/// A spare retired or taken meanwhile is left as it is.
async fn build_spare(ctx: &JobContext) -> Result<()> {
    let id = AmphoraId(ctx.spec.target_id);
    let Some(mut amp) = ctx.store.get_amphora(id).await? else {
        debug!(amphora_id = %id, "spare amphora gone before it was built");
        return Ok(());
    };
    let building = matches!(
        amp.status,
        ProvisioningStatus::PendingCreate | ProvisioningStatus::Booting
    );
    if !building || amp.load_balancer_id.is_some() {
        debug!(amphora_id = %id, status = %amp.status, "spare amphora no longer to build");
        return Ok(());
    }
    let spec = AmphoraSpec {
        image_id: ctx.settings.amp_image_id.clone(),
        image_tag: ctx.settings.amp_image_tag.clone(),
        compute_flavor: ctx.settings.amp_flavor.clone(),
        compute_zone: amp.cached_zone.clone(),
        management_network: None,
    };
    let started = std::time::Instant::now();
    let booted = async {
        boot_instance(ctx, &mut amp, &spec, &[]).await?;
        ctx.drivers
            .amphora
            .wait_for_connectivity(&amp, ctx.settings.agent_connect_timeout)
            .await?;
        Ok::<_, FlowError>(())
    }
    .await;
    count_build(started, booted.is_ok());
    booted?;
    amp.status = ProvisioningStatus::Ready;
    amp.updated_at = Some(now());
    ctx.store.save_amphora(&amp).await?;
    info!(amphora_id = %id, zone = amp.cached_zone.as_deref().unwrap_or("-"), "spare amphora ready");
    Ok(())
}

/// A spare build that failed deletes whatever instance it started (the settlement then
/// marks the row DELETED, so the pool builds another).
async fn revert_spare(ctx: &JobContext) -> Result<()> {
    let id = AmphoraId(ctx.spec.target_id);
    if let Some(amp) = ctx.store.get_amphora(id).await? {
        if amp.load_balancer_id.is_none() {
            if let Some(cid) = &amp.compute_id {
                ctx.drivers.compute.delete(cid).await?;
            }
        }
    }
    Ok(())
}

async fn boot_one(
    ctx: &JobContext,
    lb: &octavia_model::LoadBalancer,
    spec: &AmphoraSpec,
    role: AmphoraRole,
    id: AmphoraId,
    peers: &[String],
    existing: Option<Amphora>,
) -> Result<Amphora> {
    let mut amp = existing
        .unwrap_or_else(|| Amphora::new(id, Some(lb.id), ProvisioningStatus::PendingCreate, now()));
    amp.load_balancer_id = Some(lb.id);
    amp.role = Some(role);
    amp.vrrp_priority = vrrp_priority(role);
    amp.vrrp_id = (role != AmphoraRole::Standalone).then_some(VRRP_ID);
    boot_instance(ctx, &mut amp, spec, peers).await?;
    amp.status = ProvisioningStatus::Allocated;
    amp.updated_at = Some(now());
    ctx.store.save_amphora(&amp).await?;
    info!(amphora_id = %id, lb_id = %lb.id, role = %role, "amphora allocated");
    Ok(amp)
}

/// Boot `amp`'s instance (or find the one an earlier attempt started) and wait until it
/// runs; the row records each stage (PENDING_CREATE with the certificate's expiry,
/// BOOTING with the compute id) and, once it runs, its address, zone and image. The
/// caller sets the status it ends in.
async fn boot_instance(
    ctx: &JobContext,
    amp: &mut Amphora,
    spec: &AmphoraSpec,
    peers: &[String],
) -> Result<()> {
    let id = amp.id;
    amp.compute_flavor = spec.compute_flavor.clone();
    // Reuse an instance an earlier attempt started, unless it is gone or broken.
    let reusable = match &amp.compute_id {
        Some(cid) => matches!(
            ctx.drivers.compute.status(cid).await?,
            ComputeStatus::Building | ComputeStatus::Active
        ),
        None => false,
    };
    if !reusable {
        if let Some(cid) = amp.compute_id.take() {
            ctx.drivers.compute.delete(&cid).await?;
        }
        // As Octavia: the certificate is issued and its expiry recorded before the instance
        // that boots with it is asked for.
        let cert = ctx.drivers.certificates.amphora_certificate(id)?;
        amp.cert_expiration = Some(cert.expires_at);
        amp.status = ProvisioningStatus::PendingCreate;
        amp.updated_at = Some(now());
        ctx.store.save_amphora(amp).await?;
        let cid = ctx
            .drivers
            .compute
            .build(&BuildRequest {
                amphora_id: id,
                image_id: spec.image_id.clone(),
                image_tag: spec.image_tag.clone(),
                flavor: spec.compute_flavor.clone(),
                availability_zone: spec.compute_zone.clone(),
                management_network: spec.management_network.clone(),
                anti_affinity_peers: peers.to_vec(),
                anti_affinity: ctx.settings.anti_affinity.unwrap_or_default(),
                server_certificate: cert,
                heartbeat_key: current_heartbeat_key(ctx).await?,
            })
            .await?;
        amp.compute_id = Some(cid);
        amp.status = ProvisioningStatus::Booting;
        amp.updated_at = Some(now());
        ctx.store.save_amphora(amp).await?;
        info!(amphora_id = %id, compute_id = amp.compute_id.as_deref().unwrap_or("-"), "amphora booting");
    }

    let cid = amp.compute_id.clone().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + ctx.settings.amp_boot_timeout;
    let instance = loop {
        let inst = ctx.drivers.compute.instance(&cid).await?;
        match inst.status {
            ComputeStatus::Active => break inst,
            ComputeStatus::Building if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(ctx.settings.amp_boot_poll).await;
            }
            ComputeStatus::Building => {
                return Err(DriverError::retryable(
                    FaultOwner::Compute,
                    "boot amphora instance",
                    format!(
                        "instance {cid} still building after {:?}",
                        ctx.settings.amp_boot_timeout
                    ),
                )
                .into())
            }
            status => {
                return Err(DriverError::permanent(
                    FaultOwner::Compute,
                    "boot amphora instance",
                    format!("instance {cid} is {status:?}"),
                )
                .into())
            }
        }
    };
    amp.lb_network_ip = instance.lb_network_ip;
    // The zone the compute driver placed it in (as Octavia caches it), else the one asked for.
    amp.cached_zone = instance.availability_zone.or(spec.compute_zone.clone());
    amp.image_id = instance.image_id;
    Ok(())
}

async fn revert_build(ctx: &JobContext) -> Result<()> {
    for (_, id) in ctx.amphorae_to_build().await? {
        let Some(mut amp) = ctx.store.get_amphora(id).await? else {
            continue;
        };
        if let Some(cid) = &amp.compute_id {
            ctx.drivers.compute.delete(cid).await?;
        }
        amp.status = ProvisioningStatus::Error;
        amp.updated_at = Some(now());
        ctx.store.save_amphora(&amp).await?;
        info!(amphora_id = %id, "amphora build reverted");
    }
    Ok(())
}

async fn wait_for_agent(ctx: &JobContext) -> Result<()> {
    let amps = ctx.built_amphorae().await?;
    if amps.is_empty() {
        return Err(FlowError::Internal("no amphora was built".into()));
    }
    for amp in amps {
        let info = ctx
            .drivers
            .amphora
            .wait_for_connectivity(&amp, ctx.settings.agent_connect_timeout)
            .await?;
        info!(amphora_id = %amp.id, api_version = %info.api_version, "amphora agent reachable");
    }
    Ok(())
}

async fn plug_vip(ctx: &JobContext) -> Result<()> {
    let lb = ctx.load_balancer().await?;
    let address = JobContext::vip_address(&lb)?;
    let vip = &lb.vip;
    for mut amp in ctx.built_amphorae().await? {
        if amp.status != ProvisioningStatus::Allocated {
            continue;
        }
        let plug = ctx.drivers.network.plug_vip(&amp, vip).await?;
        amp.vrrp_ip = Some(plug.vrrp_ip);
        amp.vrrp_port_id = Some(plug.vrrp_port_id);
        amp.ha_ip = Some(plug.ha_ip);
        amp.ha_port_id = Some(plug.ha_port_id);
        amp.updated_at = Some(now());
        ctx.store.save_amphora(&amp).await?;
        let net = ctx.drivers.network.network_config(&amp, vip).await?;
        ctx.drivers
            .amphora
            .plug_vip(&amp, &address, &net, lb.topology)
            .await?;
        info!(amphora_id = %amp.id, vip = %address, "vip plugged");
    }
    Ok(())
}

/// Unplug the VIP from `amps`; an amphora that was never plugged (or has no instance) is
/// nothing to do for the driver.
async fn unplug_vip(ctx: &JobContext, amps: &[Amphora]) -> Result<()> {
    let lb = ctx.load_balancer().await?;
    for amp in amps {
        ctx.drivers.network.unplug_vip(amp, &lb.vip).await?;
    }
    Ok(())
}

async fn plug_member_networks(ctx: &JobContext) -> Result<()> {
    let lb_id = ctx.load_balancer_id()?;
    let Some(tree) = ctx.store.load_balancer_tree(lb_id).await? else {
        return Err(FlowError::Missing {
            kind: "load balancer",
            id: lb_id.to_string(),
        });
    };
    let vip_network = tree.load_balancer.vip.network_id.clone();
    let mut wanted = BTreeSet::new();
    let subnets: BTreeSet<&String> = tree
        .members
        .iter()
        .filter(|m| {
            !matches!(
                m.provisioning_status,
                ProvisioningStatus::PendingDelete | ProvisioningStatus::Deleted
            )
        })
        .filter_map(|m| m.subnet_id.as_ref())
        .collect();
    for subnet in subnets {
        let s = find_subnet(ctx, subnet).await?;
        if Some(&s.network_id) != vip_network.as_ref() {
            wanted.insert(s.network_id);
        }
    }
    for amp in ctx.serving_amphorae().await? {
        let Some(cid) = amp.compute_id.clone() else {
            continue;
        };
        let plugged = ctx.drivers.network.plugged_networks(&cid).await?;
        let have: BTreeSet<String> = plugged.iter().map(|i| i.network_id.clone()).collect();
        for net in wanted.difference(&have) {
            let iface = ctx.drivers.network.plug_network(&cid, net).await?;
            let config = member_network_config(ctx, &iface).await?;
            ctx.drivers.amphora.plug_network(&amp, &config).await?;
            info!(amphora_id = %amp.id, network_id = %net, "member network plugged");
        }
        for net in have.difference(&wanted) {
            if Some(net) == vip_network.as_ref() {
                continue;
            }
            ctx.drivers.network.unplug_network(&cid, net).await?;
            info!(amphora_id = %amp.id, network_id = %net, "member network unplugged");
        }
    }
    Ok(())
}

async fn find_subnet(ctx: &JobContext, id: &str) -> Result<octavia_drivers::Subnet> {
    ctx.drivers.network.find_subnet(id).await?.ok_or_else(|| {
        DriverError::permanent(
            FaultOwner::Network,
            "describe member subnet",
            format!("subnet {id} does not exist"),
        )
        .into()
    })
}

/// What the agent needs to configure a member-network port: its addresses, each with its
/// subnet's CIDR and gateway (the port alone does not carry them).
async fn member_network_config(ctx: &JobContext, iface: &Interface) -> Result<MemberNetworkConfig> {
    let mut addresses = Vec::with_capacity(iface.fixed_ips.len());
    for fixed in &iface.fixed_ips {
        let subnet = find_subnet(ctx, &fixed.subnet_id).await?;
        addresses.push(PortAddress {
            ip_address: fixed.ip_address.clone(),
            subnet_cidr: subnet.cidr,
            gateway: subnet.gateway_ip,
            host_routes: Vec::new(),
        });
    }
    Ok(MemberNetworkConfig {
        mac_address: iface.mac_address.clone(),
        addresses,
        mtu: None,
    })
}

async fn update_amphorae(ctx: &JobContext) -> Result<()> {
    let lb_id = ctx.load_balancer_id()?;
    let Some(tree) = ctx.store.load_balancer_tree(lb_id).await? else {
        return Err(FlowError::Missing {
            kind: "load balancer",
            id: lb_id.to_string(),
        });
    };
    // Rendered once, before any amphora is touched: a tree the renderer refuses changes none.
    let text = config::render(&tree, &ctx.settings.render)?;
    for amp in ctx.reachable_serving_amphorae().await? {
        if let Some(text) = &text {
            ctx.drivers.amphora.upload_config(&amp, lb_id, text).await?;
            ctx.drivers.amphora.reload(&amp, lb_id).await?;
        } else {
            ctx.drivers.amphora.remove_config(&amp, lb_id).await?;
        }
        debug!(amphora_id = %amp.id, "amphora configuration updated");
    }
    Ok(())
}

fn parse_ip(what: &str, owner: &Amphora, value: &str) -> Result<IpAddr> {
    value.trim().parse().map_err(|_| {
        FlowError::Internal(format!(
            "amphora {} has {what} '{value}', which is not an IP address",
            owner.id
        ))
    })
}

/// ACTIVE_STANDBY: each serving amphora gets its keepalived configuration (its `vrrp_ip` as
/// source, the others' as unicast peers, the VIP with its subnet's routes) and keepalived is
/// started (reloaded when running), after HAProxy serves the configuration. Every
/// configuration is rendered before any amphora is touched. SINGLE: nothing to do.
async fn configure_vrrp(ctx: &JobContext) -> Result<()> {
    let lb = ctx.load_balancer().await?;
    if lb.topology != Topology::ActiveStandby {
        debug!(lb_id = %lb.id, "not ACTIVE_STANDBY: no keepalived to configure");
        return Ok(());
    }
    let address = JobContext::vip_address(&lb)?;
    // A peer a failover leaves out (it does not answer) stays in the others' peer lists:
    // adverts to it are harmless, and its own replacement rewrites every list.
    let everyone = ctx.serving_amphorae().await?;
    let mut amps = ctx.reachable_serving_amphorae().await?;
    let built: BTreeSet<AmphoraId> = ctx.built_amphorae().await?.iter().map(|a| a.id).collect();
    // Amphorae already serving first (a failover's survivor keeps or takes the VIP), then
    // the ones this job built; MASTER first among each: started first, its keepalived is the
    // first to claim the VIP (all start in BACKUP state; the others see its adverts and stay
    // BACKUP).
    amps.sort_by_key(|a| {
        (
            built.contains(&a.id),
            a.role != Some(AmphoraRole::Master),
            a.id,
        )
    });
    if amps.is_empty() {
        return Err(FlowError::Internal(format!(
            "load balancer {} has no amphora to hold its VIP",
            lb.id
        )));
    }
    let mut vrrp_ips = Vec::with_capacity(amps.len());
    for amp in &amps {
        let ip = amp.vrrp_ip.as_deref().ok_or_else(|| {
            FlowError::Internal(format!(
                "amphora {} of ACTIVE_STANDBY load balancer {} has no vrrp_ip (VIP not plugged)",
                amp.id, lb.id
            ))
        })?;
        vrrp_ips.push(parse_ip("vrrp_ip", amp, ip)?);
    }
    let unreachable_ips: Vec<IpAddr> = everyone
        .iter()
        .filter(|a| !amps.iter().any(|r| r.id == a.id))
        .filter_map(|a| a.vrrp_ip.as_deref()?.trim().parse().ok())
        .filter(|ip| !vrrp_ips.contains(ip))
        .collect();
    let mut configs = Vec::with_capacity(amps.len());
    for (i, amp) in amps.iter().enumerate() {
        let Some(role) = amp.role.filter(|r| *r != AmphoraRole::Standalone) else {
            return Err(FlowError::Internal(format!(
                "amphora {} of ACTIVE_STANDBY load balancer {} is neither MASTER nor BACKUP",
                amp.id, lb.id
            )));
        };
        let net = ctx.drivers.network.network_config(amp, &lb.vip).await?;
        let gateway = net
            .gateway
            .as_deref()
            .map(|g| parse_ip("a vip gateway", amp, g))
            .transpose()?;
        let host_routes = net
            .host_routes
            .iter()
            .map(|r| {
                Ok(VrrpHostRoute {
                    destination: r.destination.clone(),
                    nexthop: parse_ip("a vip route next hop", amp, &r.nexthop)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let vrrp_ip = vrrp_ips[i];
        let interface = ctx
            .drivers
            .amphora
            .interface_of(amp, &vrrp_ip.to_string())
            .await?;
        let input = KeepalivedInput {
            load_balancer_id: lb.id,
            role,
            interface: interface.clone(),
            virtual_router_id: u8::try_from(amp.vrrp_id.unwrap_or(VRRP_ID)).map_err(|_| {
                FlowError::Internal(format!(
                    "amphora {} has vrrp_id {:?}, outside 1..=255",
                    amp.id, amp.vrrp_id
                ))
            })?,
            vrrp_ip,
            peer_vrrp_ips: vrrp_ips
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, ip)| *ip)
                .chain(unreachable_ips.iter().copied())
                .collect(),
            vips: vec![VrrpVip {
                address: parse_ip("a vip address", amp, &address)?,
                subnet_cidr: net.subnet_cidr.clone(),
                gateway,
                host_routes,
            }],
        };
        let text = render_keepalived(&input, &ctx.settings.keepalived).map_err(|source| {
            FlowError::Render {
                config: "keepalived",
                load_balancer: lb.id,
                source,
            }
        })?;
        let takeover =
            render_keepalived_takeover(&input, &ctx.settings.keepalived).map_err(|source| {
                FlowError::Render {
                    config: "keepalived",
                    load_balancer: lb.id,
                    source,
                }
            })?;
        configs.push((interface, role, text, takeover));
    }
    let mut released = false;
    let mut took_over = None;
    let mut survivors: Vec<(Amphora, String, String)> = Vec::new();
    for (mut amp, (interface, role, text, takeover)) in amps.into_iter().zip(configs) {
        if built.contains(&amp.id) && !released {
            // Before a replacement starts: the amphorae it replaces give up the VIP, so it
            // moves once, to a survivor that already has the new peer list. A live old
            // holder hands it over first: the survivor takes it while the holder still
            // serves, so the VIP is never without an amphora.
            let handed = hand_over_vip(ctx, &address, survivors.first()).await?;
            release_vip(ctx).await?;
            if let Some((survivor, normal, _)) = handed {
                took_over = Some(survivor.id);
                push_keepalived(ctx, survivor, normal).await?;
                info!(amphora_id = %survivor.id, "survivor back on its ordinary keepalived configuration");
            }
            released = true;
        }
        if amp.vrrp_interface.as_deref() != Some(interface.as_str())
            || amp.vrrp_priority != vrrp_priority(role)
            || amp.vrrp_id.is_none()
        {
            amp.vrrp_interface = Some(interface);
            amp.vrrp_priority = vrrp_priority(role);
            amp.vrrp_id = Some(amp.vrrp_id.unwrap_or(VRRP_ID));
            amp.updated_at = Some(now());
            ctx.store.save_amphora(&amp).await?;
        }
        push_keepalived(ctx, &amp, &text).await?;
        info!(amphora_id = %amp.id, lb_id = %lb.id, role = %role, "keepalived configured and started");
        if !built.contains(&amp.id) {
            survivors.push((amp, text, takeover));
        }
    }
    // The survivor that took the VIP over is the MASTER now (roles follow the VIP; the
    // replacement was built as MASTER and stays BACKUP behind `nopreempt`).
    if let Some(holder) = took_over {
        ctx.store.record_vip_holder(holder).await?;
    }
    Ok(())
}

/// When an amphora this failover replaces is alive and holds the VIP, `survivor` takes the
/// VIP from it first: reloaded with its takeover configuration (it outranks the holder and
/// preempts), and waited for until it holds the VIP (three adverts and two seconds at
/// most). Returns the survivor when it was reloaded, so the caller puts its ordinary
/// configuration back once the old holder stopped. Nothing to hand over (no live holder, no
/// survivor) returns `None`.
async fn hand_over_vip<'a>(
    ctx: &JobContext,
    address: &str,
    survivor: Option<&'a (Amphora, String, String)>,
) -> Result<Option<&'a (Amphora, String, String)>> {
    let Some(entry) = survivor else {
        return Ok(None);
    };
    let (amp, _, takeover) = entry;
    let mut holder = None;
    for old in ctx.old_amphorae().await? {
        if old.status != ProvisioningStatus::Allocated {
            continue;
        }
        let holds = ctx.instance_running(&old).await
            && matches!(
                tokio::time::timeout(
                    RELEASE_TIMEOUT,
                    ctx.drivers.amphora.interface_of(&old, address)
                )
                .await,
                Ok(Ok(_))
            );
        if holds {
            holder = Some(old);
            break;
        }
    }
    let Some(holder) = holder else {
        return Ok(None);
    };
    push_keepalived(ctx, amp, takeover).await?;
    let wait = ctx.settings.keepalived.vrrp_advert_int * 3 + std::time::Duration::from_secs(2);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if ctx.drivers.amphora.interface_of(amp, address).await.is_ok() {
            info!(amphora_id = %amp.id, old_holder = %holder.id,
                "the survivor took the VIP over from the amphora being replaced");
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(amphora_id = %amp.id, old_holder = %holder.id, ?wait,
                "the survivor did not take the VIP over in time; the old holder gives it up now");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(Some(entry))
}

/// Upload a keepalived configuration to the amphora and start keepalived (a reload when it
/// runs).
async fn push_keepalived(ctx: &JobContext, amp: &Amphora, config: &str) -> Result<()> {
    ctx.drivers.amphora.upload_vrrp_config(amp, config).await?;
    ctx.drivers
        .amphora
        .vrrp_action(amp, VrrpAction::Start)
        .await?;
    Ok(())
}

/// How long a failover waits for an amphora it replaces to stop its keepalived: a dead one
/// (the usual reason for a failover) does not answer, and its peer took the VIP long ago.
const RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A failover's amphorae being replaced stop keepalived (best effort): a live holder sends
/// its priority-0 advert and its peer takes the VIP at once instead of after the master
/// down interval, or instead of both holding it until the old one is deleted.
async fn release_vip(ctx: &JobContext) -> Result<()> {
    for old in ctx.old_amphorae().await? {
        if old.status != ProvisioningStatus::Allocated {
            continue;
        }
        // A dead instance (the health manager's failovers) has nothing to release.
        if !ctx.instance_running(&old).await {
            debug!(amphora_id = %old.id, "the amphora being replaced is not running; nothing to release");
            continue;
        }
        let stop = ctx.drivers.amphora.vrrp_action(&old, VrrpAction::Stop);
        match tokio::time::timeout(RELEASE_TIMEOUT, stop).await {
            Ok(Ok(())) => {
                info!(amphora_id = %old.id, "keepalived stopped on the amphora being replaced")
            }
            Ok(Err(error)) => debug!(amphora_id = %old.id, %error,
                "cannot stop keepalived on the amphora being replaced; it is deleted next"),
            Err(_) => debug!(amphora_id = %old.id,
                "the amphora being replaced does not answer; it is deleted next"),
        }
    }
    Ok(())
}

/// An ACTIVE_STANDBY load balancer failover in Octavia's order (reference §8.5): the amphora
/// that does not hold the VIP (or does not answer) is replaced first, by a BACKUP; the
/// holder last, by a MASTER. Each phase is a whole amphora failover (build, agent, VIP,
/// configuration, keepalived with the survivor as peer, delete the old one), so the load
/// balancer keeps one serving amphora throughout and the VIP moves once. Anything but a pair
/// to replace (SINGLE, a missing amphora) is left to the flow's ordinary steps, which
/// rebuild what is missing. Resumable: a phase that finished is not run again.
async fn replace_standby_pair(ctx: &JobContext) -> Result<()> {
    let lb = ctx.load_balancer().await?;
    if lb.topology != Topology::ActiveStandby {
        return Ok(());
    }
    let mut old = ctx.old_amphorae().await?;
    let first_done = ctx
        .store
        .get_amphora(ctx.new_amphora_id(AmphoraRole::Backup).await?)
        .await?
        .is_some_and(|a| a.status == ProvisioningStatus::Allocated)
        && old.len() == 1;
    if !first_done {
        if old.len() != 2 {
            return Ok(());
        }
        let address = JobContext::vip_address(&lb)?;
        let mut first = None;
        for amp in &old {
            let probe = ctx.drivers.amphora.interface_of(amp, &address);
            let holds = matches!(
                tokio::time::timeout(RELEASE_TIMEOUT, probe).await,
                Ok(Ok(_))
            );
            if !holds {
                first = Some(amp.id);
                break;
            }
        }
        // Both answer that they hold it (split brain): either may go first.
        let first = first.unwrap_or(old[1].id);
        info!(lb_id = %lb.id, amphora_id = %first, "failover: replacing the amphora that does not hold the VIP first");
        replace_one(ctx, first, AmphoraRole::Backup).await?;
        old.retain(|a| a.id != first);
    }
    if let [holder] = old.as_slice() {
        info!(lb_id = %lb.id, amphora_id = %holder.id, "failover: replacing the VIP holder");
        replace_one(ctx, holder.id, AmphoraRole::Master).await?;
    }
    Ok(())
}

/// One phase of [`replace_standby_pair`]: the steps of an amphora failover for `old`, whose
/// replacement gets `role`.
async fn replace_one(ctx: &JobContext, old: AmphoraId, role: AmphoraRole) -> Result<()> {
    let mut phase = ctx.clone();
    phase.spec.amphora_id = Some(old);
    phase.replacement_role = Some(role);
    build_amphorae(&phase).await?;
    wait_for_agent(&phase).await?;
    plug_vip(&phase).await?;
    update_amphorae(&phase).await?;
    configure_vrrp(&phase).await?;
    delete_old_amphorae(&phase).await
}

/// Revert of [`replace_standby_pair`]: what a failed phase built goes, as the ordinary
/// steps' reverts would take it back.
async fn revert_standby_pair(ctx: &JobContext) -> Result<()> {
    stop_vrrp(ctx).await?;
    unplug_vip(ctx, &ctx.built_amphorae().await?).await?;
    revert_build(ctx).await
}

/// Revert of [`configure_vrrp`]: stop keepalived on the amphorae this job built, so they give
/// up the VIP before the build's revert deletes them. Best effort: an amphora that cannot be
/// reached holds nothing another can see, and it is deleted next.
async fn stop_vrrp(ctx: &JobContext) -> Result<()> {
    if ctx.load_balancer().await?.topology != Topology::ActiveStandby {
        return Ok(());
    }
    let mut amps = ctx.built_amphorae().await?;
    amps.retain(|a| a.status == ProvisioningStatus::Allocated);
    amps.sort_by_key(|a| (a.role != Some(AmphoraRole::Master), a.id));
    for amp in amps.iter().rev() {
        match ctx.drivers.amphora.vrrp_action(amp, VrrpAction::Stop).await {
            Ok(()) => info!(amphora_id = %amp.id, "keepalived stopped"),
            Err(error) => warn!(amphora_id = %amp.id, %error,
                "cannot stop keepalived on an amphora whose build is being reverted"),
        }
    }
    Ok(())
}

/// Stop the load balancer's listeners on its amphorae before they are deleted. Best effort:
/// the next steps delete the amphorae anyway, so an amphora that cannot be reached (the
/// reason a load balancer is often in ERROR) must not stop the delete.
async fn remove_listeners(ctx: &JobContext) -> Result<()> {
    let lb_id = ctx.load_balancer_id()?;
    for amp in ctx.serving_amphorae().await? {
        if let Err(error) = ctx.drivers.amphora.remove_config(&amp, lb_id).await {
            warn!(amphora_id = %amp.id, lb_id = %lb_id, %error,
                "cannot stop the listeners of an amphora about to be deleted; deleting it anyway");
        }
    }
    Ok(())
}

async fn delete_amphorae(ctx: &JobContext, amps: Vec<Amphora>) -> Result<()> {
    for mut amp in amps {
        if let Some(cid) = &amp.compute_id {
            ctx.drivers.compute.delete(cid).await?;
        }
        amp.status = ProvisioningStatus::Deleted;
        amp.updated_at = Some(now());
        ctx.store.save_amphora(&amp).await?;
        info!(amphora_id = %amp.id, "amphora deleted");
    }
    Ok(())
}

/// The job's amphora: its VIP port unplugged (when it serves a load balancer), its instance
/// deleted, its row DELETED. Already DELETED: nothing to do.
async fn delete_one_amphora(ctx: &JobContext) -> Result<()> {
    let id = ctx.spec.amphora_id.unwrap_or(AmphoraId(ctx.spec.target_id));
    let Some(amp) = ctx.store.get_amphora_any(id).await? else {
        return Ok(());
    };
    if amp.status == ProvisioningStatus::Deleted {
        return Ok(());
    }
    let vip = match amp.load_balancer_id {
        Some(lb_id) => ctx.store.get_load_balancer(lb_id).await?.map(|lb| lb.vip),
        None => None,
    };
    ctx.drivers
        .network
        .unplug_vip(&amp, &vip.unwrap_or_default())
        .await?;
    delete_amphorae(ctx, vec![amp]).await
}

/// The job's amphora gets the agent configuration its compute driver gives now.
/// The heartbeat key amphorae get now: the stored ring's current key (`octavia
/// heartbeat-key rotate`); `None` until a rotation stored one (the compute driver's
/// configured key, `[health_manager] heartbeat_key`, is current).
async fn current_heartbeat_key(ctx: &JobContext) -> Result<Option<octavia_drivers::Secret>> {
    Ok(ctx
        .store
        .current_heartbeat_key()
        .await?
        .map(|k| octavia_drivers::Secret::new(k.secret())))
}

async fn update_agent_config(ctx: &JobContext) -> Result<()> {
    let id = ctx.spec.amphora_id.unwrap_or(AmphoraId(ctx.spec.target_id));
    let Some(amp) = ctx.store.get_amphora(id).await? else {
        return Ok(());
    };
    let Some(compute_id) = amp.compute_id.clone() else {
        info!(amphora_id = %amp.id, "amphora has no instance; no agent configuration to push");
        return Ok(());
    };
    match ctx
        .drivers
        .compute
        .agent_config(
            &compute_id,
            amp.id,
            current_heartbeat_key(ctx).await?.as_ref(),
        )
        .await?
    {
        Some(text) => {
            ctx.drivers.amphora.update_agent_config(&amp, &text).await?;
            info!(amphora_id = %amp.id, "agent configuration pushed");
        }
        None => info!(amphora_id = %amp.id, "the compute driver has no agent configuration"),
    }
    Ok(())
}

/// The job's amphora gets a new server certificate; its expiry is recorded once the agent
/// took it. Running again (a resumed job) issues and installs another one, which is as good.
/// An amphora gone meanwhile (deleted, replaced by a failover) needs none.
async fn rotate_certificate(ctx: &JobContext) -> Result<()> {
    let id = ctx.spec.amphora_id.unwrap_or(AmphoraId(ctx.spec.target_id));
    let Some(amp) = ctx.store.get_amphora(id).await? else {
        info!(amphora_id = %id, "amphora is gone; no certificate to renew");
        return Ok(());
    };
    if matches!(
        amp.status,
        ProvisioningStatus::Deleted | ProvisioningStatus::PendingDelete
    ) || amp.lb_network_ip.is_none()
    {
        info!(amphora_id = %id, status = %amp.status, "amphora is not serving; no certificate to renew");
        return Ok(());
    }
    let cert = ctx.drivers.certificates.amphora_certificate(id)?;
    ctx.drivers
        .amphora
        .upload_server_certificate(&amp, &cert)
        .await?;
    ctx.store
        .record_cert_expiration(id, cert.expires_at)
        .await?;
    info!(
        amphora_id = %id,
        previous = ?amp.cert_expiration,
        expires_at = %cert.expires_at,
        "amphora certificate renewed"
    );
    Ok(())
}

async fn delete_old_amphorae(ctx: &JobContext) -> Result<()> {
    let old = ctx.old_amphorae().await?;
    unplug_vip(ctx, &old).await?;
    delete_amphorae(ctx, old).await
}
