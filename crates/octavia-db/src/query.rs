//! List queries: attribute filters, tag filters, sorting and keyset pagination.
//!
//! Field names here are **database column names** (the API translates
//! `admin_state_up` → `enabled`, `loadbalancer_id` → `load_balancer_id`, ...). The
//! store accepts only columns it knows for the resource and answers
//! [`crate::DbError::Invalid`] otherwise, so no user text ever reaches SQL.

use crate::RecordKind;

/// A value to compare a column with.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// `column = value` (AND-ed with the others).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: String,
    pub value: FilterValue,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDir {
    #[default]
    Asc,
    Desc,
}

/// Octavia's tag filters (API v2.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagFilter {
    /// `tags`: has all of these.
    pub all: Vec<String>,
    /// `tags-any`: has at least one of these.
    pub any: Vec<String>,
    /// `not-tags`: does not have all of these.
    pub not_all: Vec<String>,
    /// `not-tags-any`: has none of these.
    pub not_any: Vec<String>,
}

/// One page request over a collection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListQuery {
    /// Restrict to one project (non-admin callers, or an explicit filter).
    pub project_id: Option<String>,
    pub filters: Vec<Filter>,
    pub tags: TagFilter,
    /// Sort keys in order; the store appends `created_at`, `id` (ascending) if absent.
    pub sort: Vec<(String, SortDir)>,
    /// At most this many rows; `None` = no limit.
    pub limit: Option<u32>,
    /// Id of the last object of the previous page; unknown → `DbError::Invalid`.
    pub marker: Option<String>,
    /// Page backwards from the marker (results still returned in sort order).
    pub page_reverse: bool,
}

/// The SQL type of a filterable/sortable column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int,
    Bool,
    Timestamp,
}

/// A column a list query may filter or sort on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Name as used in [`Filter::column`] and sort keys.
    pub name: &'static str,
    pub ty: ColumnType,
}

/// The filterable/sortable columns of each listable kind, named as Octavia's database
/// columns (`enabled`, `load_balancer_id`, `ip_address`, `rise_threshold`, `type`, ...;
/// for load balancers also `vip_address`, `vip_port_id`, `vip_subnet_id`,
/// `vip_network_id`, `vip_qos_policy_id`). Quotas use `project_id` only (see
/// [`QUOTA_COLUMNS`]).
///
/// Listener certificate columns keep Octavia's names: `tls_certificate_id`
/// (API `default_tls_container_ref`), `client_ca_tls_certificate_id`,
/// `client_crl_container_id`; pool: `tls_certificate_id` (API `tls_container_ref`),
/// `ca_tls_certificate_id`, `crl_container_id`. Text filters on Int/Bool/Timestamp
/// columns are parsed (`"80"`, `"true"`, `"2024-01-01T00:00:00"`).
///
/// The operator's catalogue lists by its own columns: flavors `id`, `name`, `description`,
/// `enabled`, `flavor_profile_id`; flavor profiles `id`, `name`, `provider_name`,
/// `flavor_data`; availability zones `name`, `description`, `enabled`,
/// `availability_zone_profile_id`; their profiles `id`, `name`, `provider_name`,
/// `availability_zone_data`.
pub fn columns(kind: impl Into<RecordKind>) -> &'static [Column] {
    use octavia_model::ObjectKind as K;
    match kind.into() {
        RecordKind::Object(kind) => match kind {
            K::LoadBalancer => LB_COLUMNS,
            K::Listener => LISTENER_COLUMNS,
            K::Pool => POOL_COLUMNS,
            K::Member => MEMBER_COLUMNS,
            K::HealthMonitor => HM_COLUMNS,
            K::L7Policy => L7POLICY_COLUMNS,
            K::L7Rule => L7RULE_COLUMNS,
            K::Amphora => AMPHORA_COLUMNS,
        },
        RecordKind::Quota => QUOTA_COLUMNS,
        RecordKind::Flavor => FLAVOR_COLUMNS,
        RecordKind::FlavorProfile => FLAVOR_PROFILE_COLUMNS,
        RecordKind::AvailabilityZone => AVAILABILITY_ZONE_COLUMNS,
        RecordKind::AvailabilityZoneProfile => AVAILABILITY_ZONE_PROFILE_COLUMNS,
    }
}

const fn t(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Text,
    }
}
const fn i(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Int,
    }
}
const fn b(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Bool,
    }
}
const fn ts(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Timestamp,
    }
}

const LB_COLUMNS: &[Column] = &[
    t("id"),
    t("project_id"),
    t("name"),
    t("description"),
    t("provisioning_status"),
    t("operating_status"),
    b("enabled"),
    t("topology"),
    t("provider"),
    t("flavor_id"),
    t("availability_zone"),
    t("vip_address"),
    t("vip_port_id"),
    t("vip_subnet_id"),
    t("vip_network_id"),
    t("vip_qos_policy_id"),
    ts("created_at"),
    ts("updated_at"),
];

