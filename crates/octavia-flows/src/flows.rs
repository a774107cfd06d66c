//! Which steps make up the flow of each job kind.

use octavia_model::{Action, JobSpec, ObjectKind};

use crate::context::JobContext;
use crate::engine::Flow;
use crate::steps::StepKind::{self, *};
use crate::{FlowError, Result};

/// The step sequence of a job kind.
pub fn steps_for(spec: &JobSpec) -> Result<Vec<StepKind>> {
    use Action as A;
    use ObjectKind as K;
    let steps = match (spec.action, spec.target_kind) {
        // A single-call create stores members with the load balancer: their networks are
        // plugged before the configuration that sends traffic to them is pushed. keepalived
        // (ACTIVE_STANDBY) starts once HAProxy serves, so its check passes from the start.
        (A::Create, K::LoadBalancer) => vec![
            AllocateVip,
            BuildAmphora,
            WaitForAgent,
            PlugVip,
            PlugMemberNetworks,
            UpdateAmphorae,
            ConfigureVrrp,
        ],
        (A::Update, K::LoadBalancer) => vec![UpdateAmphorae],
        (A::Delete, K::LoadBalancer) if spec.cascade => {
            vec![RemoveListeners, UnplugVip, DeallocateVip, DeleteAmphorae]
        }
        (A::Delete, K::LoadBalancer) => vec![UnplugVip, DeallocateVip, DeleteAmphorae],
        (A::Failover, K::LoadBalancer) => vec![
            ReplaceStandbyPair,
            BuildAmphora,
            WaitForAgent,
            PlugVip,
            UpdateAmphorae,
            ConfigureVrrp,
            DeleteOldAmphorae,
        ],
        (A::Failover, K::Amphora) => vec![
            BuildAmphora,
            WaitForAgent,
            PlugVip,
            UpdateAmphorae,
            ConfigureVrrp,
            DeleteOldAmphorae,
        ],
        (A::Create, K::Amphora) => vec![BuildSpare],
        (A::Delete, K::Amphora) => vec![DeleteAmphora],
        (A::Update, K::Amphora) => vec![UpdateAgentConfig],
        (A::RotateCertificate, K::Amphora) => vec![RotateCertificate],
        // A batch member update targets the pool whose members it replaces.
        (A::Create | A::Update | A::Delete, K::Member) | (A::BatchUpdate, K::Pool) => {
            vec![PlugMemberNetworks, UpdateAmphorae]
        }
        (
            A::Create | A::Update | A::Delete,
            K::Listener | K::Pool | K::HealthMonitor | K::L7Policy | K::L7Rule,
        ) => vec![UpdateAmphorae],
        _ => return Err(FlowError::UnknownKind(spec.kind())),
    };
    Ok(steps)
}

/// The flow of a job, named by its kind (`create_load_balancer`, ...).
pub fn flow_for(spec: &JobSpec) -> Result<Flow<JobContext>> {
    Ok(steps_for(spec)?
        .into_iter()
        .fold(Flow::new(spec.kind()), |flow, step| flow.then(step)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use octavia_model::{LockSet, MemberBatch};
    use uuid::Uuid;

    fn spec(action: Action, kind: ObjectKind) -> JobSpec {
        JobSpec {
            action,
            target_kind: kind,
            target_id: Uuid::new_v4(),
            locks: LockSet::default(),
            cascade: false,
            members: (action == Action::BatchUpdate).then(MemberBatch::default),
            amphora_id: None,
            rotation: None,
        }
    }

    #[test]
    fn every_job_kind_the_api_creates_has_a_flow() {
        use Action::*;
        use ObjectKind::*;
        for kind in [
            Listener,
            Pool,
            Member,
            HealthMonitor,
            L7Policy,
            L7Rule,
            LoadBalancer,
        ] {
            for action in [Create, Update, Delete] {
                let f = flow_for(&spec(action, kind)).unwrap();
                assert_eq!(f.name(), format!("{}_{}", action.as_str(), kind.as_str()));
                assert!(!f.step_names().is_empty());
            }
        }
        assert_eq!(
            flow_for(&spec(BatchUpdate, Pool)).unwrap().step_names(),
            vec!["plug_member_networks", "update_amphorae"]
        );
        assert!(flow_for(&spec(BatchUpdate, Member)).is_err());
        assert!(flow_for(&spec(Failover, LoadBalancer)).is_ok());
        assert!(flow_for(&spec(Failover, Amphora)).is_ok());
        assert_eq!(
            flow_for(&spec(Delete, Amphora)).unwrap().step_names(),
            vec!["delete_amphora"]
        );
        assert_eq!(
            flow_for(&spec(Update, Amphora)).unwrap().step_names(),
            vec!["update_agent_config"]
        );
        assert_eq!(
            flow_for(&spec(RotateCertificate, Amphora))
                .unwrap()
                .step_names(),
            vec!["rotate_certificate"]
        );
        assert!(flow_for(&spec(RotateCertificate, LoadBalancer)).is_err());
        assert!(matches!(
            flow_for(&spec(Failover, Pool)),
            Err(FlowError::UnknownKind(k)) if k == "failover_pool"
        ));
    }

    /// The store counts the jobs that build amphorae against the build cap
    /// (`JobSpec::builds_amphorae`): exactly the flows that have a build step.
    #[test]
    fn the_jobs_the_store_counts_as_builds_are_the_flows_that_build() {
        for action in Action::ALL {
            for kind in ObjectKind::ALL {
                let spec = spec(action, kind);
                let builds = steps_for(&spec).is_ok_and(|steps| {
                    steps.contains(&BuildAmphora) || steps.contains(&BuildSpare)
                });
                assert_eq!(builds, spec.builds_amphorae(), "{}", spec.kind());
            }
        }
    }

    #[test]
    fn load_balancer_create_steps_are_in_build_order() {
        let f = flow_for(&spec(Action::Create, ObjectKind::LoadBalancer)).unwrap();
        assert_eq!(
            f.step_names(),
            [
                "allocate_vip",
                "build_amphora",
                "wait_for_agent",
                "plug_vip",
                "plug_member_networks",
                "update_amphorae",
                "configure_vrrp"
            ]
        );
        let mut cascade = spec(Action::Delete, ObjectKind::LoadBalancer);
        cascade.cascade = true;
        assert_eq!(
            flow_for(&cascade).unwrap().step_names()[0],
            "remove_listeners"
        );
    }
}
