//! What a job asks the worker to do, and which objects it holds locked.
//!
//! The API moves objects to `PENDING_*` and inserts a job in one transaction. The
//! [`JobSpec`] it writes names the target and every parent it locked, so the worker
//! can settle all of them (ACTIVE, ERROR, or deleted) without re-deriving the graph.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{AmphoraId, InvalidEnum, L7PolicyId, ListenerId, LoadBalancerId, MemberId, PoolId};

/// Scheduling class of a job. Lower [`JobClass::priority`] runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobClass {
    /// Automatic failover started by the health manager.
    Failover,
    /// Anything a tenant asked for through the API.
    Tenant,
    /// Operator-requested failovers and rotations.
    Operator,
}

impl JobClass {
    /// Every class, most urgent first.
    pub const ALL: [JobClass; 3] = [JobClass::Failover, JobClass::Tenant, JobClass::Operator];

    /// Queue priority: lower runs first (Octavia uses 20 for failover, 40 for creates).
    pub fn priority(&self) -> i32 {
        match self {
            Self::Failover => 20,
            Self::Tenant => 40,
            Self::Operator => 80,
        }
    }
    /// The database spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Failover => "failover",
            Self::Tenant => "tenant",
            Self::Operator => "operator",
        }
    }
}

impl FromStr for JobClass {
    type Err = InvalidEnum;
    fn from_str(s: &str) -> Result<Self, InvalidEnum> {
        match s {
            "failover" => Ok(Self::Failover),
            "tenant" => Ok(Self::Tenant),
            "operator" => Ok(Self::Operator),
            _ => Err(InvalidEnum {
                value: s.to_string(),
                allowed: &["failover", "tenant", "operator"],
            }),
        }
    }
}

/// Lifecycle of a job row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Waiting to be claimed (also: lease expired, waiting to be resumed).
    Queued,
    /// Claimed by a worker holding a lease.
    Running,
    /// Finished successfully.
    Done,
    /// Finished after reverting.
    Failed,
}

impl JobState {
    /// The database spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
        }
    }
}

impl FromStr for JobState {
    type Err = InvalidEnum;
    fn from_str(s: &str) -> Result<Self, InvalidEnum> {
        match s {
            "QUEUED" => Ok(Self::Queued),
            "RUNNING" => Ok(Self::Running),
            "DONE" => Ok(Self::Done),
            "FAILED" => Ok(Self::Failed),
            _ => Err(InvalidEnum {
                value: s.to_string(),
                allowed: &["QUEUED", "RUNNING", "DONE", "FAILED"],
            }),
        }
    }
}

/// Kinds of objects a job can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    LoadBalancer,
    Listener,
    Pool,
    Member,
    HealthMonitor,
    L7Policy,
    L7Rule,
    Amphora,
}

impl ObjectKind {
    /// Every kind.
    pub const ALL: [ObjectKind; 8] = [
        Self::LoadBalancer,
        Self::Listener,
        Self::Pool,
        Self::Member,
        Self::HealthMonitor,
        Self::L7Policy,
        Self::L7Rule,
        Self::Amphora,
    ];

    /// Snake-case name, used in job kinds and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::LoadBalancer => "load_balancer",
            Self::Listener => "listener",
            Self::Pool => "pool",
            Self::Member => "member",
            Self::HealthMonitor => "health_monitor",
            Self::L7Policy => "l7policy",
            Self::L7Rule => "l7rule",
            Self::Amphora => "amphora",
        }
    }

    /// Octavia's name of the kind in user-facing messages (`Load Balancer 42 not found.`).
    pub fn display_name(&self) -> &'static str {
        match self {
            Self::LoadBalancer => "Load Balancer",
            Self::Listener => "Listener",
            Self::Pool => "Pool",
            Self::Member => "Member",
            Self::HealthMonitor => "Health Monitor",
            Self::L7Policy => "L7 Policy",
            Self::L7Rule => "L7 Rule",
            Self::Amphora => "Amphora",
        }
    }
}

/// What the job does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
    Failover,
    /// Batch member update of one pool (`PUT /pools/{id}/members`).
    BatchUpdate,
    /// Replace an amphora's server certificate before it expires (housekeeping).
    RotateCertificate,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 6] = [
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Failover,
        Self::BatchUpdate,
        Self::RotateCertificate,
    ];

    /// Snake-case name, used in job kinds and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Failover => "failover",
            Self::BatchUpdate => "batch_update",
            Self::RotateCertificate => "rotate_certificate",
        }
    }

    /// Whether a job of this action on a `target` of that kind builds amphorae: creating a
    /// load balancer or a spare amphora, failing over a load balancer or an amphora. Such
    /// jobs count against the build cap whatever their class.
    pub fn builds_amphorae(self, target: ObjectKind) -> bool {
        matches!(
            (self, target),
            (Self::Create, ObjectKind::LoadBalancer | ObjectKind::Amphora)
                | (
                    Self::Failover,
                    ObjectKind::LoadBalancer | ObjectKind::Amphora
                )
        )
    }
}

/// The parents a write moved to `PENDING_UPDATE` (reference §2.3), to be set back
/// to ACTIVE when the job ends (or the load balancer to ERROR for LB-level flows).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LockSet {
    /// The load balancer (always locked).
    pub load_balancer_id: Option<LoadBalancerId>,
    /// Listeners moved to PENDING_UPDATE.
    #[serde(default)]
    pub listener_ids: Vec<ListenerId>,
    /// Pool moved to PENDING_UPDATE (member/health monitor writes).
    #[serde(default)]
    pub pool_id: Option<PoolId>,
    /// L7 policy moved to PENDING_UPDATE (L7 rule writes).
    #[serde(default)]
    pub l7policy_id: Option<L7PolicyId>,
}

