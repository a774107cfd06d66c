//! Pool request and response bodies and the pool rules.

use serde::{Deserialize, Serialize};

use octavia_model::{
    LbAlgorithm, LoadBalancerId, OperatingStatus, Pool, PoolId, PoolProtocol, ProvisioningStatus,
    SessionPersistence, SessionPersistenceType,
};

use crate::common::{
    admin_state, check_len, check_names, check_opt_len, check_uuid, fmt_opt_time, fmt_time,
    input_project, non_empty, non_null, nullable, or_empty, patch, patch_or_default,
    refuse_not_implemented, tls_ref,
};
use crate::listener::check_tls_lists;
use crate::{IdRef, TypesError};

/// Session persistence on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionPersistenceWire {
    #[serde(rename = "type")]
    pub persistence_type: SessionPersistenceType,
    #[serde(default)]
    pub cookie_name: Option<String>,
    #[serde(default)]
    pub persistence_timeout: Option<i64>,
    #[serde(default)]
    pub persistence_granularity: Option<String>,
}

impl SessionPersistenceWire {
    fn validate(&self, protocol: PoolProtocol) -> Result<(), TypesError> {
        let udp = matches!(protocol, PoolProtocol::Udp | PoolProtocol::Sctp);
        match (&self.cookie_name, self.persistence_type) {
            (None, SessionPersistenceType::AppCookie) => {
                return Err(TypesError::invalid(
                    "session_persistence.cookie_name",
                    "cookie_name is required for APP_COOKIE session persistence",
                ))
            }
            (Some(_), t) if t != SessionPersistenceType::AppCookie => {
                return Err(TypesError::invalid(
                    "session_persistence.cookie_name",
                    "cookie_name is only allowed for APP_COOKIE session persistence",
                ))
            }
            (Some(c), _) => {
                check_len("session_persistence.cookie_name", c, 255)?;
                if c.is_empty()
                    || c.chars()
                        .any(|ch| ch.is_whitespace() || ch.is_control() || ",;\\\"".contains(ch))
                {
                    return Err(TypesError::invalid(
                        "session_persistence.cookie_name",
                        "cookie_name must not be empty nor contain whitespace, ',', ';', '\\' or '\"'",
                    ));
                }
            }
            _ => {}
        }
        if !udp && (self.persistence_timeout.is_some() || self.persistence_granularity.is_some()) {
            return Err(TypesError::invalid(
                "session_persistence.persistence_timeout",
                "persistence_timeout and persistence_granularity are only for UDP and SCTP pools",
            ));
        }
        Ok(())
    }

    fn into_model(self) -> SessionPersistence {
        SessionPersistence {
            persistence_type: self.persistence_type,
            cookie_name: self.cookie_name,
            persistence_timeout: self.persistence_timeout.map(|t| t as i32),
            persistence_granularity: self.persistence_granularity,
        }
    }
}

/// `{"pool": {...}}` on POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolPostBody {
    pub pool: PoolPost,
}

/// Body of `POST /v2/lbaas/pools`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolPost {
    pub protocol: PoolProtocol,
    pub lb_algorithm: LbAlgorithm,
    pub loadbalancer_id: Option<String>,
    pub listener_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub session_persistence: Option<SessionPersistenceWire>,
    pub tls_enabled: Option<bool>,
    pub tls_container_ref: Option<String>,
    pub ca_tls_container_ref: Option<String>,
    pub crl_container_ref: Option<String>,
    pub tls_ciphers: Option<String>,
    pub tls_versions: Option<Vec<String>>,
    pub alpn_protocols: Option<Vec<String>>,
    pub healthmonitor: Option<serde_json::Value>,
    pub members: Option<Vec<serde_json::Value>>,
    pub tags: Option<Vec<String>>,
    pub project_id: Option<String>,
    pub tenant_id: Option<String>,
}

