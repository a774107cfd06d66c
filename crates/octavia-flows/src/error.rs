//! The one error of the flows: a failed step, with its retryability and owner.

use octavia_db::DbError;
use octavia_drivers::{DriverError, FaultOwner};
use octavia_model::LoadBalancerId;
use octavia_render::RenderError;

/// Why a step (or the engine around it) failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// A driver call failed; it says whose fault and whether to retry.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The store failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A failpoint configured to fail this step.
    #[error("failpoint {0} triggered")]
    Failpoint(String),
    /// An object the flow works on is gone.
    #[error("{kind} {id} not found")]
    Missing { kind: &'static str, id: String },
    /// No flow exists for this job kind.
    #[error("no flow for job kind {0}")]
    UnknownKind(String),
    /// `OCTAVIA_FAILPOINTS` (or a programmatic spec) could not be parsed.
    #[error("invalid failpoint specification: {0}")]
    FailpointSpec(String),
    /// The load balancer's configuration cannot be rendered (e.g. a protocol the renderer
    /// does not support yet). Never retried: the same tree renders the same way.
    #[error("render {config} configuration of load balancer {load_balancer}: {source}")]
    Render {
        /// Which configuration: `haproxy` or `keepalived`.
        config: &'static str,
        load_balancer: LoadBalancerId,
        #[source]
        source: RenderError,
    },
    /// An invariant of our own was broken (e.g. an allocated amphora without a compute id).
    #[error("{0}")]
    Internal(String),
}

impl FlowError {
    /// Whether the engine should try the step again before reverting.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Driver(e) => e.is_retryable(),
            Self::Db(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Whose fault the failure is (the database and our own invariants count as ours).
    pub fn owner(&self) -> FaultOwner {
        match self {
            Self::Driver(e) => e.owner(),
            _ => FaultOwner::Ours,
        }
    }
}

/// Result alias of the flows.
pub type Result<T> = std::result::Result<T, FlowError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_errors_are_permanent_and_ours() {
        let e = FlowError::Render {
            config: "haproxy",
            load_balancer: LoadBalancerId::new(),
            source: RenderError::Unsupported {
                subject: octavia_render::Subject::Settings,
                reason: "protocol UDP".into(),
            },
        };
        assert!(!e.is_retryable());
        assert_eq!(e.owner(), FaultOwner::Ours);
        let text = e.to_string();
        assert!(text.starts_with("render haproxy configuration of load balancer "));
        assert!(
            text.ends_with("unsupported: settings: protocol UDP"),
            "{text}"
        );
    }
}
