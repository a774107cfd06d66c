//! The compute driver: builds, inspects and deletes the instances amphorae run on.

use async_trait::async_trait;
use octavia_model::AmphoraId;

use crate::certs::{AmphoraCert, Secret};
use crate::Result;

/// What to build for one amphora. The flows fill it from the configuration and from the
/// load balancer's flavor and availability zone (their profiles' settings win).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// The amphora the instance will run (its agent certificate names this id).
    pub amphora_id: AmphoraId,
    /// Image to boot (`[controller_worker] amp_image_id`); `None` = the newest image
    /// carrying `image_tag`.
    pub image_id: Option<String>,
    /// Tag that selects the image when `image_id` is `None` (the flavor's `amp_image_tag`,
    /// else `[controller_worker] amp_image_tag`).
    pub image_tag: Option<String>,
    /// Compute flavor (the flavor's `compute_flavor`, else `[controller_worker]
    /// amp_flavor_id`).
    pub flavor: Option<String>,
    /// Compute zone to place the instance in (the availability zone's `compute_zone`);
    /// `None` = anywhere. A driver that cannot place it there fails the build.
    pub availability_zone: Option<String>,
    /// Management network to plug the instance into (the availability zone's
    /// `management_network`); `None` = the driver's configured one. A driver that does not
    /// have it fails the build.
    pub management_network: Option<String>,
    /// Compute ids of instances this one should not share a host with (ACTIVE_STANDBY
    /// peers); empty when anti-affinity is off.
    pub anti_affinity_peers: Vec<String>,
    /// How strictly `anti_affinity_peers` apply.
    pub anti_affinity: AntiAffinity,
    /// The server certificate the amphora's agent starts with (issued by the flow, which
    /// records its expiry on the amphora row, as Octavia's config drive carries it).
    pub server_certificate: AmphoraCert,
    /// The heartbeat key the amphora signs with: the current key of the stored ring
    /// (`octavia heartbeat-key rotate`); `None`: the driver's configured key.
    pub heartbeat_key: Option<Secret>,
}

/// How strictly a build keeps away from its peers' hosts (Nova's server group policies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AntiAffinity {
    /// Never on a peer's host: no such host left fails the build (permanently).
    #[default]
    Hard,
    /// A host without peers when there is one, else the least-loaded host.
    Soft,
}

/// Lifecycle of an instance as the compute service reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComputeStatus {
    /// Created, not yet running.
    Building,
    /// Running; the agent should become reachable.
    Active,
    /// The build failed or the instance crashed.
    Error,
    /// Deleted or never existed.
    Deleted,
}

/// One instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputeInstance {
    pub compute_id: String,
    pub status: ComputeStatus,
    /// Address on the management network the controller talks to the agent on.
    pub lb_network_ip: Option<String>,
    /// The hypervisor host running the instance.
    pub host: Option<String>,
    /// The image it booted from.
    pub image_id: Option<String>,
    /// The availability zone it runs in.
    pub availability_zone: Option<String>,
}

/// Builds and deletes amphora instances.
///
/// Implementations must make `delete` idempotent (deleting a missing instance succeeds),
/// because flows revert and resume after crashes.
#[async_trait]
pub trait ComputeDriver: Send + Sync {
    /// Start building an instance; returns its compute id at once (it may still be booting).
    async fn build(&self, request: &BuildRequest) -> Result<String>;

    /// The instance as the compute service sees it now (status `Deleted` if unknown).
    async fn instance(&self, compute_id: &str) -> Result<ComputeInstance>;

    /// Delete the instance; succeeds if it is already gone.
    async fn delete(&self, compute_id: &str) -> Result<()>;

    /// The image a build naming `image_tag` (and no image id) would boot now — the newest
    /// image carrying the tag. Image rotation compares each amphora's image with it.
    async fn current_image(&self, image_tag: &str) -> Result<String>;

    /// The agent configuration this driver would give the instance now (regenerated from
    /// the controller's current settings: heartbeat key, controllers, interval), for
    /// `PUT /amphorae/{id}/config`, with `heartbeat_key` (the stored ring's current key;
    /// `None`: the driver's configured one). `None`: the driver has none to give.
    async fn agent_config(
        &self,
        _compute_id: &str,
        _amphora_id: octavia_model::AmphoraId,
        _heartbeat_key: Option<&Secret>,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    /// The current status of the instance.
    async fn status(&self, compute_id: &str) -> Result<ComputeStatus> {
        Ok(self.instance(compute_id).await?.status)
    }

    /// The host the instance runs on, if it is placed.
    async fn host(&self, compute_id: &str) -> Result<Option<String>> {
        Ok(self.instance(compute_id).await?.host)
    }
}
