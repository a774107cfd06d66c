//! Health monitor request and response bodies and the monitor rules.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use octavia_model::{
    HealthMonitor, HealthMonitorId, HealthMonitorType, HttpMethod, OperatingStatus, PoolId,
    PoolProtocol, ProvisioningStatus,
};

use crate::common::{
    admin_state, check_len, check_names, check_range, check_uuid, fmt_opt_time, fmt_time,
    input_project, non_null, nullable, or_empty, patch, patch_or_default,
};
use crate::{IdRef, TypesError, ValidationSettings};

fn expected_codes_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(\d{3}(\s*,\s*\d{3})*|\d{3}-\d{3})$").expect("static regex is valid")
    })
}

fn is_http(t: HealthMonitorType) -> bool {
    matches!(t, HealthMonitorType::Http | HealthMonitorType::Https)
}

/// A DNS host name: labels of 1..63 letters, digits and '-', not starting or ending with '-'.
pub fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The HTTP-only fields and their rules, on the merged (new) value.
struct HttpFields<'a> {
    http_method: Option<HttpMethod>,
    url_path: Option<&'a str>,
    expected_codes: Option<&'a str>,
    http_version: Option<f64>,
    domain_name: Option<&'a str>,
}

fn check_http_fields(t: HealthMonitorType, f: &HttpFields<'_>) -> Result<(), TypesError> {
    if !is_http(t) {
        for (field, set) in [
            ("http_method", f.http_method.is_some()),
            ("url_path", f.url_path.is_some()),
            ("expected_codes", f.expected_codes.is_some()),
            ("http_version", f.http_version.is_some()),
            ("domain_name", f.domain_name.is_some()),
        ] {
            if set {
                return Err(TypesError::invalid(
                    field,
                    format!("{field} is not allowed for {t} health monitors"),
                ));
            }
        }
        return Ok(());
    }
    if let Some(p) = f.url_path {
        check_len("url_path", p, 2048)?;
        if !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TypesError::invalid(
                "url_path",
                "URL path must start with '/' and contain no whitespace",
            ));
        }
    }
    if let Some(c) = f.expected_codes {
        if !expected_codes_re().is_match(c) {
            return Err(TypesError::invalid(
                "expected_codes",
                format!("'{c}' is not a status code list (NNN, NNN,NNN or NNN-NNN)"),
            ));
        }
    }
    if let Some(v) = f.http_version {
        if v != 1.0 && v != 1.1 {
            return Err(TypesError::invalid(
                "http_version",
                format!("{v} is not one of [1.0, 1.1]"),
            ));
        }
    }
    if let Some(d) = f.domain_name {
        check_len("domain_name", d, 255)?;
        if !is_hostname(d) {
            return Err(TypesError::invalid(
                "domain_name",
                format!("'{d}' is not a valid host name"),
            ));
        }
        if f.http_version != Some(1.1) {
            return Err(TypesError::invalid(
                "domain_name",
                "domain_name requires http_version 1.1",
            ));
        }
    }
    Ok(())
}

/// Rules that depend on the pool the monitor watches.
pub fn check_against_pool(
    t: HealthMonitorType,
    delay: i64,
    pool_protocol: PoolProtocol,
    settings: &ValidationSettings,
) -> Result<(), TypesError> {
    let udp = matches!(pool_protocol, PoolProtocol::Udp | PoolProtocol::Sctp);
    if matches!(t, HealthMonitorType::UdpConnect | HealthMonitorType::Sctp) && !udp {
        return Err(TypesError::invalid(
            "type",
            format!("{t} health monitors are only allowed on UDP and SCTP pools"),
        ));
    }
    if udp
        && !matches!(
            t,
            HealthMonitorType::UdpConnect
                | HealthMonitorType::Sctp
                | HealthMonitorType::Tcp
                | HealthMonitorType::Http
        )
    {
        return Err(TypesError::invalid(
            "type",
            format!("{t} health monitors are not allowed on {pool_protocol} pools"),
        ));
    }
    if t == HealthMonitorType::UdpConnect
        && delay < settings.udp_connect_min_interval_health_monitor
    {
        return Err(TypesError::invalid(
            "delay",
            format!(
                "UDP-CONNECT health monitors need a delay of at least {} seconds",
                settings.udp_connect_min_interval_health_monitor
            ),
        ));
    }
    Ok(())
}

/// `{"healthmonitor": {...}}` on POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthMonitorPostBody {
    pub healthmonitor: HealthMonitorPost,
}

