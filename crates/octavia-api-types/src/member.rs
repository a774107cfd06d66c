//! Member request and response bodies (single and batch) and the member rules.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use octavia_model::{Member, MemberId, OperatingStatus, PoolId, ProvisioningStatus};

use crate::common::{
    admin_state, check_opt_len, check_range, check_tags, check_uuid, fmt_opt_time, fmt_time,
    input_project, non_null, nullable, or_empty, parse_ip, patch, patch_or_default,
};
use crate::{TypesError, ValidationSettings};

fn check_address(
    field: &str,
    value: &str,
    settings: &ValidationSettings,
) -> Result<(), TypesError> {
    let ip = parse_ip(field, value)?;
    if settings.reserved_ips.contains(&ip) {
        return Err(TypesError::invalid(
            field,
            format!("The IP address {value} is reserved and cannot be used"),
        ));
    }
    Ok(())
}

/// `{"member": {...}}` on POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPostBody {
    pub member: MemberPost,
}

/// Body of `POST /v2/lbaas/pools/{pool_id}/members`, and one item of a batch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPost {
    pub address: String,
    pub protocol_port: i64,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub weight: Option<i64>,
    pub backup: Option<bool>,
    pub subnet_id: Option<String>,
    pub monitor_port: Option<i64>,
    pub monitor_address: Option<String>,
    pub request_sriov: Option<bool>,
    pub tags: Option<Vec<String>>,
    pub project_id: Option<String>,
    pub tenant_id: Option<String>,
}

impl MemberPost {
    /// Apply the field rules; returns the project named in the body, if any.
    pub fn validate(&self, settings: &ValidationSettings) -> Result<Option<String>, TypesError> {
        check_address("address", &self.address, settings)?;
        check_range("protocol_port", self.protocol_port, 1, 65535)?;
        check_opt_len("name", self.name.as_deref(), 255)?;
        if let Some(w) = self.weight {
            check_range("weight", w, 0, 256)?;
        }
        if let Some(s) = &self.subnet_id {
            check_uuid("subnet_id", s)?;
        }
        if let Some(p) = self.monitor_port {
            check_range("monitor_port", p, 1, 65535)?;
        }
        if let Some(a) = &self.monitor_address {
            parse_ip("monitor_address", a)?;
        }
        if self.request_sriov == Some(true) {
            return Err(TypesError::invalid(
                "request_sriov",
                "SR-IOV member ports are not allowed by this load balancer's flavor",
            ));
        }
        check_tags(self.tags.as_deref())?;
        input_project(self.project_id.as_ref(), self.tenant_id.as_ref())
    }

    /// The parsed address (for duplicate detection in batches).
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// The new object (PENDING_CREATE; OFFLINE when the pool has a monitor, else NO_MONITOR).
    pub fn into_model(self, project_id: String, pool_id: PoolId, pool_has_monitor: bool) -> Member {
        Member {
            id: MemberId::new(),
            project_id,
            pool_id,
            name: self.name,
            provisioning_status: ProvisioningStatus::PendingCreate,
            operating_status: if pool_has_monitor {
                OperatingStatus::Offline
            } else {
                OperatingStatus::NoMonitor
            },
            enabled: admin_state(self.admin_state_up, true),
            ip_address: self.address,
            protocol_port: self.protocol_port as i32,
            weight: self.weight.map(|w| w as i32).unwrap_or(1),
            backup: self.backup.unwrap_or(false),
            subnet_id: self.subnet_id,
            monitor_address: self.monitor_address,
            monitor_port: self.monitor_port.map(|p| p as i32),
            vnic_type: "normal".to_string(),
            tags: self.tags.unwrap_or_default(),
            created_at: octavia_model::now(),
            updated_at: None,
        }
    }