impl PoolPost {
    /// Apply the field rules; returns the project named in the body, if any.
    pub fn validate(&self) -> Result<Option<String>, TypesError> {
        if self.loadbalancer_id.is_none() && self.listener_id.is_none() {
            return Err(TypesError::invalid(
                "loadbalancer_id",
                "Either loadbalancer_id or listener_id must be specified",
            ));
        }
        if let Some(v) = &self.loadbalancer_id {
            check_uuid("loadbalancer_id", v)?;
        }
        if let Some(v) = &self.listener_id {
            check_uuid("listener_id", v)?;
        }
        check_names(
            self.name.as_deref(),
            self.description.as_deref(),
            self.tags.as_deref(),
        )?;
        let project = input_project(self.project_id.as_ref(), self.tenant_id.as_ref())?;
        if let Some(sp) = &self.session_persistence {
            sp.validate(self.protocol)?;
        }
        check_opt_len("tls_ciphers", self.tls_ciphers.as_deref(), 2048)?;
        check_tls_lists(
            self.tls_versions.as_deref(),
            self.alpn_protocols.as_deref(),
            None,
        )?;
        refuse_not_implemented(&[
            tls_ref("tls_container_ref", self.tls_container_ref.is_some()),
            tls_ref("ca_tls_container_ref", self.ca_tls_container_ref.is_some()),
            tls_ref("crl_container_ref", self.crl_container_ref.is_some()),
            (
                "healthmonitor",
                self.healthmonitor.is_some(),
                "inline health monitor creation is not implemented yet",
            ),
            (
                "members",
                non_empty(&self.members),
                "inline member creation is not implemented yet",
            ),
        ])?;
        Ok(project)
    }

    /// The new object (PENDING_CREATE / OFFLINE). Call [`Self::validate`] first.
    pub fn into_model(self, project_id: String, load_balancer_id: LoadBalancerId) -> Pool {
        Pool {
            id: PoolId::new(),
            project_id,
            load_balancer_id,
            name: self.name,
            description: self.description,
            provisioning_status: ProvisioningStatus::PendingCreate,
            operating_status: OperatingStatus::Offline,
            enabled: admin_state(self.admin_state_up, true),
            protocol: self.protocol,
            lb_algorithm: self.lb_algorithm,
            session_persistence: self.session_persistence.map(|s| s.into_model()),
            tls_enabled: self.tls_enabled.unwrap_or(false),
            tls_certificate_id: None,
            ca_tls_certificate_id: None,
            crl_container_id: None,
            tls_ciphers: self.tls_ciphers,
            tls_versions: self.tls_versions.unwrap_or_default(),
            alpn_protocols: self.alpn_protocols.unwrap_or_default(),
            tags: self.tags.unwrap_or_default(),
            listener_ids: vec![],
            member_ids: vec![],
            health_monitor_id: None,
            created_at: octavia_model::now(),
            updated_at: None,
        }
    }
}

/// `{"pool": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolPutBody {
    pub pool: PoolPut,
}

/// Body of `PUT /v2/lbaas/pools/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolPut {
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub lb_algorithm: Option<LbAlgorithm>,
    #[serde(default, deserialize_with = "nullable")]
    pub session_persistence: Option<Option<SessionPersistenceWire>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tls_enabled: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tls_container_ref: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub ca_tls_container_ref: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub crl_container_ref: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tls_ciphers: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tls_versions: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub alpn_protocols: Option<Option<Vec<String>>>,
    pub tags: Option<Vec<String>>,
}