/// Body of `POST /v2/lbaas/healthmonitors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthMonitorPost {
    pub pool_id: String,
    #[serde(rename = "type")]
    pub monitor_type: HealthMonitorType,
    pub delay: i64,
    pub timeout: i64,
    pub max_retries: i64,
    pub max_retries_down: Option<i64>,
    pub http_method: Option<HttpMethod>,
    pub url_path: Option<String>,
    pub expected_codes: Option<String>,
    pub http_version: Option<f64>,
    pub domain_name: Option<String>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub tags: Option<Vec<String>>,
    pub project_id: Option<String>,
    pub tenant_id: Option<String>,
}

impl HealthMonitorPost {
    /// Apply the field rules; returns the project named in the body, if any.
    pub fn validate(&self, settings: &ValidationSettings) -> Result<Option<String>, TypesError> {
        check_uuid("pool_id", &self.pool_id)?;
        if self.monitor_type == HealthMonitorType::Ping && !settings.allow_ping_health_monitors {
            return Err(TypesError::invalid(
                "type",
                "PING health monitors are not allowed in this deployment",
            ));
        }
        check_range("delay", self.delay, 0, i32::MAX as i64)?;
        check_range("timeout", self.timeout, 0, i32::MAX as i64)?;
        check_range("max_retries", self.max_retries, 1, 10)?;
        if let Some(d) = self.max_retries_down {
            check_range("max_retries_down", d, 1, 10)?;
        }
        check_http_fields(
            self.monitor_type,
            &HttpFields {
                http_method: self.http_method,
                url_path: self.url_path.as_deref(),
                expected_codes: self.expected_codes.as_deref(),
                http_version: self.http_version,
                domain_name: self.domain_name.as_deref(),
            },
        )?;
        check_names(self.name.as_deref(), None, self.tags.as_deref())?;
        input_project(self.project_id.as_ref(), self.tenant_id.as_ref())
    }

    /// The new object (PENDING_CREATE / OFFLINE), HTTP defaults filled in.
    pub fn into_model(self, project_id: String, pool_id: PoolId) -> HealthMonitor {
        let http = is_http(self.monitor_type);
        HealthMonitor {
            id: HealthMonitorId::new(),
            project_id,
            pool_id,
            name: self.name,
            provisioning_status: ProvisioningStatus::PendingCreate,
            operating_status: OperatingStatus::Offline,
            enabled: admin_state(self.admin_state_up, true),
            monitor_type: self.monitor_type,
            delay: self.delay as i32,
            timeout: self.timeout as i32,
            rise_threshold: self.max_retries as i32,
            fall_threshold: self.max_retries_down.map(|d| d as i32).unwrap_or(3),
            http_method: self.http_method.or(http.then_some(HttpMethod::Get)),
            url_path: self.url_path.or(http.then(|| "/".to_string())),
            expected_codes: self.expected_codes.or(http.then(|| "200".to_string())),
            http_version: self.http_version,
            domain_name: self.domain_name,
            tags: self.tags.unwrap_or_default(),
            created_at: octavia_model::now(),
            updated_at: None,
        }
    }
}

/// `{"healthmonitor": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthMonitorPutBody {
    pub healthmonitor: HealthMonitorPut,
}

/// Body of `PUT /v2/lbaas/healthmonitors/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthMonitorPut {
    pub delay: Option<i64>,
    pub timeout: Option<i64>,
    pub max_retries: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    pub max_retries_down: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub http_method: Option<Option<HttpMethod>>,
    #[serde(default, deserialize_with = "nullable")]
    pub url_path: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub expected_codes: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub http_version: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub domain_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub tags: Option<Vec<String>>,
}

