//! Provider list and capability bodies, and the check of a profile's settings against its
//! provider (Octavia's `validate_flavor` / `validate_availability_zone` of the amphora
//! driver). The capabilities listed are exactly the keys the checks accept
//! ([`octavia_model::metadata`]), each one a setting the control plane applies.

use octavia_model::metadata::{AVAILABILITY_ZONE_KEYS, FLAVOR_KEYS};
use octavia_model::{AvailabilityZoneMetadata, FlavorMetadata, MetadataError};
use serde::{Deserialize, Serialize};

use crate::load_balancer::PROVIDERS;

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

/// What each flavor key does, for `GET .../flavor_capabilities`.
fn describe_flavor_key(key: &str) -> &'static str {
    match key {
        "loadbalancer_topology" => {
            "The load balancer topology. One of: SINGLE - One amphora per load balancer. \
             ACTIVE_STANDBY - Two amphora per load balancer."
        }
        "compute_flavor" => "The compute driver flavor ID.",
        "amp_image_tag" => "The amphora image tag.",
        _ => "",
    }
}

/// What each availability zone key does, for `GET .../availability_zone_capabilities`.
fn describe_availability_zone_key(key: &str) -> &'static str {
    match key {
        "compute_zone" => "The compute availability zone.",
        "management_network" => "The management network ID for the amphora.",
        "valid_vip_networks" => {
            "List of network IDs that are allowed for VIP use. This overrides/replaces the \
             list of allowed networks configured in `octavia.conf`."
        }
        _ => "",
    }
}

fn capabilities(keys: &[&str], describe: fn(&str) -> &'static str) -> Vec<CapabilityResponse> {
    keys.iter()
        .map(|k| CapabilityResponse {
            name: k.to_string(),
            description: describe(k).to_string(),
        })
        .collect()
}

/// Flavor capabilities of the amphora provider (the flavor keys it understands).
pub fn amphora_flavor_capabilities() -> Vec<CapabilityResponse> {
    capabilities(FLAVOR_KEYS, describe_flavor_key)
}

/// Availability zone capabilities of the amphora provider.
pub fn amphora_availability_zone_capabilities() -> Vec<CapabilityResponse> {
    capabilities(AVAILABILITY_ZONE_KEYS, describe_availability_zone_key)
}

/// Why a profile's provider or settings were refused. The messages are Octavia's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The provider is not one this deployment enables (Octavia: 400).
    #[error("Provider '{0}' is not enabled.")]
    NotEnabled(String),
    /// The settings are not JSON (Octavia: 400).
    #[error("{value} is not a valid option for {option}")]
    NotJson { option: &'static str, value: String },
    /// JSON the provider does not take (Octavia: 501, "does not support a requested
    /// option"); the message names the key.
    #[error("Provider '{provider}' does not support a requested option: {message}")]
    Unsupported { provider: String, message: String },
}

fn enabled(provider: &str) -> Result<(), ProfileError> {
    if PROVIDERS.contains(&provider) {
        Ok(())
    } else {
        Err(ProfileError::NotEnabled(provider.to_string()))
    }
}

fn refused(provider: &str, option: &'static str, data: &str, e: MetadataError) -> ProfileError {
    match e {
        MetadataError::NotJson(_) => ProfileError::NotJson {
            option,
            value: data.to_string(),
        },
        MetadataError::Unsupported(message) => ProfileError::Unsupported {
            provider: provider.to_string(),
            message,
        },
    }
}

/// The flavor settings `data` as `provider` would apply them.
pub fn validate_flavor_data(provider: &str, data: &str) -> Result<FlavorMetadata, ProfileError> {
    enabled(provider)?;
    FlavorMetadata::parse(data).map_err(|e| refused(provider, "flavor_data", data, e))
}

/// The availability zone settings `data` as `provider` would apply them.
pub fn validate_availability_zone_data(
    provider: &str,
    data: &str,
) -> Result<AvailabilityZoneMetadata, ProfileError> {
    enabled(provider)?;
    AvailabilityZoneMetadata::parse(data)
        .map_err(|e| refused(provider, "availability_zone_data", data, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capability_is_described_and_accepted() {
        for c in amphora_flavor_capabilities() {
            assert!(!c.description.is_empty(), "{}", c.name);
            let data = if c.name == "loadbalancer_topology" {
                format!(r#"{{"{}": "SINGLE"}}"#, c.name)
            } else {
                format!(r#"{{"{}": "x"}}"#, c.name)
            };
            validate_flavor_data("amphora", &data).unwrap();
        }
        for c in amphora_availability_zone_capabilities() {
            assert!(!c.description.is_empty(), "{}", c.name);
            let data = if c.name == "valid_vip_networks" {
                format!(r#"{{"{}": ["n"]}}"#, c.name)
            } else {
                format!(r#"{{"{}": "x"}}"#, c.name)
            };
            validate_availability_zone_data("octavia", &data).unwrap();
        }
    }

    #[test]
    fn refusals_use_octavias_words() {
        assert_eq!(
            validate_flavor_data("f5", "{}").unwrap_err().to_string(),
            "Provider 'f5' is not enabled."
        );
        assert_eq!(
            validate_flavor_data("amphora", "{bad")
                .unwrap_err()
                .to_string(),
            "{bad is not a valid option for flavor_data"
        );
        assert_eq!(
            validate_flavor_data("amphora", r#"{"sriov_vip": true}"#)
                .unwrap_err()
                .to_string(),
            "Provider 'amphora' does not support a requested option: Additional properties \
             are not allowed ('sriov_vip' was unexpected)"
        );
        assert_eq!(
            validate_availability_zone_data("amphora", r#"{"volume_zone": "v"}"#)
                .unwrap_err()
                .to_string(),
            "Provider 'amphora' does not support a requested option: Additional properties \
             are not allowed ('volume_zone' was unexpected)"
        );
        assert_eq!(
            validate_availability_zone_data("amphora", "[]")
                .unwrap_err()
                .to_string(),
            "Provider 'amphora' does not support a requested option: [] is not of type 'object'"
        );
    }
}
