//! Row types of each table, their conversion to model entities, and the derived
//! fields (child ids, tags) filled for a whole page in one query.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use octavia_model::*;

use crate::db::{corrupt, Arg, Conn};
use crate::list::Source;
use crate::query::{columns, QUOTA_COLUMNS};
use crate::schema::Table;
use crate::{RecordKind, Result};

pub(crate) fn parse<T: FromStr>(what: &str, s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| corrupt(what, e))
}

fn parse_opt<T: FromStr>(what: &str, s: Option<&str>) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    s.map(|s| parse(what, s)).transpose()
}

fn json_list(what: &str, s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serialising plain strings, maps and specs cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

// ------------------------------------------------------------------ load balancer

/// The load balancer's own columns, its VIP (alias `x`, VIP alias `v`) and its derived fields
/// (tags as a JSON array; listener and pool ids, comma separated, oldest first). Triggers keep
/// the derived fields on the load balancer's row (migration 0002), so reading a load balancer
/// is one single-row lookup on both engines.
pub(crate) const LB_SELECT: &str = "x.id, x.project_id, x.name, x.description, \
    x.provisioning_status, x.operating_status, x.enabled, x.topology, x.provider, x.flavor_id, \
    x.availability_zone, x.created_at, x.updated_at, v.ip_address AS vip_address, \
    v.port_id AS vip_port_id, v.subnet_id AS vip_subnet_id, v.network_id AS vip_network_id, \
    v.qos_policy_id AS vip_qos_policy_id, x.tag_list, x.listener_id_list, x.pool_id_list";

pub(crate) const LB_FROM: &str = "load_balancer x LEFT JOIN vip v ON v.load_balancer_id = x.id";

#[derive(sqlx::FromRow)]
pub(crate) struct LbRow {
    id: String,
    project_id: String,
    name: Option<String>,
    description: Option<String>,
    provisioning_status: String,
    operating_status: String,
    enabled: bool,
    topology: String,
    provider: Option<String>,
    flavor_id: Option<String>,
    availability_zone: Option<String>,
    created_at: Timestamp,
    updated_at: Option<Timestamp>,
    vip_address: Option<String>,
    vip_port_id: Option<String>,
    vip_subnet_id: Option<String>,
    vip_network_id: Option<String>,
    vip_qos_policy_id: Option<String>,
    tag_list: Option<String>,
    listener_id_list: Option<String>,
    pool_id_list: Option<String>,
}

/// Ids from a comma-separated aggregate (NULL when there are none).
fn id_list<T: FromStr>(what: &str, s: Option<&str>) -> Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    match s {
        None | Some("") => Ok(Vec::new()),
        Some(s) => s.split(',').map(|i| parse(what, i)).collect(),
    }
}

