//! The provider settings of flavor and availability zone profiles, as the amphora provider
//! reads them (Octavia's amphora driver `flavor_schema` and `availability_zone_schema`).
//!
//! A profile stores its settings as a JSON text (`flavor_data`, `availability_zone_data`).
//! The API checks a profile's text with [`FlavorMetadata::parse`] /
//! [`AvailabilityZoneMetadata::parse`] before storing it, and the worker reads the stored text
//! with the same functions when it builds an amphora, so what was accepted is what takes
//! effect. Keys outside [`FLAVOR_KEYS`] / [`AVAILABILITY_ZONE_KEYS`] are refused: a setting
//! nothing would apply is never accepted silently.

use serde_json::{Map, Value};

use crate::Topology;

/// The flavor settings the amphora provider applies.
pub const FLAVOR_KEYS: &[&str] = &["loadbalancer_topology", "compute_flavor", "amp_image_tag"];

/// The availability zone settings the amphora provider applies.
pub const AVAILABILITY_ZONE_KEYS: &[&str] =
    &["compute_zone", "management_network", "valid_vip_networks"];

/// Why a profile's settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The text is not JSON at all (Octavia answers 400, "not a valid option").
    #[error("not valid JSON: {0}")]
    NotJson(String),
    /// JSON the provider does not accept: an unknown key, or a value of the wrong type or
    /// outside the allowed set (Octavia answers 501, "does not support a requested option").
    /// The message is worded as Octavia's schema check words it, naming the key.
    #[error("{0}")]
    Unsupported(String),
}

/// What a flavor profile sets for the amphora provider. `None`: the configuration's value
/// applies (`[controller_worker] loadbalancer_topology`, `amp_flavor_id`, `amp_image_tag`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlavorMetadata {
    /// The topology of load balancers of this flavor.
    pub loadbalancer_topology: Option<Topology>,
    /// The compute flavor amphorae are built with.
    pub compute_flavor: Option<String>,
    /// The tag selecting the image amphorae boot (an `amp_image_id` in the configuration
    /// still wins, as in Octavia).
    pub amp_image_tag: Option<String>,
}

impl FlavorMetadata {
    /// Read a flavor profile's `flavor_data`. Empty strings count as unset.
    pub fn parse(data: &str) -> Result<Self, MetadataError> {
        let map = object(data, FLAVOR_KEYS)?;
        let loadbalancer_topology = match string(&map, "loadbalancer_topology")? {
            None => None,
            Some(t) => Some(t.parse::<Topology>().map_err(|_| {
                MetadataError::Unsupported(format!(
                    "loadbalancer_topology {} is not one of {}",
                    py_repr(&Value::String(t.clone())),
                    py_list(Topology::ALL)
                ))
            })?),
        };
        Ok(Self {
            loadbalancer_topology,
            compute_flavor: non_empty(string(&map, "compute_flavor")?),
            amp_image_tag: non_empty(string(&map, "amp_image_tag")?),
        })
    }
}

/// What an availability zone profile sets for the amphora provider.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AvailabilityZoneMetadata {
    /// The compute zone amphorae are placed in (`None`: anywhere).
    pub compute_zone: Option<String>,
    /// The management network amphorae are plugged into (`None`: the configured one).
    pub management_network: Option<String>,
    /// The only networks a VIP may be on (empty: no restriction from the zone).
    pub valid_vip_networks: Vec<String>,
}

impl AvailabilityZoneMetadata {
    /// Read an availability zone profile's `availability_zone_data`. Empty strings count as
    /// unset; `valid_vip_networks` must be an array of strings.
    pub fn parse(data: &str) -> Result<Self, MetadataError> {
        let map = object(data, AVAILABILITY_ZONE_KEYS)?;
        let valid_vip_networks = match map.get("valid_vip_networks") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(not_of_type("valid_vip_networks", other, "string")),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(not_of_type("valid_vip_networks", other, "array")),
        };
        Ok(Self {
            compute_zone: non_empty(string(&map, "compute_zone")?),
            management_network: non_empty(string(&map, "management_network")?),
            valid_vip_networks,
        })
    }
}

