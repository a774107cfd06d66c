//! Listener request and response bodies and the listener rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use octavia_model::{
    ClientAuthentication, Listener, ListenerId, ListenerProtocol, LoadBalancerId, OperatingStatus,
    PoolProtocol, ProvisioningStatus,
};

use crate::common::{
    admin_state, check_len, check_names, check_opt_len, check_range, check_uuid, fmt_opt_time,
    fmt_time, input_project, non_empty, non_null, nullable, or_empty, patch, patch_or_default,
    refuse_not_implemented, tls_ref,
};
use crate::{IdRef, TypesError, ValidationSettings};

/// Largest timeout Octavia accepts (24 days, in ms).
pub const MAX_TIMEOUT: i64 = 2_073_600_000;

/// Header names a listener may insert (HTTP and TERMINATED_HTTPS).
pub const INSERT_HEADERS: &[&str] = &[
    "X-Forwarded-For",
    "X-Forwarded-Port",
    "X-Forwarded-Proto",
    "X-Forwarded-IP",
    "X-Client-IP",
    "X-Real-IP",
];

/// Client-certificate header names (TERMINATED_HTTPS only).
pub const SSL_INSERT_HEADERS: &[&str] = &[
    "X-SSL-Client-Verify",
    "X-SSL-Client-Has-Cert",
    "X-SSL-Client-DN",
    "X-SSL-Client-CN",
    "X-SSL-Issuer",
    "X-SSL-Client-SHA1",
    "X-SSL-Client-Not-Before",
    "X-SSL-Client-Not-After",
];

