//! Pieces shared by every resource: id references, links, body decoding, the
//! settings validation depends on, and small field checks.

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::TypesError;

/// `{"id": "..."}` as used in `listeners[]`, `pools[]`, `members[]`, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRef {
    pub id: String,
}

impl IdRef {
    /// A reference to anything that displays as its id.
    pub fn of(id: impl std::fmt::Display) -> Self {
        Self { id: id.to_string() }
    }
}

/// A pagination link (`{"href": ..., "rel": "next"|"previous"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
    pub rel: String,
}

/// Deployment settings the request rules depend on (a subset of `[api_settings]`,
/// `[haproxy_amphora]` and `[networking]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationSettings {
    /// `[networking] reserved_ips`: member addresses that are refused.
    pub reserved_ips: Vec<IpAddr>,
    /// `[api_settings] allow_tls_terminated_listeners`.
    pub allow_tls_terminated_listeners: bool,
    /// `[api_settings] allow_ping_health_monitors`.
    pub allow_ping_health_monitors: bool,
    /// `[api_settings] allow_prometheus_listeners`.
    pub allow_prometheus_listeners: bool,
    /// `[api_settings] udp_connect_min_interval_health_monitor` (seconds).
    pub udp_connect_min_interval_health_monitor: i64,
    /// `[haproxy_amphora] timeout_client_data` (ms), the listener default.
    pub timeout_client_data: i32,
    /// `[haproxy_amphora] timeout_member_connect` (ms), the listener default.
    pub timeout_member_connect: i32,
    /// `[haproxy_amphora] timeout_member_data` (ms), the listener default.
    pub timeout_member_data: i32,
    /// `[haproxy_amphora] timeout_tcp_inspect` (ms), the listener default.
    pub timeout_tcp_inspect: i32,
}

impl Default for ValidationSettings {
    fn default() -> Self {
        Self {
            reserved_ips: vec![IpAddr::from([169, 254, 169, 254])],
            allow_tls_terminated_listeners: true,
            allow_ping_health_monitors: true,
            allow_prometheus_listeners: true,
            udp_connect_min_interval_health_monitor: 3,
            timeout_client_data: 50000,
            timeout_member_connect: 5000,
            timeout_member_data: 50000,
            timeout_tcp_inspect: 0,
        }
    }
}

/// Decode a JSON body into `T`, naming the offending field on failure
/// (`loadbalancer.vip_address`, `listener: unknown field ...`).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, TypesError> {
    match decode_strict::<T>(body) {
        Ok(v) => Ok(v),
        Err(first) => {
            // Octavia's WSME layer accepts numbers sent as JSON strings ("80"), and the
            // stock openstack client sends some that way: coerce exactly the fields the
            // typed decode rejects for that reason, then decode again.
            let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
                return Err(first.1);
            };
            let mut err = first;
            for _ in 0..64 {
                let Some(path) = err.0.as_deref() else {
                    return Err(err.1);
                };
                if !coerce_numeric_string(&mut value, path) {
                    return Err(err.1);
                }
                let text = serde_json::to_vec(&value)
                    .map_err(|e| TypesError::invalid("body", e.to_string()))?;
                match decode_strict::<T>(&text) {
                    Ok(v) => return Ok(v),
                    Err(e) => err = e,
                }
            }
            Err(err.1)
        }
    }
}

/// Decode; on failure also return the path of a string that was given where a number
/// was expected (a candidate for coercion).
fn decode_strict<T: DeserializeOwned>(body: &[u8]) -> Result<T, (Option<String>, TypesError)> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let syntax = matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        );
        let numeric_string = msg.starts_with("invalid type: string")
            && ["expected i", "expected u", "expected f"]
                .iter()
                .any(|x| msg.contains(x));
        let field = if syntax {
            "body".to_string()
        } else if path == "." || path.is_empty() {
            unknown_field_name(&msg).unwrap_or_else(|| "body".to_string())
        } else {
            path.clone()
        };
        (
            numeric_string.then_some(path),
            TypesError::invalid(field, strip_position(&msg)),
        )
    })?;
    de.end().map_err(|e| {
        (
            None,
            TypesError::invalid("body", strip_position(&e.to_string())),
        )
    })?;
    Ok(value)
}

/// Replace the string at `path` (`a.b[2].c`) by the number it spells; false if there is
/// no such string or it is not a number.
fn coerce_numeric_string(value: &mut serde_json::Value, path: &str) -> bool {
    let mut cur = value;
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            let Some(next) = cur.get_mut(key) else {
                return false;
            };
            cur = next;
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            let Ok(i) = idx.trim_end_matches(']').parse::<usize>() else {
                return false;
            };
            let Some(next) = cur.get_mut(i) else {
                return false;
            };
            cur = next;
        }
    }
    let Some(text) = cur.as_str() else {
        return false;
    };
    let number = if let Ok(i) = text.trim().parse::<i64>() {
        serde_json::Value::from(i)
    } else if let Ok(f) = text.trim().parse::<f64>() {
        match serde_json::Number::from_f64(f) {
            Some(n) => serde_json::Value::Number(n),
            None => return false,
        }
    } else {
        return false;
    };
    *cur = number;
    true
}