impl HealthMonitorPut {
    /// Check the fields, then patch a copy of `current`; returns the new value.
    pub fn apply_checked(
        self,
        current: &HealthMonitor,
        pool_protocol: PoolProtocol,
        settings: &ValidationSettings,
    ) -> Result<HealthMonitor, TypesError> {
        let t = current.monitor_type;
        if let Some(d) = self.delay {
            check_range("delay", d, 0, i32::MAX as i64)?;
        }
        if let Some(d) = self.timeout {
            check_range("timeout", d, 0, i32::MAX as i64)?;
        }
        if let Some(r) = self.max_retries {
            check_range("max_retries", r, 1, 10)?;
        }
        if let Some(Some(r)) = self.max_retries_down {
            check_range("max_retries_down", r, 1, 10)?;
        }
        check_http_fields(
            t,
            &HttpFields {
                http_method: self.http_method.flatten(),
                url_path: self.url_path.as_ref().and_then(|v| v.as_deref()),
                expected_codes: self.expected_codes.as_ref().and_then(|v| v.as_deref()),
                http_version: self.http_version.flatten(),
                domain_name: None,
            },
        )?;
        check_names(non_null(&self.name), None, self.tags.as_deref())?;
        let http = is_http(t);
        let mut hm = current.clone();
        patch(&mut hm.delay, self.delay.map(|d| d as i32));
        patch(&mut hm.timeout, self.timeout.map(|d| d as i32));
        patch(&mut hm.rise_threshold, self.max_retries.map(|r| r as i32));
        patch(
            &mut hm.fall_threshold,
            self.max_retries_down.map(|r| r.map_or(3, |r| r as i32)),
        );
        patch(
            &mut hm.http_method,
            self.http_method
                .map(|v| v.or(http.then_some(HttpMethod::Get))),
        );
        patch(
            &mut hm.url_path,
            self.url_path.map(|v| v.or(http.then(|| "/".to_string()))),
        );
        patch(
            &mut hm.expected_codes,
            self.expected_codes
                .map(|v| v.or(http.then(|| "200".to_string()))),
        );
        patch(&mut hm.http_version, self.http_version);
        patch(&mut hm.domain_name, self.domain_name);
        patch(&mut hm.name, self.name);
        patch_or_default(&mut hm.enabled, self.admin_state_up);
        patch(&mut hm.tags, self.tags);
        // The merged value must still satisfy the cross-field rules.
        check_http_fields(
            t,
            &HttpFields {
                http_method: if http { hm.http_method } else { None },
                url_path: if http { hm.url_path.as_deref() } else { None },
                expected_codes: if http {
                    hm.expected_codes.as_deref()
                } else {
                    None
                },
                http_version: hm.http_version,
                domain_name: hm.domain_name.as_deref(),
            },
        )?;
        check_against_pool(t, hm.delay as i64, pool_protocol, settings)?;
        Ok(hm)
    }
}

/// A health monitor as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthMonitorResponse {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub monitor_type: HealthMonitorType,
    pub delay: i32,
    pub timeout: i32,
    pub max_retries: i32,
    pub max_retries_down: i32,
    pub http_method: Option<HttpMethod>,
    pub url_path: Option<String>,
    pub expected_codes: Option<String>,
    pub admin_state_up: bool,
    pub project_id: String,
    pub tenant_id: String,
    pub pools: Vec<IdRef>,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub tags: Vec<String>,
    pub http_version: Option<f64>,
    pub domain_name: Option<String>,
}