/// Accepted `tls_versions` items.
pub const TLS_VERSIONS: &[&str] = &["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

/// Accepted `alpn_protocols` items.
pub const ALPN_PROTOCOLS: &[&str] = &["h2", "http/1.1", "http/1.0"];

/// The pool protocol compatibility rule (listener → pool), as a validation result.
pub fn check_pool_compatible(
    field: &str,
    listener: ListenerProtocol,
    pool: PoolProtocol,
) -> Result<(), TypesError> {
    if listener.allowed_pool_protocols().contains(&pool) {
        Ok(())
    } else {
        Err(TypesError::invalid(
            field,
            format!(
                "The pool protocol '{pool}' is invalid while the listener protocol is '{listener}'"
            ),
        ))
    }
}

/// The deployment gates on listener protocols (`[api_settings] allow_*`). Whether the
/// provider serves a protocol is `octavia_render::support`'s business.
pub fn check_listener_protocol(
    protocol: ListenerProtocol,
    settings: &ValidationSettings,
) -> Result<(), TypesError> {
    match protocol {
        ListenerProtocol::TerminatedHttps if !settings.allow_tls_terminated_listeners => {
            Err(TypesError::invalid(
                "protocol",
                "TERMINATED_HTTPS listeners are not allowed in this deployment",
            ))
        }
        ListenerProtocol::Prometheus if !settings.allow_prometheus_listeners => {
            Err(TypesError::invalid(
                "protocol",
                "PROMETHEUS listeners are not allowed in this deployment",
            ))
        }
        _ => Ok(()),
    }
}

fn check_insert_headers(
    protocol: ListenerProtocol,
    headers: &BTreeMap<String, String>,
) -> Result<(), TypesError> {
    if headers.is_empty() {
        return Ok(());
    }
    if !matches!(
        protocol,
        ListenerProtocol::Http | ListenerProtocol::TerminatedHttps
    ) {
        return Err(TypesError::invalid(
            "insert_headers",
            format!("The {protocol} protocol does not support header insertion"),
        ));
    }
    for (name, value) in headers {
        let ssl = SSL_INSERT_HEADERS.contains(&name.as_str());
        if !INSERT_HEADERS.contains(&name.as_str()) && !ssl {
            return Err(TypesError::invalid(
                "insert_headers",
                format!(
                    "header '{name}' is not one of {INSERT_HEADERS:?} or {SSL_INSERT_HEADERS:?}"
                ),
            ));
        }
        if ssl && protocol != ListenerProtocol::TerminatedHttps {
            return Err(TypesError::invalid(
                "insert_headers",
                format!("header '{name}' is only allowed on TERMINATED_HTTPS listeners"),
            ));
        }
        check_len("insert_headers", value, 255)?;
        let v = value.to_ascii_lowercase();
        if ![
            "true", "false", "1", "0", "yes", "no", "on", "off", "t", "f", "y", "n",
        ]
        .contains(&v.as_str())
        {
            return Err(TypesError::invalid(
                "insert_headers",
                format!("value '{value}' of header '{name}' is not a boolean"),
            ));
        }
    }
    Ok(())
}

fn check_cidrs(cidrs: &[String]) -> Result<(), TypesError> {
    for c in cidrs {
        let (addr, len) = c
            .split_once('/')
            .ok_or_else(|| TypesError::invalid("allowed_cidrs", format!("'{c}' is not a CIDR")))?;
        let ip = crate::common::parse_ip("allowed_cidrs", addr)?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match len.parse::<u8>() {
            Ok(l) if l <= max => {}
            _ => {
                return Err(TypesError::invalid(
                    "allowed_cidrs",
                    format!("'{c}' is not a CIDR"),
                ))
            }
        }
    }
    Ok(())
}

/// Octavia's rule for `allowed_cidrs`: each CIDR must be of the IP version of at least one
/// VIP of the load balancer. `Err` holds Octavia's detail ("CIDR ... IP version incompatible
/// with all VIPs [...] IP version."); CIDRs that do not parse are [`check_cidrs`]'s business.
pub fn check_cidrs_match_vips(cidrs: &[String], vips: &[String]) -> Result<(), String> {
    let v6 = |s: &str| s.split('/').next().unwrap_or(s).contains(':');
    for cidr in cidrs {
        if !vips.iter().any(|vip| v6(vip) == v6(cidr)) {
            let listed: Vec<String> = vips.iter().map(|v| format!("'{v}'")).collect();
            return Err(format!(
                "CIDR {cidr} IP version incompatible with all VIPs [{}] IP version.",
                listed.join(", ")
            ));
        }
    }
    Ok(())
}

/// `tls_versions` and `alpn_protocols` items must be ones Octavia knows. Listeners also
/// refuse a version longer than 32 characters with the length message (`max_version_len`);
/// pools say only that it is not one of them.
pub(crate) fn check_tls_lists(
    versions: Option<&[String]>,
    alpn: Option<&[String]>,
    max_version_len: Option<usize>,
) -> Result<(), TypesError> {
    for v in versions.unwrap_or_default() {
        if let Some(max) = max_version_len {
            check_len("tls_versions", v, max)?;
        }
        if !TLS_VERSIONS.contains(&v.as_str()) {
            return Err(TypesError::invalid(
                "tls_versions",
                format!("'{v}' is not one of {TLS_VERSIONS:?}"),
            ));
        }
    }
    for a in alpn.unwrap_or_default() {
        if !ALPN_PROTOCOLS.contains(&a.as_str()) {
            return Err(TypesError::invalid(
                "alpn_protocols",
                format!("'{a}' is not one of {ALPN_PROTOCOLS:?}"),
            ));
        }
    }
    Ok(())
}

/// The options POST and PUT judge alike, as a body gives them (`None`: absent, or `null` on
/// PUT), for a listener of `protocol`.
struct Options<'a> {
    protocol: ListenerProtocol,
    connection_limit: Option<i64>,
    timeout_client_data: Option<i64>,
    timeout_member_connect: Option<i64>,
    timeout_member_data: Option<i64>,
    timeout_tcp_inspect: Option<i64>,
    insert_headers: Option<&'a BTreeMap<String, String>>,
    allowed_cidrs: Option<&'a [String]>,
    tls_ciphers: Option<&'a str>,
    tls_versions: Option<&'a [String]>,
    alpn_protocols: Option<&'a [String]>,
    hsts_max_age: Option<i64>,
    hsts_include_subdomains: Option<bool>,
    hsts_preload: Option<bool>,
    client_authentication: Option<ClientAuthentication>,
    default_tls_container_ref: Option<&'a str>,
    sni_container_refs: Option<&'a [String]>,
    client_ca_tls_container_ref: Option<&'a str>,
    client_crl_container_ref: Option<&'a str>,
}

