//! Where each object kind lives in the schema: its table, the column naming its parent,
//! and which of its rows are live (not soft-deleted).

use octavia_model::ObjectKind;

/// The schema facts of an [`ObjectKind`] (Octavia's table and column names).
pub(crate) trait Table: Copy {
    /// The table holding objects of this kind.
    fn table(self) -> &'static str;
    /// The column naming the parent object; `None` for a load balancer.
    fn parent_column(self) -> Option<&'static str>;
    /// The condition (alias `x`) that leaves out soft-deleted rows, for the kinds that
    /// are soft-deleted.
    fn live(self) -> Option<&'static str>;
}

impl Table for ObjectKind {
    fn table(self) -> &'static str {
        match self {
            ObjectKind::LoadBalancer => "load_balancer",
            ObjectKind::Listener => "listener",
            ObjectKind::Pool => "pool",
            ObjectKind::Member => "member",
            ObjectKind::HealthMonitor => "health_monitor",
            ObjectKind::L7Policy => "l7policy",
            ObjectKind::L7Rule => "l7rule",
            ObjectKind::Amphora => "amphora",
        }
    }

    fn parent_column(self) -> Option<&'static str> {
        match self {
            ObjectKind::LoadBalancer => None,
            ObjectKind::Listener | ObjectKind::Pool | ObjectKind::Amphora => {
                Some("load_balancer_id")
            }
            ObjectKind::Member | ObjectKind::HealthMonitor => Some("pool_id"),
            ObjectKind::L7Policy => Some("listener_id"),
            ObjectKind::L7Rule => Some("l7policy_id"),
        }
    }

    fn live(self) -> Option<&'static str> {
        match self {
            ObjectKind::LoadBalancer => Some("x.provisioning_status <> 'DELETED'"),
            ObjectKind::Amphora => Some("x.status <> 'DELETED'"),
            _ => None,
        }
    }
}