impl From<&HealthMonitor> for HealthMonitorResponse {
    fn from(h: &HealthMonitor) -> Self {
        Self {
            id: h.id.to_string(),
            name: or_empty(&h.name),
            monitor_type: h.monitor_type,
            delay: h.delay,
            timeout: h.timeout,
            max_retries: h.rise_threshold,
            max_retries_down: h.fall_threshold,
            http_method: h.http_method,
            url_path: h.url_path.clone(),
            expected_codes: h.expected_codes.clone(),
            admin_state_up: h.enabled,
            project_id: h.project_id.clone(),
            tenant_id: h.project_id.clone(),
            pools: vec![IdRef::of(h.pool_id)],
            provisioning_status: h.provisioning_status,
            operating_status: h.operating_status,
            created_at: fmt_time(&h.created_at),
            updated_at: fmt_opt_time(&h.updated_at),
            tags: h.tags.clone(),
            http_version: h.http_version,
            domain_name: h.domain_name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_body;

    const POOL: &str = "11111111-1111-1111-1111-111111111111";

    fn post(ty: &str, extra: &str) -> Result<Option<String>, TypesError> {
        let json = crate::common::merged(
            &format!(
                r#"{{"healthmonitor":{{"pool_id":"{POOL}","type":"{ty}","delay":5,"timeout":3,"max_retries":3}}}}"#
            ),
            extra,
        );
        decode_body::<HealthMonitorPostBody>(json.as_bytes())?
            .healthmonitor
            .validate(&ValidationSettings::default())
    }

    #[test]
    fn post_rules_table() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("HTTP", "", None),
            ("TCP", "", None),
            ("BOGUS", "", Some("healthmonitor.type")),
            ("HTTP", r#","max_retries":0"#, Some("max_retries")),
            ("HTTP", r#","max_retries":11"#, Some("max_retries")),
            (
                "HTTP",
                r#","max_retries_down":11"#,
                Some("max_retries_down"),
            ),
            ("HTTP", r#","delay":-1"#, Some("delay")),
            ("HTTP", r#","timeout":-1"#, Some("timeout")),
            ("HTTP", r#","url_path":"health""#, Some("url_path")),
            ("HTTP", r#","url_path":"/health""#, None),
            ("HTTP", r#","expected_codes":"200,201""#, None),
            ("HTTP", r#","expected_codes":"200-204""#, None),
            ("HTTP", r#","expected_codes":"2xx""#, Some("expected_codes")),
            (
                "HTTP",
                r#","http_method":"FETCH""#,
                Some("healthmonitor.http_method"),
            ),
            ("TCP", r#","http_method":"GET""#, Some("http_method")),
            ("PING", r#","url_path":"/""#, Some("url_path")),
            (
                "TLS-HELLO",
                r#","expected_codes":"200""#,
                Some("expected_codes"),
            ),
            (
                "HTTP",
                r#","domain_name":"example.com""#,
                Some("domain_name"),
            ),
            (
                "HTTP",
                r#","domain_name":"example.com","http_version":1.0"#,
                Some("domain_name"),
            ),
            (
                "HTTP",
                r#","domain_name":"example.com","http_version":1.1"#,
                None,
            ),
            (
                "HTTP",
                r#","domain_name":"-bad-.com","http_version":1.1"#,
                Some("domain_name"),
            ),
            ("HTTP", r#","http_version":2.0"#, Some("http_version")),
            ("HTTPS", r#","pool_id":"x""#, Some("pool_id")),
        ];
        for (ty, extra, field) in cases {
            match (post(ty, extra), field) {
                (Ok(_), None) => {}
                (Err(e), Some(f)) => assert_eq!(e.field(), *f, "{ty} {extra}: {e}"),
                (r, f) => panic!("{ty} {extra}: got {r:?}, expected error on {f:?}"),
            }
        }
    }

    #[test]
    fn ping_gate_and_pool_rules() {
        let s = ValidationSettings {
            allow_ping_health_monitors: false,
            ..Default::default()
        };
        let json = format!(
            r#"{{"healthmonitor":{{"pool_id":"{POOL}","type":"PING","delay":5,"timeout":3,"max_retries":3}}}}"#
        );
        let b: HealthMonitorPostBody = decode_body(json.as_bytes()).unwrap();
        assert_eq!(b.healthmonitor.validate(&s).unwrap_err().field(), "type");
        let d = ValidationSettings::default();
        assert!(
            check_against_pool(HealthMonitorType::UdpConnect, 5, PoolProtocol::Http, &d).is_err()
        );
        assert!(
            check_against_pool(HealthMonitorType::UdpConnect, 2, PoolProtocol::Udp, &d).is_err()
        );
        assert!(
            check_against_pool(HealthMonitorType::UdpConnect, 3, PoolProtocol::Udp, &d).is_ok()
        );
        assert!(check_against_pool(HealthMonitorType::Http, 3, PoolProtocol::Http, &d).is_ok());
    }

    #[test]
    fn defaults_and_put_merge() {
        let json = format!(
            r#"{{"healthmonitor":{{"pool_id":"{POOL}","type":"HTTP","delay":5,"timeout":3,"max_retries":2}}}}"#
        );
        let b: HealthMonitorPostBody = decode_body(json.as_bytes()).unwrap();
        let hm = b
            .healthmonitor
            .into_model("p".into(), POOL.parse().unwrap());
        assert_eq!(hm.http_method, Some(HttpMethod::Get));
        assert_eq!(hm.url_path.as_deref(), Some("/"));
        assert_eq!(hm.expected_codes.as_deref(), Some("200"));
        assert_eq!((hm.rise_threshold, hm.fall_threshold), (2, 3));
        let r = HealthMonitorResponse::from(&hm);
        assert_eq!((r.max_retries, r.max_retries_down), (2, 3));
        let s = ValidationSettings::default();
        let put: HealthMonitorPutBody =
            decode_body(br#"{"healthmonitor":{"domain_name":"a.example","http_version":1.1}}"#)
                .unwrap();
        let new = put
            .healthmonitor
            .apply_checked(&hm, PoolProtocol::Http, &s)
            .unwrap();
        assert_eq!(new.domain_name.as_deref(), Some("a.example"));
        let put: HealthMonitorPutBody =
            decode_body(br#"{"healthmonitor":{"http_version":1.0}}"#).unwrap();
        let err = put
            .healthmonitor
            .apply_checked(&new, PoolProtocol::Http, &s)
            .unwrap_err();
        assert_eq!(err.field(), "domain_name");
        let put: HealthMonitorPutBody =
            decode_body(br#"{"healthmonitor":{"url_path":null}}"#).unwrap();
        let reset = put
            .healthmonitor
            .apply_checked(&new, PoolProtocol::Http, &s)
            .unwrap();
        assert_eq!(reset.url_path.as_deref(), Some("/"));
    }
}