impl Options<'_> {
    /// The option rules: ranges and formats, then what only TERMINATED_HTTPS listeners may
    /// set (400), then the certificate references not implemented yet (501).
    fn check(&self) -> Result<(), TypesError> {
        if let Some(c) = self.connection_limit {
            check_range("connection_limit", c, -1, i32::MAX as i64)?;
        }
        for (field, v) in [
            ("timeout_client_data", self.timeout_client_data),
            ("timeout_member_connect", self.timeout_member_connect),
            ("timeout_member_data", self.timeout_member_data),
            ("timeout_tcp_inspect", self.timeout_tcp_inspect),
        ] {
            if let Some(v) = v {
                check_range(field, v, 0, MAX_TIMEOUT)?;
            }
        }
        if let Some(h) = self.insert_headers {
            check_insert_headers(self.protocol, h)?;
        }
        if let Some(c) = self.allowed_cidrs {
            check_cidrs(c)?;
        }
        check_opt_len("tls_ciphers", self.tls_ciphers, 2048)?;
        check_tls_lists(self.tls_versions, self.alpn_protocols, Some(32))?;
        if let Some(m) = self.hsts_max_age {
            check_range("hsts_max_age", m, 0, i32::MAX as i64)?;
        }
        if self.hsts_max_age.is_some()
            || self.hsts_include_subdomains == Some(true)
            || self.hsts_preload == Some(true)
        {
            return Err(TypesError::invalid(
                "hsts_max_age",
                "HSTS is only available for TERMINATED_HTTPS listeners",
            ));
        }
        if self.tls_ciphers.is_some() || self.tls_versions.is_some_and(|v| !v.is_empty()) {
            return Err(TypesError::invalid(
                "tls_ciphers",
                "TLS options are only available for TERMINATED_HTTPS listeners",
            ));
        }
        if self
            .client_authentication
            .is_some_and(|c| c != ClientAuthentication::None)
        {
            return Err(TypesError::invalid(
                "client_authentication",
                "client authentication requires a client CA certificate",
            ));
        }
        refuse_not_implemented(&[
            tls_ref(
                "default_tls_container_ref",
                self.default_tls_container_ref.is_some(),
            ),
            tls_ref(
                "sni_container_refs",
                self.sni_container_refs.is_some_and(|v| !v.is_empty()),
            ),
            tls_ref(
                "client_ca_tls_container_ref",
                self.client_ca_tls_container_ref.is_some(),
            ),
            tls_ref(
                "client_crl_container_ref",
                self.client_crl_container_ref.is_some(),
            ),
        ])
    }
}

/// A default pool id must be a UUID, and PROMETHEUS listeners have none.
fn check_default_pool_id(protocol: ListenerProtocol, id: Option<&str>) -> Result<(), TypesError> {
    let Some(id) = id else { return Ok(()) };
    check_uuid("default_pool_id", id)?;
    if protocol == ListenerProtocol::Prometheus {
        return Err(TypesError::invalid(
            "default_pool_id",
            "PROMETHEUS listeners cannot have a default pool",
        ));
    }
    Ok(())
}

/// `{"listener": {...}}` on POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerPostBody {
    pub listener: ListenerPost,
}

