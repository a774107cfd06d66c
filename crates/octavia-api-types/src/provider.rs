//! Provider list and capability bodies.

use serde::{Deserialize, Serialize};

/// One entry of `GET /v2/lbaas/providers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderResponse {
    pub name: String,
    pub description: String,
}

/// One flavor or availability zone capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityResponse {
    pub name: String,
    pub description: String,
}

/// The providers this deployment enables: the amphora driver and its `octavia` alias.
pub fn enabled_providers() -> Vec<ProviderResponse> {
    vec![
        ProviderResponse {
            name: "amphora".into(),
            description: "The Octavia Amphora driver.".into(),
        },
        ProviderResponse {
            name: "octavia".into(),
            description: "Deprecated alias of the Octavia Amphora driver.".into(),
        },
    ]
}

/// Flavor capabilities of the amphora provider (the flavor keys it understands).
pub fn amphora_flavor_capabilities() -> Vec<CapabilityResponse> {
    [
        ("loadbalancer_topology", "The load balancer topology. One of: SINGLE - One amphora per load balancer. ACTIVE_STANDBY - Two amphora per load balancer."),
        ("compute_flavor", "The compute driver flavor ID."),
        ("amp_image_tag", "The amphora image tag."),
    ]
    .into_iter()
    .map(|(n, d)| CapabilityResponse {
        name: n.into(),
        description: d.into(),
    })
    .collect()
}

/// Availability zone capabilities of the amphora provider.
pub fn amphora_availability_zone_capabilities() -> Vec<CapabilityResponse> {
    [
        ("compute_zone", "The compute availability zone."),
        ("management_network", "The management network ID for the amphora."),
        ("valid_vip_networks", "List of network IDs that are allowed for VIP use. This overrides/replaces the list of allowed networks configured in `octavia.conf`."),
    ]
    .into_iter()
    .map(|(n, d)| CapabilityResponse {
        name: n.into(),
        description: d.into(),
    })
    .collect()
}
