//! Load balancer request and response bodies.

use serde::{Deserialize, Serialize};

use octavia_model::{
    LoadBalancer, LoadBalancerId, OperatingStatus, ProvisioningStatus, Topology, Vip,
};

use crate::common::{
    admin_state, check_len, check_names, check_opt_len, check_tags, check_uuid, fmt_opt_time,
    fmt_time, input_project, non_empty, non_null, nullable, or_empty, parse_ip, patch,
    patch_or_default, refuse_not_implemented,
};
use crate::{IdRef, TypesError};

/// Provider names the amphora driver answers to.
pub const PROVIDERS: &[&str] = &["amphora", "octavia"];

const VIP_SG_IDS_NOT_IMPLEMENTED: &str = "VIP security groups are not implemented yet";

/// `{"loadbalancer": {...}}` on POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerPostBody {
    pub loadbalancer: LoadBalancerPost,
}

/// One VIP on top of the primary (`additional_vips[]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdditionalVip {
    pub subnet_id: String,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub port_id: Option<String>,
}

/// Body of `POST /v2/lbaas/loadbalancers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerPost {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub vip_address: Option<String>,
    pub vip_port_id: Option<String>,
    pub vip_subnet_id: Option<String>,
    pub vip_network_id: Option<String>,
    pub vip_qos_policy_id: Option<String>,
    pub vip_sg_ids: Option<Vec<String>>,
    pub additional_vips: Option<Vec<AdditionalVip>>,
    pub project_id: Option<String>,
    pub tenant_id: Option<String>,
    pub listeners: Option<Vec<serde_json::Value>>,
    pub pools: Option<Vec<serde_json::Value>>,
    pub provider: Option<String>,
    pub tags: Option<Vec<String>>,
    pub flavor_id: Option<String>,
    pub availability_zone: Option<String>,
}

impl LoadBalancerPost {
    /// Apply the field rules; returns the project named in the body, if any.
    pub fn validate(&self) -> Result<Option<String>, TypesError> {
        check_names(
            self.name.as_deref(),
            self.description.as_deref(),
            self.tags.as_deref(),
        )?;
        let project = input_project(self.project_id.as_ref(), self.tenant_id.as_ref())?;
        if self.vip_port_id.is_none()
            && self.vip_network_id.is_none()
            && self.vip_subnet_id.is_none()
        {
            return Err(TypesError::invalid(
                "vip_subnet_id",
                "VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id",
            ));
        }
        if let Some(a) = &self.vip_address {
            parse_ip("vip_address", a)?;
        }
        for (field, v) in [
            ("vip_port_id", &self.vip_port_id),
            ("vip_subnet_id", &self.vip_subnet_id),
            ("vip_network_id", &self.vip_network_id),
            ("vip_qos_policy_id", &self.vip_qos_policy_id),
        ] {
            if let Some(v) = v {
                check_uuid(field, v)?;
            }
        }
        if let Some(p) = &self.provider {
            check_len("provider", p, 64)?;
            if !PROVIDERS.contains(&p.as_str()) {
                return Err(TypesError::invalid(
                    "provider",
                    format!("Provider '{p}' is not enabled"),
                ));
            }
        }
        if let Some(f) = &self.flavor_id {
            check_uuid("flavor_id", f)?;
        }
        check_opt_len("availability_zone", self.availability_zone.as_deref(), 255)?;
        refuse_not_implemented(&[
            (
                "vip_sg_ids",
                non_empty(&self.vip_sg_ids),
                VIP_SG_IDS_NOT_IMPLEMENTED,
            ),
            (
                "additional_vips",
                non_empty(&self.additional_vips),
                "additional VIPs are not implemented yet",
            ),
        ])?;
        Ok(project)
    }