/// Body of `POST /v2/lbaas/listeners`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerPost {
    pub protocol: ListenerProtocol,
    pub protocol_port: i64,
    pub loadbalancer_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub connection_limit: Option<i64>,
    pub default_tls_container_ref: Option<String>,
    pub sni_container_refs: Option<Vec<String>>,
    pub default_pool_id: Option<String>,
    pub default_pool: Option<serde_json::Value>,
    pub l7policies: Option<Vec<serde_json::Value>>,
    pub insert_headers: Option<BTreeMap<String, String>>,
    pub timeout_client_data: Option<i64>,
    pub timeout_member_connect: Option<i64>,
    pub timeout_member_data: Option<i64>,
    pub timeout_tcp_inspect: Option<i64>,
    pub client_ca_tls_container_ref: Option<String>,
    pub client_authentication: Option<ClientAuthentication>,
    pub client_crl_container_ref: Option<String>,
    pub allowed_cidrs: Option<Vec<String>>,
    pub tls_ciphers: Option<String>,
    pub tls_versions: Option<Vec<String>>,
    pub alpn_protocols: Option<Vec<String>>,
    pub hsts_max_age: Option<i64>,
    pub hsts_include_subdomains: Option<bool>,
    pub hsts_preload: Option<bool>,
    pub tags: Option<Vec<String>>,
    pub project_id: Option<String>,
    pub tenant_id: Option<String>,
}

impl ListenerPost {
    /// Apply the field rules; returns the project named in the body, if any.
    pub fn validate(&self, settings: &ValidationSettings) -> Result<Option<String>, TypesError> {
        check_listener_protocol(self.protocol, settings)?;
        check_range("protocol_port", self.protocol_port, 1, 65535)?;
        check_uuid("loadbalancer_id", &self.loadbalancer_id)?;
        check_names(
            self.name.as_deref(),
            self.description.as_deref(),
            self.tags.as_deref(),
        )?;
        let project = input_project(self.project_id.as_ref(), self.tenant_id.as_ref())?;
        Options {
            protocol: self.protocol,
            connection_limit: self.connection_limit,
            timeout_client_data: self.timeout_client_data,
            timeout_member_connect: self.timeout_member_connect,
            timeout_member_data: self.timeout_member_data,
            timeout_tcp_inspect: self.timeout_tcp_inspect,
            insert_headers: self.insert_headers.as_ref(),
            allowed_cidrs: self.allowed_cidrs.as_deref(),
            tls_ciphers: self.tls_ciphers.as_deref(),
            tls_versions: self.tls_versions.as_deref(),
            alpn_protocols: self.alpn_protocols.as_deref(),
            hsts_max_age: self.hsts_max_age,
            hsts_include_subdomains: self.hsts_include_subdomains,
            hsts_preload: self.hsts_preload,
            client_authentication: self.client_authentication,
            default_tls_container_ref: self.default_tls_container_ref.as_deref(),
            sni_container_refs: self.sni_container_refs.as_deref(),
            client_ca_tls_container_ref: self.client_ca_tls_container_ref.as_deref(),
            client_crl_container_ref: self.client_crl_container_ref.as_deref(),
        }
        .check()?;
        refuse_not_implemented(&[
            (
                "default_pool",
                self.default_pool.is_some(),
                "inline default pool creation is not implemented yet",
            ),
            (
                "l7policies",
                non_empty(&self.l7policies),
                "inline L7 policy creation is not implemented yet",
            ),
        ])?;
        check_default_pool_id(self.protocol, self.default_pool_id.as_deref())?;
        Ok(project)
    }