impl PoolPut {
    /// Apply the field rules against the pool being changed.
    pub fn validate(&self, current: &Pool) -> Result<(), TypesError> {
        check_names(
            non_null(&self.name),
            non_null(&self.description),
            self.tags.as_deref(),
        )?;
        if let Some(Some(sp)) = &self.session_persistence {
            sp.validate(current.protocol)?;
        }
        check_opt_len("tls_ciphers", non_null(&self.tls_ciphers), 2048)?;
        check_tls_lists(
            non_null(&self.tls_versions),
            non_null(&self.alpn_protocols),
            None,
        )?;
        refuse_not_implemented(&[
            tls_ref(
                "tls_container_ref",
                non_null(&self.tls_container_ref).is_some(),
            ),
            tls_ref(
                "ca_tls_container_ref",
                non_null(&self.ca_tls_container_ref).is_some(),
            ),
            tls_ref(
                "crl_container_ref",
                non_null(&self.crl_container_ref).is_some(),
            ),
        ])
    }

    /// Patch `p` with the fields present (`null` → default).
    pub fn apply(self, p: &mut Pool) {
        patch(&mut p.name, self.name);
        patch(&mut p.description, self.description);
        patch_or_default(&mut p.enabled, self.admin_state_up);
        patch(&mut p.lb_algorithm, self.lb_algorithm);
        patch(
            &mut p.session_persistence,
            self.session_persistence
                .map(|sp| sp.map(|s| s.into_model())),
        );
        patch_or_default(&mut p.tls_enabled, self.tls_enabled);
        patch(&mut p.tls_ciphers, self.tls_ciphers);
        patch_or_default(&mut p.tls_versions, self.tls_versions);
        patch_or_default(&mut p.alpn_protocols, self.alpn_protocols);
        patch(&mut p.tags, self.tags);
    }
}

/// A pool as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolResponse {
    pub id: String,
    pub name: String,
    pub description: String,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub admin_state_up: bool,
    pub protocol: PoolProtocol,
    pub lb_algorithm: LbAlgorithm,
    pub session_persistence: Option<SessionPersistenceWire>,
    pub project_id: String,
    pub tenant_id: String,
    pub loadbalancers: Vec<IdRef>,
    pub listeners: Vec<IdRef>,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub healthmonitor_id: Option<String>,
    pub members: Vec<IdRef>,
    pub tags: Vec<String>,
    pub tls_container_ref: Option<String>,
    pub ca_tls_container_ref: Option<String>,
    pub crl_container_ref: Option<String>,
    pub tls_enabled: bool,
    pub tls_ciphers: Option<String>,
    pub tls_versions: Option<Vec<String>>,
    pub alpn_protocols: Option<Vec<String>>,
}