    /// The new object (PENDING_CREATE / OFFLINE) with the `topology` its flavor (or the
    /// configuration) gives. Call [`Self::validate`] first.
    pub fn into_model(self, project_id: String, topology: Topology) -> LoadBalancer {
        LoadBalancer {
            id: LoadBalancerId::new(),
            project_id,
            name: self.name,
            description: self.description,
            provisioning_status: ProvisioningStatus::PendingCreate,
            operating_status: OperatingStatus::Offline,
            enabled: admin_state(self.admin_state_up, true),
            topology,
            provider: Some(self.provider.unwrap_or_else(|| "amphora".to_string())),
            // The canonical spelling, as the flavor's id is stored.
            flavor_id: self
                .flavor_id
                .map(|f| uuid::Uuid::parse_str(&f).map_or(f, |u| u.to_string())),
            availability_zone: self.availability_zone,
            vip: Vip {
                ip_address: self.vip_address,
                port_id: self.vip_port_id,
                subnet_id: self.vip_subnet_id,
                network_id: self.vip_network_id,
                qos_policy_id: self.vip_qos_policy_id,
            },
            tags: self.tags.unwrap_or_default(),
            listener_ids: vec![],
            pool_ids: vec![],
            created_at: octavia_model::now(),
            updated_at: None,
        }
    }
}

/// `{"loadbalancer": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerPutBody {
    pub loadbalancer: LoadBalancerPut,
}

/// Body of `PUT /v2/lbaas/loadbalancers/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerPut {
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub vip_qos_policy_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub vip_sg_ids: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

impl LoadBalancerPut {
    /// Apply the field rules.
    pub fn validate(&self) -> Result<(), TypesError> {
        check_names(non_null(&self.name), non_null(&self.description), None)?;
        if let Some(q) = non_null(&self.vip_qos_policy_id) {
            check_uuid("vip_qos_policy_id", q)?;
        }
        check_tags(self.tags.as_deref())?;
        refuse_not_implemented(&[(
            "vip_sg_ids",
            non_empty(&self.vip_sg_ids),
            VIP_SG_IDS_NOT_IMPLEMENTED,
        )])
    }

    /// Patch `lb` with the fields present.
    pub fn apply(self, lb: &mut LoadBalancer) {
        patch(&mut lb.name, self.name);
        patch(&mut lb.description, self.description);
        patch(&mut lb.vip.qos_policy_id, self.vip_qos_policy_id);
        patch_or_default(&mut lb.enabled, self.admin_state_up);
        patch(&mut lb.tags, self.tags);
    }
}

/// A load balancer as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerResponse {
    pub id: String,
    pub name: String,
    pub description: String,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub admin_state_up: bool,
    pub project_id: String,
    pub tenant_id: String,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub vip_address: Option<String>,
    pub vip_port_id: Option<String>,
    pub vip_subnet_id: Option<String>,
    pub vip_network_id: Option<String>,
    pub vip_qos_policy_id: Option<String>,
    pub vip_sg_ids: Vec<String>,
    pub vip_vnic_type: String,
    pub additional_vips: Vec<AdditionalVip>,
    pub listeners: Vec<IdRef>,
    pub pools: Vec<IdRef>,
    pub provider: String,
    pub flavor_id: Option<String>,
    pub availability_zone: Option<String>,
    pub tags: Vec<String>,
}