    /// The new object (PENDING_CREATE / OFFLINE). Call [`Self::validate`] first.
    pub fn into_model(
        self,
        project_id: String,
        load_balancer_id: LoadBalancerId,
        settings: &ValidationSettings,
    ) -> Listener {
        let ms = |v: Option<i64>, d: i32| v.map(|v| v as i32).unwrap_or(d);
        Listener {
            id: ListenerId::new(),
            project_id,
            load_balancer_id,
            name: self.name,
            description: self.description,
            provisioning_status: ProvisioningStatus::PendingCreate,
            operating_status: OperatingStatus::Offline,
            enabled: admin_state(self.admin_state_up, true),
            protocol: self.protocol,
            protocol_port: self.protocol_port as i32,
            connection_limit: self.connection_limit.map(|c| c as i32).unwrap_or(-1),
            default_pool_id: self.default_pool_id.and_then(|p| p.parse().ok()),
            default_tls_container_ref: None,
            sni_container_refs: vec![],
            client_ca_tls_container_ref: None,
            client_authentication: ClientAuthentication::None,
            client_crl_container_ref: None,
            timeout_client_data: ms(self.timeout_client_data, settings.timeout_client_data),
            timeout_member_connect: ms(
                self.timeout_member_connect,
                settings.timeout_member_connect,
            ),
            timeout_member_data: ms(self.timeout_member_data, settings.timeout_member_data),
            timeout_tcp_inspect: ms(self.timeout_tcp_inspect, settings.timeout_tcp_inspect),
            insert_headers: self.insert_headers.unwrap_or_default(),
            allowed_cidrs: self.allowed_cidrs.unwrap_or_default(),
            tls_ciphers: None,
            tls_versions: vec![],
            alpn_protocols: self.alpn_protocols.unwrap_or_default(),
            hsts_max_age: None,
            hsts_include_subdomains: false,
            hsts_preload: false,
            tags: self.tags.unwrap_or_default(),
            l7policy_ids: vec![],
            created_at: octavia_model::now(),
            updated_at: None,
        }
    }
}
/// `{"listener": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerPutBody {
    pub listener: ListenerPut,
}

/// Body of `PUT /v2/lbaas/listeners/{id}`; `null` resets a field to its default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerPut {
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    pub connection_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub default_tls_container_ref: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub sni_container_refs: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub default_pool_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub insert_headers: Option<Option<BTreeMap<String, String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub timeout_client_data: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub timeout_member_connect: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub timeout_member_data: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub timeout_tcp_inspect: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub client_ca_tls_container_ref: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub client_authentication: Option<Option<ClientAuthentication>>,
    #[serde(default, deserialize_with = "nullable")]
    pub client_crl_container_ref: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub allowed_cidrs: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tls_ciphers: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub tls_versions: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub alpn_protocols: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    pub hsts_max_age: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub hsts_include_subdomains: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    pub hsts_preload: Option<Option<bool>>,
    pub tags: Option<Vec<String>>,
}

impl ListenerPut {
    /// Apply the field rules against the listener being changed.
    pub fn validate(&self, current: &Listener) -> Result<(), TypesError> {
        check_names(
            non_null(&self.name),
            non_null(&self.description),
            self.tags.as_deref(),
        )?;
        Options {
            protocol: current.protocol,
            connection_limit: self.connection_limit.flatten(),
            timeout_client_data: self.timeout_client_data.flatten(),
            timeout_member_connect: self.timeout_member_connect.flatten(),
            timeout_member_data: self.timeout_member_data.flatten(),
            timeout_tcp_inspect: self.timeout_tcp_inspect.flatten(),
            insert_headers: self.insert_headers.as_ref().and_then(Option::as_ref),
            allowed_cidrs: non_null(&self.allowed_cidrs),
            tls_ciphers: non_null(&self.tls_ciphers),
            tls_versions: non_null(&self.tls_versions),
            alpn_protocols: non_null(&self.alpn_protocols),
            hsts_max_age: self.hsts_max_age.flatten(),
            hsts_include_subdomains: self.hsts_include_subdomains.flatten(),
            hsts_preload: self.hsts_preload.flatten(),
            client_authentication: self.client_authentication.flatten(),
            default_tls_container_ref: non_null(&self.default_tls_container_ref),
            sni_container_refs: non_null(&self.sni_container_refs),
            client_ca_tls_container_ref: non_null(&self.client_ca_tls_container_ref),
            client_crl_container_ref: non_null(&self.client_crl_container_ref),
        }
        .check()?;
        check_default_pool_id(current.protocol, non_null(&self.default_pool_id))
    }