fn unknown_field_name(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// For `PUT` bodies: `Some(None)` when the key is present with `null`, `None` when absent.
pub fn nullable<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `admin_state_up` rule: absent → `default`, `null` → false, else the value.
pub fn admin_state(v: Option<Option<bool>>, default: bool) -> bool {
    match v {
        None => default,
        Some(None) => false,
        Some(Some(b)) => b,
    }
}

/// Length check on a string field (Octavia counts characters).
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), TypesError> {
    if value.chars().count() > max {
        return Err(TypesError::invalid(
            field,
            format!("Value should have a maximum character requirement of {max}"),
        ));
    }
    Ok(())
}

/// A field the body must give (Octavia's wording when it is absent or `null`).
pub fn mandatory<T>(field: &str, value: Option<T>) -> Result<T, TypesError> {
    value.ok_or_else(|| TypesError::invalid(field, "Value: 'None'. Mandatory field missing."))
}

/// Optional string length check.
pub fn check_opt_len(field: &str, value: Option<&str>, max: usize) -> Result<(), TypesError> {
    match value {
        Some(v) => check_len(field, v, max),
        None => Ok(()),
    }
}

/// Integer range check (inclusive).
pub fn check_range(field: &str, value: i64, min: i64, max: i64) -> Result<(), TypesError> {
    if value < min || value > max {
        return Err(TypesError::invalid(
            field,
            format!("Value {value} is out of range; it must be between {min} and {max}"),
        ));
    }
    Ok(())
}

/// Each tag at most 255 characters.
pub fn check_tags(tags: Option<&[String]>) -> Result<(), TypesError> {
    for t in tags.unwrap_or_default() {
        check_len("tags", t, 255)?;
    }
    Ok(())
}

/// The length rules of the fields most resources share: name and description at most 255
/// characters (`None`: absent, or a resource without the field), each tag at most 255.
pub fn check_names(
    name: Option<&str>,
    description: Option<&str>,
    tags: Option<&[String]>,
) -> Result<(), TypesError> {
    check_opt_len("name", name, 255)?;
    check_opt_len("description", description, 255)?;
    check_tags(tags)
}

/// The value of a nullable `PUT` field, borrowed: `None` when absent or `null`.
pub fn non_null<T: std::ops::Deref>(v: &Option<Option<T>>) -> Option<&T::Target> {
    v.as_ref()?.as_deref()
}

/// A list field that is given and not empty.
pub fn non_empty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

/// 501 for the first of `fields` that the body gives: `(field, given, message)`, in the
/// order they are checked.
pub fn refuse_not_implemented(fields: &[(&str, bool, &str)]) -> Result<(), TypesError> {
    match fields.iter().find(|(_, given, _)| *given) {
        Some((field, _, message)) => Err(TypesError::not_implemented(*field, *message)),
        None => Ok(()),
    }
}

/// A TLS certificate reference field, for [`refuse_not_implemented`].
pub fn tls_ref(field: &str, given: bool) -> (&str, bool, &'static str) {
    (
        field,
        given,
        "TLS certificate references are not implemented yet",
    )
}

/// `PUT`: a field the body gives replaces the stored value.
pub fn patch<T>(slot: &mut T, given: Option<T>) {
    if let Some(v) = given {
        *slot = v;
    }
}

/// `PUT` of a field whose `null` means its type's default (`false`, empty).
pub fn patch_or_default<T: Default>(slot: &mut T, given: Option<Option<T>>) {
    patch(slot, given.map(Option::unwrap_or_default));
}

/// Parse an IP address field.
pub fn parse_ip(field: &str, value: &str) -> Result<IpAddr, TypesError> {
    value
        .parse::<IpAddr>()
        .map_err(|_| TypesError::invalid(field, format!("'{value}' is not a valid IP address")))
}

/// Check an id-valued field holds a UUID.
pub fn check_uuid(field: &str, value: &str) -> Result<uuid::Uuid, TypesError> {
    uuid::Uuid::parse_str(value)
        .map_err(|_| TypesError::invalid(field, format!("'{value}' is not a valid UUID")))
}