    /// Turn a batch item that matches `existing` into the updated member, or `None`
    /// when nothing would change.
    pub fn as_update_of(&self, existing: &Member) -> Option<Member> {
        let mut m = existing.clone();
        if self.name.is_some() {
            m.name = self.name.clone();
        }
        patch_or_default(&mut m.enabled, self.admin_state_up);
        patch(&mut m.weight, self.weight.map(|w| w as i32));
        patch(&mut m.backup, self.backup);
        if self.monitor_port.is_some() {
            m.monitor_port = self.monitor_port.map(|p| p as i32);
        }
        if self.monitor_address.is_some() {
            m.monitor_address = self.monitor_address.clone();
        }
        patch(&mut m.tags, self.tags.clone());
        if m == *existing {
            None
        } else {
            m.provisioning_status = ProvisioningStatus::PendingUpdate;
            Some(m)
        }
    }
}

/// `{"members": [...]}`: body of the batch `PUT /v2/lbaas/pools/{pool_id}/members`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberBatchBody {
    pub members: Vec<MemberPost>,
}

impl MemberBatchBody {
    /// Every item valid, and no (address, port) twice.
    pub fn validate(&self, settings: &ValidationSettings) -> Result<(), TypesError> {
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.members.iter().enumerate() {
            m.validate(settings).map_err(|e| match e {
                TypesError::Invalid { field, message } => {
                    TypesError::invalid(format!("members[{i}].{field}"), message)
                }
                TypesError::NotImplemented { field, message } => {
                    TypesError::not_implemented(format!("members[{i}].{field}"), message)
                }
            })?;
            if !seen.insert((m.ip(), m.protocol_port)) {
                return Err(TypesError::invalid(
                    format!("members[{i}]"),
                    format!(
                        "Member {}:{} is listed more than once",
                        m.address, m.protocol_port
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `{"member": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPutBody {
    pub member: MemberPut,
}

/// Body of `PUT /v2/lbaas/pools/{pool_id}/members/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPut {
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    pub weight: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub backup: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    pub monitor_port: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub monitor_address: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
}

impl MemberPut {
    /// Apply the field rules.
    pub fn validate(&self) -> Result<(), TypesError> {
        check_opt_len("name", non_null(&self.name), 255)?;
        if let Some(Some(w)) = self.weight {
            check_range("weight", w, 0, 256)?;
        }
        if let Some(Some(p)) = self.monitor_port {
            check_range("monitor_port", p, 1, 65535)?;
        }
        if let Some(a) = non_null(&self.monitor_address) {
            parse_ip("monitor_address", a)?;
        }
        check_tags(self.tags.as_deref())
    }

    /// Patch `m` with the fields present (`null` → default).
    pub fn apply(self, m: &mut Member) {
        patch(&mut m.name, self.name);
        patch_or_default(&mut m.enabled, self.admin_state_up);
        patch(
            &mut m.weight,
            self.weight.map(|v| v.map_or(1, |w| w as i32)),
        );
        patch_or_default(&mut m.backup, self.backup);
        patch(
            &mut m.monitor_port,
            self.monitor_port.map(|v| v.map(|p| p as i32)),
        );
        patch(&mut m.monitor_address, self.monitor_address);
        patch(&mut m.tags, self.tags);
    }
}

/// A member as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberResponse {
    pub id: String,
    pub name: String,
    pub operating_status: OperatingStatus,
    pub provisioning_status: ProvisioningStatus,
    pub admin_state_up: bool,
    pub address: String,
    pub protocol_port: i32,
    pub weight: i32,
    pub backup: bool,
    pub subnet_id: Option<String>,
    pub project_id: String,
    pub tenant_id: String,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub monitor_address: Option<String>,
    pub monitor_port: Option<i32>,
    pub tags: Vec<String>,
    pub vnic_type: String,
}

impl From<&Member> for MemberResponse {
    fn from(m: &Member) -> Self {
        Self {
            id: m.id.to_string(),
            name: or_empty(&m.name),
            operating_status: m.operating_status,
            provisioning_status: m.provisioning_status,
            admin_state_up: m.enabled,
            address: m.ip_address.clone(),
            protocol_port: m.protocol_port,
            weight: m.weight,
            backup: m.backup,
            subnet_id: m.subnet_id.clone(),
            project_id: m.project_id.clone(),
            tenant_id: m.project_id.clone(),
            created_at: fmt_time(&m.created_at),
            updated_at: fmt_opt_time(&m.updated_at),
            monitor_address: m.monitor_address.clone(),
            monitor_port: m.monitor_port,
            tags: m.tags.clone(),
            vnic_type: m.vnic_type.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_body;

    fn post(extra: &str) -> Result<Option<String>, TypesError> {
        let json = crate::common::merged(
            r#"{"member":{"address":"10.0.0.5","protocol_port":80}}"#,
            extra,
        );
        decode_body::<MemberPostBody>(json.as_bytes())?
            .member
            .validate(&ValidationSettings::default())
    }

    #[test]
    fn post_rules_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            (r#","weight":0"#, None),
            (r#","weight":256"#, None),
            (r#","weight":257"#, Some("weight")),
            (r#","weight":-1"#, Some("weight")),
            (r#","protocol_port":0"#, Some("protocol_port")),
            (r#","protocol_port":70000"#, Some("protocol_port")),
            (r#","address":"example.com""#, Some("address")),
            (r#","address":"169.254.169.254""#, Some("address")),
            (r#","address":"fd00::1""#, None),
            (r#","monitor_address":"x""#, Some("monitor_address")),
            (r#","monitor_port":0"#, Some("monitor_port")),
            (r#","request_sriov":true"#, Some("request_sriov")),
            (r#","description":"x""#, Some("member.description")),
            (r#","subnet_id":"x""#, Some("subnet_id")),
        ];
        for (extra, field) in cases {
            match (post(extra), field) {
                (Ok(_), None) => {}
                (Err(e), Some(f)) => assert_eq!(e.field(), *f, "{extra}: {e}"),
                (r, f) => panic!("{extra}: got {r:?}, expected error on {f:?}"),
            }
        }
    }

    #[test]
    fn initial_operating_status_depends_on_monitor() {
        let b: MemberPostBody =
            decode_body(br#"{"member":{"address":"10.0.0.5","protocol_port":80}}"#).unwrap();
        let pool = PoolId::new();
        let m = b.member.clone().into_model("p".into(), pool, false);
        assert_eq!(m.operating_status, OperatingStatus::NoMonitor);
        assert_eq!(m.weight, 1);
        let m = b.member.into_model("p".into(), pool, true);
        assert_eq!(m.operating_status, OperatingStatus::Offline);
    }

    #[test]
    fn batch_rejects_duplicates_and_names_item() {
        let b: MemberBatchBody = decode_body(
            br#"{"members":[{"address":"10.0.0.5","protocol_port":80},{"address":"10.0.0.5","protocol_port":80}]}"#,
        )
        .unwrap();
        assert_eq!(
            b.validate(&Default::default()).unwrap_err().field(),
            "members[1]"
        );
        let b: MemberBatchBody =
            decode_body(br#"{"members":[{"address":"10.0.0.5","protocol_port":80,"weight":300}]}"#)
                .unwrap();
        assert_eq!(
            b.validate(&Default::default()).unwrap_err().field(),
            "members[0].weight"
        );
    }

    #[test]
    fn batch_update_detects_no_change() {
        let b: MemberPostBody =
            decode_body(br#"{"member":{"address":"10.0.0.5","protocol_port":80}}"#).unwrap();
        let existing = b
            .member
            .clone()
            .into_model("p".into(), PoolId::new(), false);
        assert!(b.member.as_update_of(&existing).is_none());
        let b2: MemberPostBody =
            decode_body(br#"{"member":{"address":"10.0.0.5","protocol_port":80,"weight":5}}"#)
                .unwrap();
        assert_eq!(b2.member.as_update_of(&existing).unwrap().weight, 5);
    }
}