    /// Patch `l` with the fields present (`null` → default).
    pub fn apply(self, l: &mut Listener, settings: &ValidationSettings) {
        let ms = |v: Option<Option<i64>>, d: i32| v.map(|v| v.map_or(d, |v| v as i32));
        patch(&mut l.name, self.name);
        patch(&mut l.description, self.description);
        patch_or_default(&mut l.enabled, self.admin_state_up);
        patch(&mut l.connection_limit, ms(self.connection_limit, -1));
        patch(
            &mut l.default_pool_id,
            self.default_pool_id.map(|v| v.and_then(|p| p.parse().ok())),
        );
        patch_or_default(&mut l.insert_headers, self.insert_headers);
        patch(
            &mut l.timeout_client_data,
            ms(self.timeout_client_data, settings.timeout_client_data),
        );
        patch(
            &mut l.timeout_member_connect,
            ms(self.timeout_member_connect, settings.timeout_member_connect),
        );
        patch(
            &mut l.timeout_member_data,
            ms(self.timeout_member_data, settings.timeout_member_data),
        );
        patch(
            &mut l.timeout_tcp_inspect,
            ms(self.timeout_tcp_inspect, settings.timeout_tcp_inspect),
        );
        patch(
            &mut l.client_authentication,
            self.client_authentication
                .map(|v| v.unwrap_or(ClientAuthentication::None)),
        );
        patch_or_default(&mut l.allowed_cidrs, self.allowed_cidrs);
        patch_or_default(&mut l.alpn_protocols, self.alpn_protocols);
        patch(&mut l.tags, self.tags);
    }
}

/// A listener as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerResponse {
    pub id: String,
    pub name: String,
    pub description: String,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub admin_state_up: bool,
    pub protocol: ListenerProtocol,
    pub protocol_port: i32,
    pub connection_limit: i32,
    pub default_tls_container_ref: Option<String>,
    pub sni_container_refs: Vec<String>,
    pub project_id: String,
    pub tenant_id: String,
    pub default_pool_id: Option<String>,
    pub l7policies: Vec<IdRef>,
    pub insert_headers: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub loadbalancers: Vec<IdRef>,
    pub timeout_client_data: i32,
    pub timeout_member_connect: i32,
    pub timeout_member_data: i32,
    pub timeout_tcp_inspect: i32,
    pub tags: Vec<String>,
    pub client_ca_tls_container_ref: Option<String>,
    pub client_authentication: ClientAuthentication,
    pub client_crl_container_ref: Option<String>,
    pub allowed_cidrs: Option<Vec<String>>,
    pub tls_ciphers: Option<String>,
    pub tls_versions: Option<Vec<String>>,
    pub alpn_protocols: Option<Vec<String>>,
    pub hsts_max_age: Option<i32>,
    pub hsts_include_subdomains: bool,
    pub hsts_preload: bool,
}

fn none_if_empty(v: &[String]) -> Option<Vec<String>> {
    if v.is_empty() {
        None
    } else {
        Some(v.to_vec())
    }
}