impl From<&LoadBalancer> for LoadBalancerResponse {
    fn from(lb: &LoadBalancer) -> Self {
        Self {
            id: lb.id.to_string(),
            name: or_empty(&lb.name),
            description: or_empty(&lb.description),
            provisioning_status: lb.provisioning_status,
            operating_status: lb.operating_status,
            admin_state_up: lb.enabled,
            project_id: lb.project_id.clone(),
            tenant_id: lb.project_id.clone(),
            created_at: fmt_time(&lb.created_at),
            updated_at: fmt_opt_time(&lb.updated_at),
            vip_address: lb.vip.ip_address.clone(),
            vip_port_id: lb.vip.port_id.clone(),
            vip_subnet_id: lb.vip.subnet_id.clone(),
            vip_network_id: lb.vip.network_id.clone(),
            vip_qos_policy_id: lb.vip.qos_policy_id.clone(),
            vip_sg_ids: vec![],
            vip_vnic_type: "normal".to_string(),
            additional_vips: vec![],
            listeners: lb.listener_ids.iter().map(IdRef::of).collect(),
            pools: lb.pool_ids.iter().map(IdRef::of).collect(),
            provider: lb.provider.clone().unwrap_or_else(|| "octavia".to_string()),
            flavor_id: lb.flavor_id.clone(),
            availability_zone: lb.availability_zone.clone(),
            tags: lb.tags.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_body;

    const SUBNET: &str = "11111111-1111-1111-1111-111111111111";

    fn post(json: &str) -> Result<Option<String>, TypesError> {
        decode_body::<LoadBalancerPostBody>(json.as_bytes())?
            .loadbalancer
            .validate()
    }

    #[test]
    fn post_rules_table() {
        let long = "n".repeat(256);
        let cases: Vec<(String, Option<&str>)> = vec![
            (
                format!(r#"{{"loadbalancer":{{"vip_subnet_id":"{SUBNET}"}}}}"#),
                None,
            ),
            (r#"{"loadbalancer":{}}"#.into(), Some("vip_subnet_id")),
            (
                format!(r#"{{"loadbalancer":{{"vip_subnet_id":"{SUBNET}","name":"{long}"}}}}"#),
                Some("name"),
            ),
            (
                format!(
                    r#"{{"loadbalancer":{{"vip_subnet_id":"{SUBNET}","vip_address":"10.0.0.300"}}}}"#
                ),
                Some("vip_address"),
            ),
            (
                format!(r#"{{"loadbalancer":{{"vip_subnet_id":"{SUBNET}","provider":"f5"}}}}"#),
                Some("provider"),
            ),
            (
                format!(r#"{{"loadbalancer":{{"vip_subnet_id":"{SUBNET}","bogus":1}}}}"#),
                Some("loadbalancer.bogus"),
            ),
            (
                format!(r#"{{"loadbalancer":{{"vip_subnet_id":"{SUBNET}","tags":["{long}"]}}}}"#),
                Some("tags"),
            ),
            (
                r#"{"loadbalancer":{"vip_subnet_id":"not-a-uuid"}}"#.into(),
                Some("vip_subnet_id"),
            ),
            (
                format!(
                    r#"{{"loadbalancer":{{"vip_subnet_id":"{SUBNET}","admin_state_up":"yes"}}}}"#
                ),
                Some("loadbalancer.admin_state_up"),
            ),
        ];
        for (json, field) in cases {
            match (post(&json), field) {
                (Ok(_), None) => {}
                (Err(e), Some(f)) => assert_eq!(e.field(), f, "{json}: {e}"),
                (r, f) => panic!("{json}: got {r:?}, expected error on {f:?}"),
            }
        }
    }

    #[test]
    fn model_round_trip_and_defaults() {
        let body: LoadBalancerPostBody = decode_body(
            format!(r#"{{"loadbalancer":{{"vip_subnet_id":"{SUBNET}","tenant_id":"p1","admin_state_up":null}}}}"#)
                .as_bytes(),
        )
        .unwrap();
        let project = body.loadbalancer.validate().unwrap();
        assert_eq!(project.as_deref(), Some("p1"));
        let lb = body.loadbalancer.into_model("p1".into(), Topology::Single);
        assert!(!lb.enabled, "admin_state_up null means false");
        assert_eq!(lb.provisioning_status, ProvisioningStatus::PendingCreate);
        let r = LoadBalancerResponse::from(&lb);
        assert_eq!(r.name, "");
        assert_eq!(r.tenant_id, "p1");
        assert_eq!(r.provider, "amphora");

        let mut lb2 = lb.clone();
        let put: LoadBalancerPutBody =
            decode_body(br#"{"loadbalancer":{"name":"x","description":null}}"#).unwrap();
        put.loadbalancer.validate().unwrap();
        put.loadbalancer.apply(&mut lb2);
        assert_eq!(lb2.name.as_deref(), Some("x"));
        assert_eq!(lb2.description, None);
        assert_eq!(lb2.enabled, lb.enabled);
    }
}