impl LbRow {
    pub(crate) fn into_model(self) -> Result<LoadBalancer> {
        Ok(LoadBalancer {
            id: parse("load balancer id", &self.id)?,
            project_id: self.project_id,
            name: self.name,
            description: self.description,
            provisioning_status: parse("provisioning status", &self.provisioning_status)?,
            operating_status: parse("operating status", &self.operating_status)?,
            enabled: self.enabled,
            topology: parse("topology", &self.topology)?,
            provider: self.provider,
            flavor_id: self.flavor_id,
            availability_zone: self.availability_zone,
            vip: Vip {
                ip_address: self.vip_address,
                port_id: self.vip_port_id,
                subnet_id: self.vip_subnet_id,
                network_id: self.vip_network_id,
                qos_policy_id: self.vip_qos_policy_id,
            },
            tags: match self.tag_list.as_deref() {
                None => Vec::new(),
                Some(t) => json_list("tags", t)?,
            },
            listener_ids: id_list("listener id", self.listener_id_list.as_deref())?,
            pool_ids: id_list("pool id", self.pool_id_list.as_deref())?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

// ------------------------------------------------------------------ listener

pub(crate) const LISTENER_SELECT: &str = "x.id, x.project_id, x.load_balancer_id, x.name, \
    x.description, x.provisioning_status, x.operating_status, x.enabled, x.protocol, \
    x.protocol_port, x.connection_limit, x.default_pool_id, x.tls_certificate_id, \
    x.client_ca_tls_certificate_id, x.client_authentication, x.client_crl_container_id, \
    x.timeout_client_data, x.timeout_member_connect, x.timeout_member_data, \
    x.timeout_tcp_inspect, x.insert_headers, x.tls_ciphers, x.tls_versions, x.alpn_protocols, \
    x.hsts_max_age, x.hsts_include_subdomains, x.hsts_preload, x.created_at, x.updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ListenerRow {
    id: String,
    project_id: String,
    load_balancer_id: String,
    name: Option<String>,
    description: Option<String>,
    provisioning_status: String,
    operating_status: String,
    enabled: bool,
    protocol: String,
    protocol_port: i32,
    connection_limit: i32,
    default_pool_id: Option<String>,
    tls_certificate_id: Option<String>,
    client_ca_tls_certificate_id: Option<String>,
    client_authentication: String,
    client_crl_container_id: Option<String>,
    timeout_client_data: i32,
    timeout_member_connect: i32,
    timeout_member_data: i32,
    timeout_tcp_inspect: i32,
    insert_headers: String,
    tls_ciphers: Option<String>,
    tls_versions: String,
    alpn_protocols: String,
    hsts_max_age: Option<i32>,
    hsts_include_subdomains: bool,
    hsts_preload: bool,
    created_at: Timestamp,
    updated_at: Option<Timestamp>,
}

impl ListenerRow {
    pub(crate) fn into_model(self) -> Result<Listener> {
        let headers: BTreeMap<String, String> =
            serde_json::from_str(&self.insert_headers).map_err(|e| corrupt("insert_headers", e))?;
        Ok(Listener {
            id: parse("listener id", &self.id)?,
            project_id: self.project_id,
            load_balancer_id: parse("load balancer id", &self.load_balancer_id)?,
            name: self.name,
            description: self.description,
            provisioning_status: parse("provisioning status", &self.provisioning_status)?,
            operating_status: parse("operating status", &self.operating_status)?,
            enabled: self.enabled,
            protocol: parse("protocol", &self.protocol)?,
            protocol_port: self.protocol_port,
            connection_limit: self.connection_limit,
            default_pool_id: parse_opt("pool id", self.default_pool_id.as_deref())?,
            default_tls_container_ref: self.tls_certificate_id,
            sni_container_refs: Vec::new(),
            client_ca_tls_container_ref: self.client_ca_tls_certificate_id,
            client_authentication: parse("client authentication", &self.client_authentication)?,
            client_crl_container_ref: self.client_crl_container_id,
            timeout_client_data: self.timeout_client_data,
            timeout_member_connect: self.timeout_member_connect,
            timeout_member_data: self.timeout_member_data,
            timeout_tcp_inspect: self.timeout_tcp_inspect,
            insert_headers: headers,
            allowed_cidrs: Vec::new(),
            tls_ciphers: self.tls_ciphers,
            tls_versions: json_list("tls_versions", &self.tls_versions)?,
            alpn_protocols: json_list("alpn_protocols", &self.alpn_protocols)?,
            hsts_max_age: self.hsts_max_age,
            hsts_include_subdomains: self.hsts_include_subdomains,
            hsts_preload: self.hsts_preload,
            tags: Vec::new(),
            l7policy_ids: Vec::new(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

// ------------------------------------------------------------------ pool

pub(crate) const POOL_SELECT: &str = "x.id, x.project_id, x.load_balancer_id, x.name, \
    x.description, x.provisioning_status, x.operating_status, x.enabled, x.protocol, \
    x.lb_algorithm, x.tls_enabled, x.tls_certificate_id, x.ca_tls_certificate_id, \
    x.crl_container_id, x.tls_ciphers, x.tls_versions, x.alpn_protocols, x.created_at, \
    x.updated_at, sp.type AS sp_type, sp.cookie_name AS sp_cookie_name, \
    sp.persistence_timeout AS sp_timeout, sp.persistence_granularity AS sp_granularity";
pub(crate) const POOL_FROM: &str = "pool x LEFT JOIN session_persistence sp ON sp.pool_id = x.id";

#[derive(sqlx::FromRow)]
pub(crate) struct PoolRow {
    id: String,
    project_id: String,
    load_balancer_id: String,
    name: Option<String>,
    description: Option<String>,
    provisioning_status: String,
    operating_status: String,
    enabled: bool,
    protocol: String,
    lb_algorithm: String,
    tls_enabled: bool,
    tls_certificate_id: Option<String>,
    ca_tls_certificate_id: Option<String>,
    crl_container_id: Option<String>,
    tls_ciphers: Option<String>,
    tls_versions: String,
    alpn_protocols: String,
    created_at: Timestamp,
    updated_at: Option<Timestamp>,
    sp_type: Option<String>,
    sp_cookie_name: Option<String>,
    sp_timeout: Option<i32>,
    sp_granularity: Option<String>,
}

impl PoolRow {
    pub(crate) fn into_model(self) -> Result<Pool> {
        let session_persistence = match self.sp_type {
            Some(t) => Some(SessionPersistence {
                persistence_type: parse("session persistence type", &t)?,
                cookie_name: self.sp_cookie_name,
                persistence_timeout: self.sp_timeout,
                persistence_granularity: self.sp_granularity,
            }),
            None => None,
        };
        Ok(Pool {
            id: parse("pool id", &self.id)?,
            project_id: self.project_id,
            load_balancer_id: parse("load balancer id", &self.load_balancer_id)?,
            name: self.name,
            description: self.description,
            provisioning_status: parse("provisioning status", &self.provisioning_status)?,
            operating_status: parse("operating status", &self.operating_status)?,
            enabled: self.enabled,
            protocol: parse("pool protocol", &self.protocol)?,
            lb_algorithm: parse("lb algorithm", &self.lb_algorithm)?,
            session_persistence,
            tls_enabled: self.tls_enabled,
            tls_certificate_id: self.tls_certificate_id,
            ca_tls_certificate_id: self.ca_tls_certificate_id,
            crl_container_id: self.crl_container_id,
            tls_ciphers: self.tls_ciphers,
            tls_versions: json_list("tls_versions", &self.tls_versions)?,
            alpn_protocols: json_list("alpn_protocols", &self.alpn_protocols)?,
            tags: Vec::new(),
            listener_ids: Vec::new(),
            member_ids: Vec::new(),
            health_monitor_id: None,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

// ------------------------------------------------------------------ member

pub(crate) const MEMBER_SELECT: &str = "x.id, x.project_id, x.pool_id, x.name, \
    x.provisioning_status, x.operating_status, x.enabled, x.ip_address, x.protocol_port, \
    x.weight, x.backup, x.subnet_id, x.monitor_address, x.monitor_port, x.vnic_type, \
    x.created_at, x.updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    id: String,
    project_id: String,
    pool_id: String,
    name: Option<String>,
    provisioning_status: String,
    operating_status: String,
    enabled: bool,
    ip_address: String,
    protocol_port: i32,
    weight: i32,
    backup: bool,
    subnet_id: Option<String>,
    monitor_address: Option<String>,
    monitor_port: Option<i32>,
    vnic_type: String,
    created_at: Timestamp,
    updated_at: Option<Timestamp>,
}

impl MemberRow {
    pub(crate) fn into_model(self) -> Result<Member> {
        Ok(Member {
            id: parse("member id", &self.id)?,
            project_id: self.project_id,
            pool_id: parse("pool id", &self.pool_id)?,
            name: self.name,
            provisioning_status: parse("provisioning status", &self.provisioning_status)?,
            operating_status: parse("operating status", &self.operating_status)?,
            enabled: self.enabled,
            ip_address: self.ip_address,
            protocol_port: self.protocol_port,
            weight: self.weight,
            backup: self.backup,
            subnet_id: self.subnet_id,
            monitor_address: self.monitor_address,
            monitor_port: self.monitor_port,
            vnic_type: self.vnic_type,
            tags: Vec::new(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

// ------------------------------------------------------------------ health monitor

pub(crate) const HM_SELECT: &str = "x.id, x.project_id, x.pool_id, x.name, \
    x.provisioning_status, x.operating_status, x.enabled, x.type, x.delay, x.timeout, \
    x.fall_threshold, x.rise_threshold, x.http_method, x.url_path, x.expected_codes, \
    x.http_version, x.domain_name, x.created_at, x.updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct HmRow {
    id: String,
    project_id: String,
    pool_id: String,
    name: Option<String>,
    provisioning_status: String,
    operating_status: String,
    enabled: bool,
    #[sqlx(rename = "type")]
    monitor_type: String,
    delay: i32,
    timeout: i32,
    fall_threshold: i32,
    rise_threshold: i32,
    http_method: Option<String>,
    url_path: Option<String>,
    expected_codes: Option<String>,
    http_version: Option<f64>,
    domain_name: Option<String>,
    created_at: Timestamp,
    updated_at: Option<Timestamp>,
}

impl HmRow {
    pub(crate) fn into_model(self) -> Result<HealthMonitor> {
        Ok(HealthMonitor {
            id: parse("health monitor id", &self.id)?,
            project_id: self.project_id,
            pool_id: parse("pool id", &self.pool_id)?,
            name: self.name,
            provisioning_status: parse("provisioning status", &self.provisioning_status)?,
            operating_status: parse("operating status", &self.operating_status)?,
            enabled: self.enabled,
            monitor_type: parse("health monitor type", &self.monitor_type)?,
            delay: self.delay,
            timeout: self.timeout,
            rise_threshold: self.rise_threshold,
            fall_threshold: self.fall_threshold,
            http_method: parse_opt("http method", self.http_method.as_deref())?,
            url_path: self.url_path,
            expected_codes: self.expected_codes,
            http_version: self.http_version,
            domain_name: self.domain_name,
            tags: Vec::new(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

// ------------------------------------------------------------------ L7 policy / rule

pub(crate) const L7POLICY_SELECT: &str = "x.id, x.project_id, x.listener_id, x.name, \
    x.description, x.provisioning_status, x.operating_status, x.enabled, x.action, \
    x.position, x.redirect_pool_id, x.redirect_url, x.redirect_prefix, x.redirect_http_code, \
    x.created_at, x.updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct L7PolicyRow {
    id: String,
    project_id: String,
    listener_id: String,
    name: Option<String>,
    description: Option<String>,
    provisioning_status: String,
    operating_status: String,
    enabled: bool,
    action: String,
    position: i32,
    redirect_pool_id: Option<String>,
    redirect_url: Option<String>,
    redirect_prefix: Option<String>,
    redirect_http_code: Option<i32>,
    created_at: Timestamp,
    updated_at: Option<Timestamp>,
}

impl L7PolicyRow {
    pub(crate) fn into_model(self) -> Result<L7Policy> {
        Ok(L7Policy {
            id: parse("l7policy id", &self.id)?,
            project_id: self.project_id,
            listener_id: parse("listener id", &self.listener_id)?,
            name: self.name,
            description: self.description,
            provisioning_status: parse("provisioning status", &self.provisioning_status)?,
            operating_status: parse("operating status", &self.operating_status)?,
            enabled: self.enabled,
            action: parse("l7policy action", &self.action)?,
            position: self.position,
            redirect_pool_id: parse_opt("pool id", self.redirect_pool_id.as_deref())?,
            redirect_url: self.redirect_url,
            redirect_prefix: self.redirect_prefix,
            redirect_http_code: self.redirect_http_code,
            tags: Vec::new(),
            rule_ids: Vec::new(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub(crate) const L7RULE_SELECT: &str = "x.id, x.project_id, x.l7policy_id, \
    x.provisioning_status, x.operating_status, x.enabled, x.type, x.compare_type, x.key, \
    x.value, x.invert, x.created_at, x.updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct L7RuleRow {
    id: String,
    project_id: String,
    l7policy_id: String,
    provisioning_status: String,
    operating_status: String,
    enabled: bool,
    #[sqlx(rename = "type")]
    rule_type: String,
    compare_type: String,
    key: Option<String>,
    value: String,
    invert: bool,
    created_at: Timestamp,
    updated_at: Option<Timestamp>,
}

impl L7RuleRow {
    pub(crate) fn into_model(self) -> Result<L7Rule> {
        Ok(L7Rule {
            id: parse("l7rule id", &self.id)?,
            project_id: self.project_id,
            l7policy_id: parse("l7policy id", &self.l7policy_id)?,
            provisioning_status: parse("provisioning status", &self.provisioning_status)?,
            operating_status: parse("operating status", &self.operating_status)?,
            enabled: self.enabled,
            rule_type: parse("l7rule type", &self.rule_type)?,
            compare_type: parse("l7rule compare type", &self.compare_type)?,
            key: self.key,
            value: self.value,
            invert: self.invert,
            tags: Vec::new(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

// ------------------------------------------------------------------ quota, amphora

pub(crate) const QUOTA_SELECT: &str = "x.project_id, x.load_balancer, x.listener, x.pool, \
    x.health_monitor, x.member, x.l7policy, x.l7rule";

#[derive(sqlx::FromRow)]
pub(crate) struct QuotaRow {
    project_id: String,
    load_balancer: Option<i64>,
    listener: Option<i64>,
    pool: Option<i64>,
    health_monitor: Option<i64>,
    member: Option<i64>,
    l7policy: Option<i64>,
    l7rule: Option<i64>,
}

impl QuotaRow {
    pub(crate) fn into_model(self) -> Quota {
        Quota {
            project_id: self.project_id,
            load_balancer: self.load_balancer,
            listener: self.listener,
            pool: self.pool,
            health_monitor: self.health_monitor,
            member: self.member,
            l7policy: self.l7policy,
            l7rule: self.l7rule,
        }
    }
}

pub(crate) const AMPHORA_SELECT: &str = "x.id, x.load_balancer_id, x.compute_id, \
    x.lb_network_ip, x.vrrp_ip, x.ha_ip, x.vrrp_port_id, x.ha_port_id, x.cert_expiration, \
    x.cert_busy, x.role, x.status, x.vrrp_interface, x.vrrp_id, x.vrrp_priority, \
    x.cached_zone, x.image_id, x.compute_flavor, x.created_at, x.updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct AmphoraRow {
    id: String,
    load_balancer_id: Option<String>,
    compute_id: Option<String>,
    lb_network_ip: Option<String>,
    vrrp_ip: Option<String>,
    ha_ip: Option<String>,
    vrrp_port_id: Option<String>,
    ha_port_id: Option<String>,
    cert_expiration: Option<Timestamp>,
    cert_busy: bool,
    role: Option<String>,
    status: String,
    vrrp_interface: Option<String>,
    vrrp_id: Option<i32>,
    vrrp_priority: Option<i32>,
    cached_zone: Option<String>,
    image_id: Option<String>,
    compute_flavor: Option<String>,
    created_at: Timestamp,
    updated_at: Option<Timestamp>,
}

impl AmphoraRow {
    pub(crate) fn into_model(self) -> Result<Amphora> {
        Ok(Amphora {
            id: parse("amphora id", &self.id)?,
            load_balancer_id: parse_opt("load balancer id", self.load_balancer_id.as_deref())?,
            compute_id: self.compute_id,
            lb_network_ip: self.lb_network_ip,
            vrrp_ip: self.vrrp_ip,
            ha_ip: self.ha_ip,
            vrrp_port_id: self.vrrp_port_id,
            ha_port_id: self.ha_port_id,
            cert_expiration: self.cert_expiration,
            cert_busy: self.cert_busy,
            role: parse_opt("amphora role", self.role.as_deref())?,
            status: parse("amphora status", &self.status)?,
            vrrp_interface: self.vrrp_interface,
            vrrp_id: self.vrrp_id,
            vrrp_priority: self.vrrp_priority,
            cached_zone: self.cached_zone,
            image_id: self.image_id,
            compute_flavor: self.compute_flavor,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

// ------------------------------------------------------------------ the operator's catalogue

pub(crate) const FLAVOR_SELECT: &str =
    "x.id, x.name, x.description, x.enabled, x.flavor_profile_id";

#[derive(sqlx::FromRow)]
pub(crate) struct FlavorRow {
    id: String,
    name: String,
    description: Option<String>,
    enabled: bool,
    flavor_profile_id: String,
}

impl FlavorRow {
    pub(crate) fn into_model(self) -> Result<Flavor> {
        Ok(Flavor {
            id: parse("flavor id", &self.id)?,
            name: self.name,
            description: self.description,
            enabled: self.enabled,
            flavor_profile_id: parse("flavor profile id", &self.flavor_profile_id)?,
        })
    }
}

pub(crate) const FLAVOR_PROFILE_SELECT: &str = "x.id, x.name, x.provider_name, x.flavor_data";

#[derive(sqlx::FromRow)]
pub(crate) struct FlavorProfileRow {
    id: String,
    name: String,
    provider_name: String,
    flavor_data: String,
}

impl FlavorProfileRow {
    pub(crate) fn into_model(self) -> Result<FlavorProfile> {
        Ok(FlavorProfile {
            id: parse("flavor profile id", &self.id)?,
            name: self.name,
            provider_name: self.provider_name,
            flavor_data: self.flavor_data,
        })
    }
}

pub(crate) const AVAILABILITY_ZONE_SELECT: &str =
    "x.name, x.description, x.enabled, x.availability_zone_profile_id";

#[derive(sqlx::FromRow)]
pub(crate) struct AvailabilityZoneRow {
    name: String,
    description: Option<String>,
    enabled: bool,
    availability_zone_profile_id: String,
}

impl AvailabilityZoneRow {
    pub(crate) fn into_model(self) -> Result<AvailabilityZone> {
        Ok(AvailabilityZone {
            name: self.name,
            description: self.description,
            enabled: self.enabled,
            availability_zone_profile_id: parse(
                "availability zone profile id",
                &self.availability_zone_profile_id,
            )?,
        })
    }
}

pub(crate) const AVAILABILITY_ZONE_PROFILE_SELECT: &str =
    "x.id, x.name, x.provider_name, x.availability_zone_data";

#[derive(sqlx::FromRow)]
pub(crate) struct AvailabilityZoneProfileRow {
    id: String,
    name: String,
    provider_name: String,
    availability_zone_data: String,
}

impl AvailabilityZoneProfileRow {
    pub(crate) fn into_model(self) -> Result<AvailabilityZoneProfile> {
        Ok(AvailabilityZoneProfile {
            id: parse("availability zone profile id", &self.id)?,
            name: self.name,
            provider_name: self.provider_name,
            availability_zone_data: self.availability_zone_data,
        })
    }
}

// ------------------------------------------------------------------ sources

/// Where a list query reads: an object kind, the quotas, or a kind of the operator's
/// catalogue (flavors, availability zones and their profiles).
pub(crate) fn source(kind: impl Into<RecordKind>) -> Source {
    use ObjectKind as K;
    let kind: RecordKind = kind.into();
    let catalogue = |table, from, select, default_sort, key| Source {
        table,
        from,
        select,
        columns: columns(kind),
        tags: false,
        base_where: None,
        default_sort,
        project_cond: None,
        key,
    };
    let kind = match kind {
        RecordKind::Object(kind) => kind,
        RecordKind::Quota => {
            return Source {
                table: "quotas",
                from: "quotas x",
                select: QUOTA_SELECT,
                columns: QUOTA_COLUMNS,
                tags: false,
                base_where: None,
                default_sort: &["project_id"],
                project_cond: Some("x.project_id = {}"),
                key: "project_id",
            }
        }
        RecordKind::Flavor => return catalogue("flavor", "flavor x", FLAVOR_SELECT, &["id"], "id"),
        RecordKind::FlavorProfile => {
            return catalogue(
                "flavor_profile",
                "flavor_profile x",
                FLAVOR_PROFILE_SELECT,
                &["id"],
                "id",
            )
        }
        RecordKind::AvailabilityZone => {
            return catalogue(
                "availability_zone",
                "availability_zone x",
                AVAILABILITY_ZONE_SELECT,
                &["name"],
                "name",
            )
        }
        RecordKind::AvailabilityZoneProfile => {
            return catalogue(
                "availability_zone_profile",
                "availability_zone_profile x",
                AVAILABILITY_ZONE_PROFILE_SELECT,
                &["id"],
                "id",
            )
        }
    };
    let (from, select) = match kind {
        K::LoadBalancer => (LB_FROM, LB_SELECT),
        K::Listener => ("listener x", LISTENER_SELECT),
        K::Pool => (POOL_FROM, POOL_SELECT),
        K::Member => ("member x", MEMBER_SELECT),
        K::HealthMonitor => ("health_monitor x", HM_SELECT),
        K::L7Policy => ("l7policy x", L7POLICY_SELECT),
        K::L7Rule => ("l7rule x", L7RULE_SELECT),
        K::Amphora => ("amphora x", AMPHORA_SELECT),
    };
    Source {
        table: kind.table(),
        from,
        select,
        columns: columns(kind),
        tags: kind != K::Amphora,
        base_where: kind.live(),
        default_sort: &["created_at", "id"],
        project_cond: Some(if kind == K::Amphora {
            "EXISTS (SELECT 1 FROM load_balancer pl WHERE pl.id = x.load_balancer_id AND \
             pl.project_id = {})"
        } else {
            "x.project_id = {}"
        }),
        key: "id",
    }
}

// ------------------------------------------------------------------ derived fields

/// Child values of each parent id, per kind letter, in order.
pub(crate) type Children = HashMap<String, Vec<(String, String)>>;

/// Run `branches` (each a SELECT of `k, parent, value, ord BIGINT, ts TIMESTAMP` with an
/// `{IN}` placeholder for the id list) as one UNION ALL query.
pub(crate) async fn children(
    c: &mut Conn<'_>,
    branches: &[&str],
    ids: &[String],
) -> Result<Children> {
    let mut out: Children = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let list = list.join(", ");
    let sql = branches
        .iter()
        .map(|b| b.replace("{IN}", &list))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let sql = format!("{sql} ORDER BY 1, 2, 4, 5, 3");
    let args: Vec<Arg> = ids.iter().map(|i| Arg::Text(Some(i.clone()))).collect();
    let rows: Vec<(String, String, String, i64, Option<Timestamp>)> =
        c.fetch_all(&sql, args).await?;
    for (k, p, v, _, _) in rows {
        out.entry(p).or_default().push((k, v));
    }
    Ok(out)
}

pub(crate) fn pick(ch: &Children, parent: &str, k: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    if let Some(list) = ch.get(parent) {
        for (kk, val) in list {
            if kk == k && !v.contains(val) {
                v.push(val.clone());
            }
        }
    }
    v
}

pub(crate) fn pick_ids<T: FromStr>(ch: &Children, parent: &str, k: &str) -> Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    pick(ch, parent, k)
        .iter()
        .map(|s| parse("child id", s))
        .collect()
}

pub(crate) const TAGS_BRANCH: &str = "SELECT 't', resource_id, tag, CAST(position AS BIGINT), \
    CAST(NULL AS TIMESTAMP) FROM tags WHERE resource_id IN ({IN})";

pub(crate) async fn fill_listeners(c: &mut Conn<'_>, v: &mut [Listener]) -> Result<()> {
    let ids: Vec<String> = v.iter().map(|x| x.id.to_string()).collect();
    let ch = children(
        c,
        &[
            TAGS_BRANCH,
            "SELECT 's', listener_id, tls_container_id, CAST(position AS BIGINT), \
             CAST(NULL AS TIMESTAMP) FROM sni WHERE listener_id IN ({IN})",
            "SELECT 'c', listener_id, cidr, CAST(0 AS BIGINT), CAST(NULL AS TIMESTAMP) \
             FROM listener_cidr WHERE listener_id IN ({IN})",
            "SELECT 'y', listener_id, id, CAST(position AS BIGINT), created_at FROM l7policy \
             WHERE listener_id IN ({IN})",
        ],
        &ids,
    )
    .await?;
    for (x, id) in v.iter_mut().zip(ids.iter()) {
        x.tags = pick(&ch, id, "t");
        x.sni_container_refs = pick(&ch, id, "s");
        x.allowed_cidrs = pick(&ch, id, "c");
        x.l7policy_ids = pick_ids(&ch, id, "y")?;
    }
    Ok(())
}

pub(crate) async fn fill_pools(c: &mut Conn<'_>, v: &mut [Pool]) -> Result<()> {
    let ids: Vec<String> = v.iter().map(|x| x.id.to_string()).collect();
    let ch = children(
        c,
        &[
            TAGS_BRANCH,
            "SELECT 'l', default_pool_id, id, CAST(0 AS BIGINT), created_at FROM listener \
             WHERE default_pool_id IN ({IN})",
            "SELECT 'l', redirect_pool_id, listener_id, CAST(1 AS BIGINT), created_at \
             FROM l7policy WHERE redirect_pool_id IN ({IN})",
            "SELECT 'm', pool_id, id, CAST(0 AS BIGINT), created_at FROM member \
             WHERE pool_id IN ({IN})",
            "SELECT 'h', pool_id, id, CAST(0 AS BIGINT), created_at FROM health_monitor \
             WHERE pool_id IN ({IN})",
        ],
        &ids,
    )
    .await?;
    for (x, id) in v.iter_mut().zip(ids.iter()) {
        x.tags = pick(&ch, id, "t");
        x.listener_ids = pick_ids(&ch, id, "l")?;
        x.member_ids = pick_ids(&ch, id, "m")?;
        x.health_monitor_id = pick_ids(&ch, id, "h")?.into_iter().next();
    }
    Ok(())
}

pub(crate) async fn fill_l7policies(c: &mut Conn<'_>, v: &mut [L7Policy]) -> Result<()> {
    let ids: Vec<String> = v.iter().map(|x| x.id.to_string()).collect();
    let ch = children(
        c,
        &[
            TAGS_BRANCH,
            "SELECT 'r', l7policy_id, id, CAST(0 AS BIGINT), created_at FROM l7rule \
             WHERE l7policy_id IN ({IN})",
        ],
        &ids,
    )
    .await?;
    for (x, id) in v.iter_mut().zip(ids.iter()) {
        x.tags = pick(&ch, id, "t");
        x.rule_ids = pick_ids(&ch, id, "r")?;
    }
    Ok(())
}

/// Tags only (members, health monitors, L7 rules).
pub(crate) async fn tags_of(c: &mut Conn<'_>, ids: &[String]) -> Result<Children> {
    children(c, &[TAGS_BRANCH], ids).await
}