impl From<&Listener> for ListenerResponse {
    fn from(l: &Listener) -> Self {
        Self {
            id: l.id.to_string(),
            name: or_empty(&l.name),
            description: or_empty(&l.description),
            provisioning_status: l.provisioning_status,
            operating_status: l.operating_status,
            admin_state_up: l.enabled,
            protocol: l.protocol,
            protocol_port: l.protocol_port,
            connection_limit: l.connection_limit,
            default_tls_container_ref: l.default_tls_container_ref.clone(),
            sni_container_refs: l.sni_container_refs.clone(),
            project_id: l.project_id.clone(),
            tenant_id: l.project_id.clone(),
            default_pool_id: l.default_pool_id.map(|p| p.to_string()),
            l7policies: l.l7policy_ids.iter().map(IdRef::of).collect(),
            insert_headers: l.insert_headers.clone(),
            created_at: fmt_time(&l.created_at),
            updated_at: fmt_opt_time(&l.updated_at),
            loadbalancers: vec![IdRef::of(l.load_balancer_id)],
            timeout_client_data: l.timeout_client_data,
            timeout_member_connect: l.timeout_member_connect,
            timeout_member_data: l.timeout_member_data,
            timeout_tcp_inspect: l.timeout_tcp_inspect,
            tags: l.tags.clone(),
            client_ca_tls_container_ref: l.client_ca_tls_container_ref.clone(),
            client_authentication: l.client_authentication,
            client_crl_container_ref: l.client_crl_container_ref.clone(),
            allowed_cidrs: none_if_empty(&l.allowed_cidrs),
            tls_ciphers: l.tls_ciphers.clone(),
            tls_versions: none_if_empty(&l.tls_versions),
            alpn_protocols: none_if_empty(&l.alpn_protocols),
            hsts_max_age: l.hsts_max_age,
            hsts_include_subdomains: l.hsts_include_subdomains,
            hsts_preload: l.hsts_preload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_must_share_an_ip_version_with_a_vip() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check_cidrs_match_vips(&v(&["10.0.0.0/8"]), &v(&["192.0.2.5"])).is_ok());
        assert!(check_cidrs_match_vips(&v(&["2001:db8::/32"]), &v(&["2001:db8::5"])).is_ok());
        assert!(check_cidrs_match_vips(
            &v(&["10.0.0.0/8", "::/0"]),
            &v(&["192.0.2.5", "2001:db8::5"])
        )
        .is_ok());
        assert!(check_cidrs_match_vips(&[], &v(&["192.0.2.5"])).is_ok());
        assert_eq!(
            check_cidrs_match_vips(&v(&["10.0.0.0/8", "2001:db8::/32"]), &v(&["192.0.2.5"])),
            Err(
                "CIDR 2001:db8::/32 IP version incompatible with all VIPs ['192.0.2.5'] IP \
                 version."
                    .to_string()
            )
        );
    }
    use crate::decode_body;

    const LB: &str = "11111111-1111-1111-1111-111111111111";

    fn post(extra: &str) -> Result<Option<String>, TypesError> {
        let json = crate::common::merged(
            &format!(
                r#"{{"listener":{{"loadbalancer_id":"{LB}","protocol":"HTTP","protocol_port":80}}}}"#
            ),
            extra,
        );
        decode_body::<ListenerPostBody>(json.as_bytes())?
            .listener
            .validate(&ValidationSettings::default())
    }