/// The project an input names, from `project_id` or its alias `tenant_id`.
pub fn input_project(
    project_id: Option<&String>,
    tenant_id: Option<&String>,
) -> Result<Option<String>, TypesError> {
    let p = match (project_id, tenant_id) {
        (Some(p), Some(t)) if p != t => {
            return Err(TypesError::invalid(
                "project_id",
                "project_id and tenant_id do not match",
            ))
        }
        (Some(p), _) => Some(p.clone()),
        (None, t) => t.cloned(),
    };
    if let Some(p) = &p {
        check_len("project_id", p, 36)?;
    }
    Ok(p)
}

/// Name/description as emitted: NULL → `""`.
pub fn or_empty(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// Octavia's datetime rendering (`2024-01-02T03:04:05`).
pub fn fmt_time(t: &octavia_model::Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Optional datetime rendering.
pub fn fmt_opt_time(t: &Option<octavia_model::Timestamp>) -> Option<String> {
    t.as_ref().map(fmt_time)
}

/// Test helper: `base` (`{"env":{...}}`) with the keys of `extra` (`,"k":v,...`)
/// set inside its single envelope object.
#[cfg(test)]
pub(crate) fn merged(base: &str, extra: &str) -> String {
    let mut b: serde_json::Value = serde_json::from_str(base).expect("test base is JSON");
    let extra = extra.strip_prefix(',').unwrap_or(extra);
    let e: serde_json::Value =
        serde_json::from_str(&format!("{{{extra}}}")).expect("test extra is JSON");
    if let (Some(obj), Some(add)) = (b.as_object_mut(), e.as_object()) {
        if let Some(inner) = obj.values_mut().next().and_then(|v| v.as_object_mut()) {
            for (k, v) in add {
                inner.insert(k.clone(), v.clone());
            }
        }
    }
    b.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        port: Option<i64>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        thing: Inner,
    }

    #[derive(Debug, Deserialize)]
    struct Many {
        items: Vec<Item>,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    struct Item {
        weight: i64,
        version: Option<f64>,
    }

    #[test]
    fn numbers_sent_as_strings_are_accepted_like_wsme() {
        let m: Many =
            decode_body(br#"{"items":[{"weight":"5"},{"weight":7,"version":"1.1"}]}"#).unwrap();
        assert_eq!(
            m.items[0],
            Item {
                weight: 5,
                version: None
            }
        );
        assert_eq!(
            m.items[1],
            Item {
                weight: 7,
                version: Some(1.1)
            }
        );
        let err = decode_body::<Many>(br#"{"items":[{"weight":"heavy"}]}"#).unwrap_err();
        assert!(err.to_string().contains("items[0].weight"), "{err}");
    }

    #[test]
    fn decode_errors_name_the_field() {
        let cases: &[(&str, &str)] = &[
            (r#"{"thing":{"port":"x"}}"#, "thing.port"),
            (r#"{"thing":{"bogus":1}}"#, "thing.bogus"),
            (r#"{"other":{}}"#, "other"),
            (r#"{"thing":"#, "body"),
            (r#"{"thing":{}} trailing"#, "body"),
        ];
        for (body, field) in cases {
            let err = decode_body::<Outer>(body.as_bytes()).unwrap_err();
            assert_eq!(err.field(), *field, "{body}: {err}");
        }
        assert!(decode_body::<Outer>(br#"{"thing":{"port":3}}"#).is_ok());
    }

    #[test]
    fn admin_state_null_is_false() {
        assert!(admin_state(None, true));
        assert!(!admin_state(Some(None), true));
        assert!(admin_state(Some(Some(true)), false));
    }

    #[test]
    fn put_patches_and_first_refusal() {
        let mut n = 1;
        patch(&mut n, None);
        assert_eq!(n, 1);
        patch(&mut n, Some(2));
        assert_eq!(n, 2);
        let mut tags = vec!["a".to_string()];
        patch_or_default(&mut tags, None);
        assert_eq!(tags.len(), 1);
        patch_or_default(&mut tags, Some(None));
        assert!(tags.is_empty());
        assert_eq!(non_null(&Some(Some("x".to_string()))), Some("x"));
        assert_eq!(non_null::<String>(&Some(None)), None);
        let refused =
            refuse_not_implemented(&[("a", false, "m"), ("b", true, "n"), ("c", true, "o")]);
        assert_eq!(refused, Err(TypesError::not_implemented("b", "n")));
        assert_eq!(refuse_not_implemented(&[("a", false, "m")]), Ok(()));
    }

    #[test]
    fn project_alias_and_mismatch() {
        let a = "a".to_string();
        let b = "b".to_string();
        assert_eq!(input_project(None, Some(&a)).unwrap(), Some(a.clone()));
        assert!(input_project(Some(&a), Some(&b)).is_err());
        let long = "x".repeat(37);
        assert!(input_project(Some(&long), None).is_err());
    }
}