impl LockSet {
    /// Only the load balancer `id` locked.
    pub fn load_balancer(id: LoadBalancerId) -> Self {
        Self {
            load_balancer_id: Some(id),
            ..Default::default()
        }
    }
}

/// Members touched by a batch update.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberBatch {
    pub created: Vec<MemberId>,
    pub updated: Vec<MemberId>,
    pub deleted: Vec<MemberId>,
}

/// The payload of a job: what to do, to what, and what is locked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub action: Action,
    pub target_kind: ObjectKind,
    /// Id of the target object (the pool for a batch member update).
    pub target_id: Uuid,
    pub locks: LockSet,
    /// `DELETE ...?cascade=true` on a load balancer.
    #[serde(default)]
    pub cascade: bool,
    /// Set for [`Action::BatchUpdate`].
    #[serde(default)]
    pub members: Option<MemberBatch>,
    /// The amphora to replace, for amphora failover.
    #[serde(default)]
    pub amphora_id: Option<AmphoraId>,
    /// Set on the amphora failovers an operator queued to rotate images
    /// (`octavia amphora rotate`): such a job locks its load balancer only when it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
}

/// The marker of an image rotation job: which batch (one `octavia amphora rotate`) it
/// belongs to and how fast that batch may start its rotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// The batch: every job one `octavia amphora rotate` queued.
    pub batch: Uuid,
    /// At most this many rotations of the batch start per minute (`None`: no limit).
    #[serde(default)]
    pub rate_per_minute: Option<u32>,
}

impl Rotation {
    /// The least time between two starts of the batch's rotations (`None`: no limit;
    /// a rate of 0 is refused by the command line, and reads as no limit here).
    pub fn spacing(&self) -> Option<std::time::Duration> {
        self.rate_per_minute
            .filter(|r| *r > 0)
            .map(|r| std::time::Duration::from_secs(60) / r)
    }
}

impl JobSpec {
    /// A job on `target_id` (of kind `target_kind`) holding `locks`; no cascade, no member
    /// batch, no amphora.
    pub fn new(action: Action, target_kind: ObjectKind, target_id: Uuid, locks: LockSet) -> Self {
        Self {
            action,
            target_kind,
            target_id,
            locks,
            cascade: false,
            members: None,
            amphora_id: None,
            rotation: None,
        }
    }

    /// The job kind stored in the `job.kind` column, e.g. `create_load_balancer`.
    pub fn kind(&self) -> String {
        Self::kind_of(self.action, self.target_kind)
    }

    /// The job kind of `action` on a target of kind `target`.
    pub fn kind_of(action: Action, target: ObjectKind) -> String {
        format!("{}_{}", action.as_str(), target.as_str())
    }

    /// Whether this job builds amphorae ([`Action::builds_amphorae`]).
    pub fn builds_amphorae(&self) -> bool {
        self.action.builds_amphorae(self.target_kind)
    }

    /// The kinds of the jobs that build amphorae, actions in [`Action::ALL`] order, then
    /// targets in [`ObjectKind::ALL`] order.
    pub fn build_kinds() -> Vec<String> {
        Action::ALL
            .iter()
            .flat_map(|a| ObjectKind::ALL.iter().map(move |k| (*a, *k)))
            .filter(|(a, k)| a.builds_amphorae(*k))
            .map(|(a, k)| Self::kind_of(a, k))
            .collect()
    }
}

impl fmt::Display for JobSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.target_id)
    }
}

/// A job to insert: its class and its spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    pub class: JobClass,
    pub spec: JobSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_order_failover_before_tenant_before_operator() {
        assert!(JobClass::Failover.priority() < JobClass::Tenant.priority());
        assert!(JobClass::Tenant.priority() < JobClass::Operator.priority());
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = JobSpec {
            action: Action::Create,
            target_kind: ObjectKind::Listener,
            target_id: Uuid::new_v4(),
            locks: LockSet {
                load_balancer_id: Some(LoadBalancerId::new()),
                ..Default::default()
            },
            cascade: false,
            members: None,
            amphora_id: None,
            rotation: None,
        };
        assert_eq!(spec.kind(), "create_listener");
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(serde_json::from_value::<JobSpec>(v).unwrap(), spec);
    }

    #[test]
    fn rotation_marker_round_trips_and_spaces_starts() {
        let mut spec = JobSpec::new(
            Action::Failover,
            ObjectKind::Amphora,
            Uuid::new_v4(),
            LockSet::default(),
        );
        // Jobs written before rotations existed have no marker.
        let plain = serde_json::to_value(&spec).unwrap();
        assert!(plain.get("rotation").is_none());
        assert_eq!(serde_json::from_value::<JobSpec>(plain).unwrap(), spec);
        let rotation = Rotation {
            batch: Uuid::new_v4(),
            rate_per_minute: Some(4),
        };
        spec.rotation = Some(rotation);
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(serde_json::from_value::<JobSpec>(v).unwrap(), spec);
        assert_eq!(rotation.spacing(), Some(std::time::Duration::from_secs(15)));
        let unlimited = Rotation {
            rate_per_minute: None,
            ..rotation
        };
        assert_eq!(unlimited.spacing(), None);
    }

    #[test]
    fn creates_and_failovers_build_amphorae() {
        assert_eq!(
            JobSpec::build_kinds(),
            [
                "create_load_balancer",
                "create_amphora",
                "failover_load_balancer",
                "failover_amphora"
            ]
        );
        let spec = JobSpec::new(
            Action::Update,
            ObjectKind::LoadBalancer,
            Uuid::new_v4(),
            LockSet::default(),
        );
        assert!(!spec.builds_amphorae());
    }
}