/// The JSON object `data`, whose keys must all be in `keys`.
fn object(data: &str, keys: &[&str]) -> Result<Map<String, Value>, MetadataError> {
    let value: Value =
        serde_json::from_str(data).map_err(|e| MetadataError::NotJson(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(MetadataError::Unsupported(format!(
            "{} is not of type 'object'",
            py_repr(&value)
        )));
    };
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !keys.contains(&k.as_str()))
        .map(|k| py_repr(&Value::String(k.clone())))
        .collect();
    match unknown.len() {
        0 => Ok(map),
        1 => Err(MetadataError::Unsupported(format!(
            "Additional properties are not allowed ({} was unexpected)",
            unknown[0]
        ))),
        _ => Err(MetadataError::Unsupported(format!(
            "Additional properties are not allowed ({} were unexpected)",
            unknown.join(", ")
        ))),
    }
}

/// The string at `key` (`null` or absent: `None`).
fn string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, MetadataError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(not_of_type(key, other, "string")),
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn not_of_type(key: &str, value: &Value, ty: &str) -> MetadataError {
    MetadataError::Unsupported(format!("{key} {} is not of type '{ty}'", py_repr(value)))
}

/// `['A', 'B']`: a list of names as Octavia's messages print it.
fn py_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A JSON value as Octavia's (Python's) messages print it: `'text'`, `5`, `True`, `None`,
/// `[...]`, `{'k': v}`.
fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("'{k}': {}", py_repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavor_data_table() {
        let ok = |data: &str| FlavorMetadata::parse(data).unwrap();
        assert_eq!(ok("{}"), FlavorMetadata::default());
        assert_eq!(
            ok(
                r#"{"loadbalancer_topology": "ACTIVE_STANDBY", "compute_flavor": "m1.amp",
                   "amp_image_tag": "gold"}"#
            ),
            FlavorMetadata {
                loadbalancer_topology: Some(Topology::ActiveStandby),
                compute_flavor: Some("m1.amp".into()),
                amp_image_tag: Some("gold".into()),
            }
        );
        assert_eq!(
            ok(r#"{"compute_flavor": "", "amp_image_tag": null}"#),
            FlavorMetadata::default(),
            "empty and null mean unset"
        );
        for (data, message) in [
            (
                r#"{"sriov_vip": true}"#,
                "Additional properties are not allowed ('sriov_vip' was unexpected)",
            ),
            (
                r#"{"b": 1, "a": 2}"#,
                "Additional properties are not allowed ('a', 'b' were unexpected)",
            ),
            (
                r#"{"loadbalancer_topology": "TRIPLE"}"#,
                "loadbalancer_topology 'TRIPLE' is not one of ['SINGLE', 'ACTIVE_STANDBY']",
            ),
            (
                r#"{"loadbalancer_topology": 5}"#,
                "loadbalancer_topology 5 is not of type 'string'",
            ),
            (
                r#"{"compute_flavor": ["x"]}"#,
                "compute_flavor ['x'] is not of type 'string'",
            ),
            (r#"[1, true]"#, "[1, True] is not of type 'object'"),
        ] {
            assert_eq!(
                FlavorMetadata::parse(data),
                Err(MetadataError::Unsupported(message.into())),
                "{data}"
            );
        }
        assert!(matches!(
            FlavorMetadata::parse("{not json"),
            Err(MetadataError::NotJson(_))
        ));
    }

    #[test]
    fn availability_zone_data_table() {
        let ok = |data: &str| AvailabilityZoneMetadata::parse(data).unwrap();
        assert_eq!(ok("{}"), AvailabilityZoneMetadata::default());
        assert_eq!(
            ok(r#"{"compute_zone": "az1", "management_network": "m",
                   "valid_vip_networks": ["n1", "n2"]}"#),
            AvailabilityZoneMetadata {
                compute_zone: Some("az1".into()),
                management_network: Some("m".into()),
                valid_vip_networks: vec!["n1".into(), "n2".into()],
            }
        );
        for (data, message) in [
            (
                r#"{"volume_zone": "v"}"#,
                "Additional properties are not allowed ('volume_zone' was unexpected)",
            ),
            (
                r#"{"valid_vip_networks": "n1"}"#,
                "valid_vip_networks 'n1' is not of type 'array'",
            ),
            (
                r#"{"valid_vip_networks": ["n1", 2]}"#,
                "valid_vip_networks 2 is not of type 'string'",
            ),
            (
                r#"{"compute_zone": {"a": null}}"#,
                "compute_zone {'a': None} is not of type 'string'",
            ),
        ] {
            assert_eq!(
                AvailabilityZoneMetadata::parse(data),
                Err(MetadataError::Unsupported(message.into())),
                "{data}"
            );
        }
        assert!(matches!(
            AvailabilityZoneMetadata::parse(""),
            Err(MetadataError::NotJson(_))
        ));
    }
}