impl From<&Pool> for PoolResponse {
    fn from(p: &Pool) -> Self {
        let ne = |v: &Vec<String>| if v.is_empty() { None } else { Some(v.clone()) };
        Self {
            id: p.id.to_string(),
            name: or_empty(&p.name),
            description: or_empty(&p.description),
            provisioning_status: p.provisioning_status,
            operating_status: p.operating_status,
            admin_state_up: p.enabled,
            protocol: p.protocol,
            lb_algorithm: p.lb_algorithm,
            session_persistence: p
                .session_persistence
                .as_ref()
                .map(|s| SessionPersistenceWire {
                    persistence_type: s.persistence_type,
                    cookie_name: s.cookie_name.clone(),
                    persistence_timeout: s.persistence_timeout.map(i64::from),
                    persistence_granularity: s.persistence_granularity.clone(),
                }),
            project_id: p.project_id.clone(),
            tenant_id: p.project_id.clone(),
            loadbalancers: vec![IdRef::of(p.load_balancer_id)],
            listeners: p.listener_ids.iter().map(IdRef::of).collect(),
            created_at: fmt_time(&p.created_at),
            updated_at: fmt_opt_time(&p.updated_at),
            healthmonitor_id: p.health_monitor_id.map(|h| h.to_string()),
            members: p.member_ids.iter().map(IdRef::of).collect(),
            tags: p.tags.clone(),
            tls_container_ref: p.tls_certificate_id.clone(),
            ca_tls_container_ref: p.ca_tls_certificate_id.clone(),
            crl_container_ref: p.crl_container_id.clone(),
            tls_enabled: p.tls_enabled,
            tls_ciphers: p.tls_ciphers.clone(),
            tls_versions: ne(&p.tls_versions),
            alpn_protocols: ne(&p.alpn_protocols),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_body;

    const LB: &str = "11111111-1111-1111-1111-111111111111";

    fn post(extra: &str) -> Result<Option<String>, TypesError> {
        let json = crate::common::merged(
            &format!(
                r#"{{"pool":{{"loadbalancer_id":"{LB}","protocol":"HTTP","lb_algorithm":"ROUND_ROBIN"}}}}"#
            ),
            extra,
        );
        decode_body::<PoolPostBody>(json.as_bytes())?
            .pool
            .validate()
    }

    #[test]
    fn post_rules_table() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("", None, false),
            (
                r#","lb_algorithm":"RANDOM""#,
                Some("pool.lb_algorithm"),
                false,
            ),
            // What the amphora provider cannot serve is octavia_render::support's business.
            (r#","lb_algorithm":"SOURCE_IP_PORT""#, None, false),
            (r#","protocol":"UDP""#, None, false),
            (r#","protocol":"QUIC""#, Some("pool.protocol"), false),
            (r#","loadbalancer_id":null"#, Some("loadbalancer_id"), false),
            (
                r#","session_persistence":{"type":"APP_COOKIE"}"#,
                Some("session_persistence.cookie_name"),
                false,
            ),
            (
                r#","session_persistence":{"type":"APP_COOKIE","cookie_name":"a b"}"#,
                Some("session_persistence.cookie_name"),
                false,
            ),
            (
                r#","session_persistence":{"type":"APP_COOKIE","cookie_name":"sid"}"#,
                None,
                false,
            ),
            (
                r#","session_persistence":{"type":"HTTP_COOKIE","cookie_name":"sid"}"#,
                Some("session_persistence.cookie_name"),
                false,
            ),
            (
                r#","session_persistence":{"type":"SOURCE_IP","persistence_timeout":3}"#,
                Some("session_persistence.persistence_timeout"),
                false,
            ),
            (
                r#","session_persistence":{"type":"STICKY"}"#,
                Some("pool.session_persistence.type"),
                false,
            ),
            (
                r#","tls_container_ref":"x""#,
                Some("tls_container_ref"),
                true,
            ),
            (r#","tls_versions":["TLSv9"]"#, Some("tls_versions"), false),
            (r#","members":[{}]"#, Some("members"), true),
        ];
        for (extra, field, nyi) in cases {
            match (post(extra), field) {
                (Ok(_), None) => {}
                (Err(e), Some(f)) => {
                    assert_eq!(e.field(), *f, "{extra}: {e}");
                    assert_eq!(
                        matches!(e, TypesError::NotImplemented { .. }),
                        *nyi,
                        "{extra}"
                    );
                }
                (r, f) => panic!("{extra}: got {r:?}, expected error on {f:?}"),
            }
        }
    }

    #[test]
    fn put_patches_and_clears_persistence() {
        let b: PoolPostBody = decode_body(
            format!(r#"{{"pool":{{"loadbalancer_id":"{LB}","protocol":"HTTP","lb_algorithm":"ROUND_ROBIN","session_persistence":{{"type":"SOURCE_IP"}}}}}}"#).as_bytes(),
        )
        .unwrap();
        let mut p = b.pool.into_model("p".into(), LB.parse().unwrap());
        assert!(p.session_persistence.is_some());
        let put: PoolPutBody = decode_body(
            br#"{"pool":{"session_persistence":null,"lb_algorithm":"LEAST_CONNECTIONS"}}"#,
        )
        .unwrap();
        put.pool.validate(&p).unwrap();
        put.pool.apply(&mut p);
        assert!(p.session_persistence.is_none());
        assert_eq!(p.lb_algorithm, LbAlgorithm::LeastConnections);
        assert!(decode_body::<PoolPutBody>(br#"{"pool":{"lb_algorithm":"FASTEST"}}"#).is_err());
    }
}
