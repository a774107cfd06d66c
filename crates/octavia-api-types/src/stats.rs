//! Traffic statistics body (`{"stats": {...}}`) of load balancers and listeners.

use serde::{Deserialize, Serialize};

use octavia_model::ListenerStatistics;

/// Counters as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsResponse {
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub active_connections: i64,
    pub total_connections: i64,
    pub request_errors: i64,
}

impl From<&ListenerStatistics> for StatsResponse {
    fn from(s: &ListenerStatistics) -> Self {
        Self {
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            active_connections: s.active_connections,
            total_connections: s.total_connections,
            request_errors: s.request_errors,
        }
    }
}
