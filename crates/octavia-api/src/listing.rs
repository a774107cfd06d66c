//! Collection listing: query parameters → [`ListQuery`], field selection, and the
//! `*_links` pagination links (reference §1.4).

use octavia_db::{
    columns, ColumnType, Filter, FilterValue, ListQuery, RecordKind, SortDir, TagFilter,
};
use octavia_model::ObjectKind;
use serde_json::Value;

use crate::error::ApiError;
use crate::settings::ApiSettings;

/// API attribute name → database column, per kind (names not listed map to themselves).
fn db_name(kind: RecordKind, api: &str) -> String {
    let common = match api {
        "admin_state_up" => Some("enabled"),
        "loadbalancer_id" => Some("load_balancer_id"),
        "tenant_id" => Some("project_id"),
        _ => None,
    };
    let RecordKind::Object(kind) = kind else {
        // The catalogue's wire names are its column names.
        return api.to_string();
    };
    let specific = match (kind, api) {
        (ObjectKind::Member, "address") => Some("ip_address"),
        (ObjectKind::HealthMonitor, "max_retries") => Some("rise_threshold"),
        (ObjectKind::HealthMonitor, "max_retries_down") => Some("fall_threshold"),
        (ObjectKind::Listener, "default_tls_container_ref") => Some("tls_certificate_id"),
        (ObjectKind::Listener, "client_ca_tls_container_ref") => {
            Some("client_ca_tls_certificate_id")
        }
        (ObjectKind::Listener, "client_crl_container_ref") => Some("client_crl_container_id"),
        (ObjectKind::Pool, "tls_container_ref") => Some("tls_certificate_id"),
        (ObjectKind::Pool, "ca_tls_container_ref") => Some("ca_tls_certificate_id"),
        (ObjectKind::Pool, "crl_container_ref") => Some("crl_container_id"),
        _ => None,
    };
    specific.or(common).unwrap_or(api).to_string()
}

fn column_type(kind: RecordKind, column: &str) -> Option<ColumnType> {
    columns(kind)
        .iter()
        .find(|c| c.name == column)
        .map(|c| c.ty)
}

fn invalid_args(key: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "One or more arguments are either duplicate or invalid: '{key}'"
    ))
}

fn parse_value(key: &str, ty: ColumnType, raw: &str) -> Result<FilterValue, ApiError> {
    match ty {
        ColumnType::Text | ColumnType::Timestamp => Ok(FilterValue::Text(raw.to_string())),
        ColumnType::Int => raw.parse().map(FilterValue::Int).map_err(|_| {
            ApiError::BadRequest(format!(
                "Invalid input for field/attribute {key}. '{raw}' is not an integer"
            ))
        }),
        ColumnType::Bool => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(FilterValue::Bool(true)),
            "false" | "0" | "no" | "off" | "f" | "n" => Ok(FilterValue::Bool(false)),
            _ => Err(ApiError::BadRequest(format!(
                "Invalid input for field/attribute {key}. '{raw}' is not a boolean"
            ))),
        },
    }
}

fn split_list(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// A parsed list request.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// What to ask the store.
    pub query: ListQuery,
    /// `fields=` selection (empty = all).
    pub fields: Vec<String>,
    /// Raw `sort`/`sort_key`/`sort_dir` pairs, repeated in links.
    sort_params: Vec<(String, String)>,
}

/// Parse the query string of a list request on `kind` (`project_id` as asked: the handler narrows it).
pub fn parse(
    kind: ObjectKind,
    raw_query: Option<&str>,
    settings: &ApiSettings,
) -> Result<ListRequest, ApiError> {
    let (mut req, project) = parse_query(kind.into(), raw_query, settings)?;
    // The project asked for; the handler narrows it to what the policy allows.
    req.query.project_id = project;
    Ok(req)
}

/// Parse the query string of a list request on a kind that belongs to no project (the
/// operator's catalogue): every caller the policy lets list sees every record, and
/// `project_id` is not a filter there.
pub fn parse_unscoped(
    kind: RecordKind,
    raw_query: Option<&str>,
    settings: &ApiSettings,
) -> Result<ListRequest, ApiError> {
    let (req, project) = parse_query(kind, raw_query, settings)?;
    if project.is_some() {
        return Err(invalid_args("project_id"));
    }
    Ok(req)
}