    #[test]
    fn post_rules_table() {
        // (extra fields, expected error field, expect 501)
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("", None, false),
            (r#","protocol_port":0"#, Some("protocol_port"), false),
            (r#","protocol_port":65536"#, Some("protocol_port"), false),
            (
                r#","protocol_port":"x""#,
                Some("listener.protocol_port"),
                false,
            ),
            (r#","protocol":"FTP""#, Some("listener.protocol"), false),
            // Whether the provider serves a protocol is octavia_render::support's business.
            (r#","protocol":"UDP""#, None, false),
            (
                r#","default_tls_container_ref":"x""#,
                Some("default_tls_container_ref"),
                true,
            ),
            (
                r#","timeout_client_data":-1"#,
                Some("timeout_client_data"),
                false,
            ),
            (
                r#","timeout_member_data":2073600001"#,
                Some("timeout_member_data"),
                false,
            ),
            (r#","timeout_tcp_inspect":2073600000"#, None, false),
            (r#","connection_limit":-2"#, Some("connection_limit"), false),
            (
                r#","insert_headers":{"X-Forwarded-For":"true"}"#,
                None,
                false,
            ),
            (
                r#","insert_headers":{"X-Evil":"true"}"#,
                Some("insert_headers"),
                false,
            ),
            (
                r#","insert_headers":{"X-SSL-Client-DN":"true"}"#,
                Some("insert_headers"),
                false,
            ),
            (
                r#","insert_headers":{"X-Forwarded-For":"maybe"}"#,
                Some("insert_headers"),
                false,
            ),
            (r#","allowed_cidrs":["10.0.0.0/8"]"#, None, false),
            (
                r#","allowed_cidrs":["10.0.0.0/33"]"#,
                Some("allowed_cidrs"),
                false,
            ),
            (r#","alpn_protocols":["h3"]"#, Some("alpn_protocols"), false),
            (r#","name":null"#, None, false),
            (
                r#","client_authentication":"SOMETIMES""#,
                Some("listener.client_authentication"),
                false,
            ),
            (
                r#","loadbalancer_id":"nope""#,
                Some("loadbalancer_id"),
                false,
            ),
            (r#","hsts_max_age":10"#, Some("hsts_max_age"), false),
            (
                r#","default_pool":{"name":"x"}"#,
                Some("default_pool"),
                true,
            ),
        ];
        for (extra, field, nyi) in cases {
            match (post(extra), field) {
                (Ok(_), None) => {}
                (Err(e), Some(f)) => {
                    assert_eq!(e.field(), *f, "{extra}: {e}");
                    assert_eq!(
                        matches!(e, TypesError::NotImplemented { .. }),
                        *nyi,
                        "{extra}: {e}"
                    );
                }
                (r, f) => panic!("{extra}: got {r:?}, expected error on {f:?}"),
            }
        }
    }

    #[test]
    fn tcp_listener_refuses_headers_and_prometheus_gate() {
        let json = format!(
            r#"{{"listener":{{"loadbalancer_id":"{LB}","protocol":"TCP","protocol_port":80,"insert_headers":{{"X-Forwarded-For":"true"}}}}}}"#
        );
        let b: ListenerPostBody = decode_body(json.as_bytes()).unwrap();
        assert_eq!(
            b.listener
                .validate(&Default::default())
                .unwrap_err()
                .field(),
            "insert_headers"
        );
        let json = format!(
            r#"{{"listener":{{"loadbalancer_id":"{LB}","protocol":"PROMETHEUS","protocol_port":80}}}}"#
        );
        let b: ListenerPostBody = decode_body(json.as_bytes()).unwrap();
        let s = ValidationSettings {
            allow_prometheus_listeners: false,
            ..Default::default()
        };
        assert!(matches!(
            b.listener.validate(&s),
            Err(TypesError::Invalid { .. })
        ));
        assert!(b.listener.validate(&Default::default()).is_ok());
    }

    #[test]
    fn pool_compatibility_uses_model_table() {
        assert!(check_pool_compatible("x", ListenerProtocol::Http, PoolProtocol::Http).is_ok());
        assert!(check_pool_compatible("x", ListenerProtocol::Http, PoolProtocol::Tcp).is_err());
        assert!(check_pool_compatible("x", ListenerProtocol::Tcp, PoolProtocol::Http).is_ok());
    }

    #[test]
    fn defaults_and_null_reset() {
        let s = ValidationSettings::default();
        let b: ListenerPostBody = decode_body(
            format!(r#"{{"listener":{{"loadbalancer_id":"{LB}","protocol":"HTTP","protocol_port":80,"timeout_client_data":7}}}}"#).as_bytes(),
        )
        .unwrap();
        let mut l = b.listener.into_model("p".into(), LB.parse().unwrap(), &s);
        assert_eq!(l.timeout_client_data, 7);
        assert_eq!(l.timeout_member_connect, 5000);
        assert_eq!(l.connection_limit, -1);
        let put: ListenerPutBody =
            decode_body(br#"{"listener":{"timeout_client_data":null,"connection_limit":5}}"#)
                .unwrap();
        put.listener.validate(&l).unwrap();
        put.listener.apply(&mut l, &s);
        assert_eq!(l.timeout_client_data, 50000);
        assert_eq!(l.connection_limit, 5);
        let r = ListenerResponse::from(&l);
        assert_eq!(r.allowed_cidrs, None);
        assert_eq!(r.loadbalancers, vec![IdRef::of(LB)]);
    }
}
