//! Amphora (admin API) response bodies: the amphora and its statistics.

use serde::{Deserialize, Serialize};

use octavia_model::{Amphora, AmphoraRole, AmphoraStatistics, ProvisioningStatus};

use crate::common::{fmt_opt_time, fmt_time};

/// An amphora as `GET /v2/octavia/amphorae` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmphoraResponse {
    pub id: String,
    pub loadbalancer_id: Option<String>,
    pub compute_id: Option<String>,
    pub lb_network_ip: Option<String>,
    pub vrrp_ip: Option<String>,
    pub ha_ip: Option<String>,
    pub vrrp_port_id: Option<String>,
    pub ha_port_id: Option<String>,
    pub cert_expiration: Option<String>,
    pub cert_busy: bool,
    pub role: Option<AmphoraRole>,
    pub status: ProvisioningStatus,
    pub vrrp_interface: Option<String>,
    pub vrrp_id: Option<i32>,
    pub vrrp_priority: Option<i32>,
    pub cached_zone: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub image_id: Option<String>,
    pub compute_flavor: Option<String>,
}

impl From<&Amphora> for AmphoraResponse {
    fn from(a: &Amphora) -> Self {
        Self {
            id: a.id.to_string(),
            loadbalancer_id: a.load_balancer_id.map(|l| l.to_string()),
            compute_id: a.compute_id.clone(),
            lb_network_ip: a.lb_network_ip.clone(),
            vrrp_ip: a.vrrp_ip.clone(),
            ha_ip: a.ha_ip.clone(),
            vrrp_port_id: a.vrrp_port_id.clone(),
            ha_port_id: a.ha_port_id.clone(),
            cert_expiration: fmt_opt_time(&a.cert_expiration),
            cert_busy: a.cert_busy,
            role: a.role,
            status: a.status,
            vrrp_interface: a.vrrp_interface.clone(),
            vrrp_id: a.vrrp_id,
            vrrp_priority: a.vrrp_priority,
            cached_zone: a.cached_zone.clone(),
            created_at: fmt_time(&a.created_at),
            updated_at: fmt_opt_time(&a.updated_at),
            image_id: a.image_id.clone(),
            compute_flavor: a.compute_flavor.clone(),
        }
    }
}

/// The counters of one listener on one amphora, one item of `amphora_stats` in
/// `GET /v2/octavia/amphorae/{id}/stats` (v2.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmphoraStatisticsResponse {
    /// The amphora's id.
    pub id: String,
    pub loadbalancer_id: Option<String>,
    pub listener_id: String,
    pub active_connections: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub request_errors: i64,
    pub total_connections: i64,
}

impl From<&AmphoraStatistics> for AmphoraStatisticsResponse {
    fn from(s: &AmphoraStatistics) -> Self {
        Self {
            id: s.amphora_id.to_string(),
            loadbalancer_id: s.load_balancer_id.map(|l| l.to_string()),
            listener_id: s.listener_id.to_string(),
            active_connections: s.stats.active_connections,
            bytes_in: s.stats.bytes_in,
            bytes_out: s.stats.bytes_out,
            request_errors: s.stats.request_errors,
            total_connections: s.stats.total_connections,
        }
    }
}