/// The request without its project scope, and the project the query names.
fn parse_query(
    kind: RecordKind,
    raw_query: Option<&str>,
    settings: &ApiSettings,
) -> Result<(ListRequest, Option<String>), ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query.unwrap_or(""))
        .map_err(|_| ApiError::BadRequest("Malformed query string".to_string()))?;
    let mut req = ListRequest::default();
    let mut limit: Option<String> = None;
    let mut sort: Vec<(String, SortDir)> = vec![];
    let mut sort_keys: Vec<String> = vec![];
    let mut sort_dirs: Vec<String> = vec![];
    let mut tags = TagFilter::default();
    let mut project: Option<String> = None;
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => limit = Some(value),
            "marker" => req.query.marker = Some(value),
            "page_reverse" => req.query.page_reverse = value.eq_ignore_ascii_case("true"),
            "fields" => req.fields.extend(split_list(&value)),
            "sort" => {
                req.sort_params.push((key.clone(), value.clone()));
                for item in split_list(&value) {
                    let (k, d) = item.split_once(':').unwrap_or((&item, "asc"));
                    sort.push((k.to_string(), parse_dir(d)?));
                }
            }
            "sort_key" => {
                req.sort_params.push((key.clone(), value.clone()));
                sort_keys.extend(split_list(&value));
            }
            "sort_dir" => {
                req.sort_params.push((key.clone(), value.clone()));
                sort_dirs.extend(split_list(&value));
            }
            "tags" => tags.all.extend(split_list(&value)),
            "tags-any" => tags.any.extend(split_list(&value)),
            "not-tags" => tags.not_all.extend(split_list(&value)),
            "not-tags-any" => tags.not_any.extend(split_list(&value)),
            "project_id" | "tenant_id" => project = Some(value),
            _ => {
                let column = db_name(kind, &key);
                let ty = column_type(kind, &column).ok_or_else(|| invalid_args(&key))?;
                let v = parse_value(&key, ty, &value)?;
                if req.query.filters.iter().any(|f| f.column == column) {
                    return Err(invalid_args(&key));
                }
                req.query.filters.push(Filter { column, value: v });
            }
        }
    }
    for (i, k) in sort_keys.iter().enumerate() {
        let d = match sort_dirs.get(i).or(sort_dirs.last()) {
            Some(d) => parse_dir(d)?,
            None => SortDir::Asc,
        };
        sort.push((k.clone(), d));
    }
    for (k, _) in sort.iter_mut() {
        let column = db_name(kind, k);
        if column_type(kind, &column).is_none() {
            return Err(ApiError::BadRequest(format!("Invalid sort key: {k}")));
        }
        *k = column;
    }
    if settings.allow_sorting {
        req.query.sort = sort;
    }
    if !settings.allow_filtering {
        req.query.filters.clear();
    } else {
        req.query.tags = tags;
    }
    if !settings.allow_field_selection {
        req.fields.clear();
    }
    let max = settings.pagination_max_limit;
    req.query.limit = match limit.as_deref() {
        _ if !settings.allow_pagination => None,
        None => Some(max),
        Some("infinite") | Some("Infinite") => None,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n < 1 => None,
            Ok(n) => Some(n.min(max as i64) as u32),
            Err(_) => {
                return Err(ApiError::BadRequest(format!(
                    "Supplied pagination limit {l} is not valid"
                )))
            }
        },
    };
    if !settings.allow_pagination {
        req.query.marker = None;
        req.query.page_reverse = false;
    }
    Ok((req, project))
}

fn parse_dir(d: &str) -> Result<SortDir, ApiError> {
    match d.to_ascii_lowercase().as_str() {
        "asc" => Ok(SortDir::Asc),
        "desc" => Ok(SortDir::Desc),
        _ => Err(ApiError::BadRequest(format!("Invalid sort direction: {d}"))),
    }
}

/// Keep only the selected fields of `obj` (all when `fields` is empty).
pub fn select_fields(mut obj: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return obj;
    }
    if let Value::Object(map) = &mut obj {
        map.retain(|k, _| fields.iter().any(|f| f == k));
    }
    obj
}

/// The `next`/`previous` links of one page. `base` is the collection URL without query.
pub fn links(req: &ListRequest, base: &str, ids: &[String]) -> Vec<Value> {
    let mut out = vec![];
    let mk = |marker: &str, reverse: bool| {
        let mut q: Vec<(String, String)> = vec![];
        if let Some(l) = req.query.limit {
            q.push(("limit".into(), l.to_string()));
        }
        q.extend(req.sort_params.iter().cloned());
        q.push(("marker".into(), marker.to_string()));
        if reverse {
            q.push(("page_reverse".into(), "True".into()));
        }
        let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
        format!("{base}?{qs}")
    };
    if let (Some(limit), Some(last)) = (req.query.limit, ids.last()) {
        if ids.len() as u32 >= limit {
            out.push(serde_json::json!({"href": mk(last, false), "rel": "next"}));
        }
    }
    if req.query.marker.is_some() {
        if let Some(first) = ids.first() {
            out.push(serde_json::json!({"href": mk(first, true), "rel": "previous"}));
        }
    }
    out
}