const LISTENER_COLUMNS: &[Column] = &[
    t("id"),
    t("project_id"),
    t("load_balancer_id"),
    t("name"),
    t("description"),
    t("provisioning_status"),
    t("operating_status"),
    b("enabled"),
    t("protocol"),
    i("protocol_port"),
    i("connection_limit"),
    t("default_pool_id"),
    t("tls_certificate_id"),
    t("client_ca_tls_certificate_id"),
    t("client_authentication"),
    t("client_crl_container_id"),
    i("timeout_client_data"),
    i("timeout_member_connect"),
    i("timeout_member_data"),
    i("timeout_tcp_inspect"),
    t("tls_ciphers"),
    i("hsts_max_age"),
    b("hsts_include_subdomains"),
    b("hsts_preload"),
    ts("created_at"),
    ts("updated_at"),
];

const POOL_COLUMNS: &[Column] = &[
    t("id"),
    t("project_id"),
    t("load_balancer_id"),
    t("name"),
    t("description"),
    t("provisioning_status"),
    t("operating_status"),
    b("enabled"),
    t("protocol"),
    t("lb_algorithm"),
    b("tls_enabled"),
    t("tls_certificate_id"),
    t("ca_tls_certificate_id"),
    t("crl_container_id"),
    t("tls_ciphers"),
    ts("created_at"),
    ts("updated_at"),
];

const MEMBER_COLUMNS: &[Column] = &[
    t("id"),
    t("project_id"),
    t("pool_id"),
    t("name"),
    t("provisioning_status"),
    t("operating_status"),
    b("enabled"),
    t("ip_address"),
    i("protocol_port"),
    i("weight"),
    b("backup"),
    t("subnet_id"),
    t("monitor_address"),
    i("monitor_port"),
    t("vnic_type"),
    ts("created_at"),
    ts("updated_at"),
];

const HM_COLUMNS: &[Column] = &[
    t("id"),
    t("project_id"),
    t("pool_id"),
    t("name"),
    t("provisioning_status"),
    t("operating_status"),
    b("enabled"),
    t("type"),
    i("delay"),
    i("timeout"),
    i("fall_threshold"),
    i("rise_threshold"),
    t("http_method"),
    t("url_path"),
    t("expected_codes"),
    t("domain_name"),
    ts("created_at"),
    ts("updated_at"),
];

const L7POLICY_COLUMNS: &[Column] = &[
    t("id"),
    t("project_id"),
    t("listener_id"),
    t("name"),
    t("description"),
    t("provisioning_status"),
    t("operating_status"),
    b("enabled"),
    t("action"),
    i("position"),
    t("redirect_pool_id"),
    t("redirect_url"),
    t("redirect_prefix"),
    i("redirect_http_code"),
    ts("created_at"),
    ts("updated_at"),
];

const L7RULE_COLUMNS: &[Column] = &[
    t("id"),
    t("project_id"),
    t("l7policy_id"),
    t("provisioning_status"),
    t("operating_status"),
    b("enabled"),
    t("type"),
    t("compare_type"),
    t("key"),
    t("value"),
    b("invert"),
    ts("created_at"),
    ts("updated_at"),
];

const AMPHORA_COLUMNS: &[Column] = &[
    t("id"),
    t("load_balancer_id"),
    t("compute_id"),
    t("lb_network_ip"),
    t("vrrp_ip"),
    t("ha_ip"),
    t("vrrp_port_id"),
    t("ha_port_id"),
    ts("cert_expiration"),
    b("cert_busy"),
    t("role"),
    t("status"),
    t("vrrp_interface"),
    i("vrrp_id"),
    i("vrrp_priority"),
    t("cached_zone"),
    t("image_id"),
    t("compute_flavor"),
    ts("created_at"),
    ts("updated_at"),
];

/// The filterable/sortable columns of the quota list.
pub const QUOTA_COLUMNS: &[Column] = &[t("project_id")];

const FLAVOR_COLUMNS: &[Column] = &[
    t("id"),
    t("name"),
    t("description"),
    b("enabled"),
    t("flavor_profile_id"),
];

const FLAVOR_PROFILE_COLUMNS: &[Column] =
    &[t("id"), t("name"), t("provider_name"), t("flavor_data")];

const AVAILABILITY_ZONE_COLUMNS: &[Column] = &[
    t("name"),
    t("description"),
    b("enabled"),
    t("availability_zone_profile_id"),
];

const AVAILABILITY_ZONE_PROFILE_COLUMNS: &[Column] = &[
    t("id"),
    t("name"),
    t("provider_name"),
    t("availability_zone_data"),
];
