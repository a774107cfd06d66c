//! L7 rule request and response bodies (envelope `rule`/`rules`) and the rule rules.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use octavia_model::{
    L7PolicyId, L7Rule, L7RuleCompareType, L7RuleId, L7RuleType, OperatingStatus,
    ProvisioningStatus,
};

use crate::common::{
    admin_state, check_len, check_tags, fmt_opt_time, fmt_time, input_project, nullable, patch,
    patch_or_default,
};
use crate::TypesError;

fn token_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$").expect("static regex"))
}

fn dn_field_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-zA-Z][A-Za-z0-9-]*$").expect("static regex"))
}

/// Per-type rules on the merged rule (type, compare type, key, value).
pub fn check_rule(
    t: L7RuleType,
    c: L7RuleCompareType,
    key: Option<&str>,
    value: &str,
) -> Result<(), TypesError> {
    use L7RuleCompareType as C;
    use L7RuleType as T;
    check_len("value", value, 255)?;
    if value.is_empty() || value.contains('\r') || value.contains('\n') {
        return Err(TypesError::invalid(
            "value",
            "value must not be empty nor contain CR or LF",
        ));
    }
    if let Some(k) = key {
        check_len("key", k, 255)?;
    }
    if c == C::Regex && Regex::new(value).is_err() {
        return Err(TypesError::invalid(
            "value",
            format!("'{value}' is not a valid regular expression"),
        ));
    }
    match t {
        T::HostName | T::Path | T::FileType => {
            if key.is_some() {
                return Err(TypesError::invalid(
                    "key",
                    format!("key is not allowed for {t} rules"),
                ));
            }
            if t == T::FileType && !matches!(c, C::Regex | C::EqualTo) {
                return Err(TypesError::invalid(
                    "compare_type",
                    "FILE_TYPE rules only allow REGEX or EQUAL_TO",
                ));
            }
            if c != C::Regex && value.chars().any(char::is_whitespace) {
                return Err(TypesError::invalid(
                    "value",
                    format!("{t} values must not contain whitespace"),
                ));
            }
        }
        T::Header | T::Cookie => {
            let Some(k) = key else {
                return Err(TypesError::invalid(
                    "key",
                    format!("key is required for {t} rules"),
                ));
            };
            if !token_re().is_match(k) {
                return Err(TypesError::invalid(
                    "key",
                    format!("'{k}' is not a valid {t} name"),
                ));
            }
            if t == T::Cookie
                && c != C::Regex
                && value
                    .chars()
                    .any(|ch| ch.is_whitespace() || ch.is_control() || ",;\\\"".contains(ch))
            {
                return Err(TypesError::invalid(
                    "value",
                    "cookie values must not contain whitespace, ',', ';', '\\' or '\"'",
                ));
            }
        }
        T::SslConnHasCert | T::SslVerifyResult => {
            if key.is_some() {
                return Err(TypesError::invalid(
                    "key",
                    format!("key is not allowed for {t} rules"),
                ));
            }
            if c != C::EqualTo {
                return Err(TypesError::invalid(
                    "compare_type",
                    format!("{t} rules only allow EQUAL_TO"),
                ));
            }
            let ok = if t == T::SslConnHasCert {
                value == "true"
            } else {
                value.parse::<u64>().is_ok()
            };
            if !ok {
                return Err(TypesError::invalid(
                    "value",
                    if t == T::SslConnHasCert {
                        "SSL_CONN_HAS_CERT rules only accept the value 'true'"
                    } else {
                        "SSL_VERIFY_RESULT values must be a non-negative integer"
                    },
                ));
            }
        }
        T::SslDnField => {
            let Some(k) = key else {
                return Err(TypesError::invalid(
                    "key",
                    "key is required for SSL_DN_FIELD rules",
                ));
            };
            if !dn_field_re().is_match(k) {
                return Err(TypesError::invalid(
                    "key",
                    format!("'{k}' is not a valid distinguished name field"),
                ));
            }
        }
    }
    Ok(())
}

/// `{"rule": {...}}` on POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L7RulePostBody {
    pub rule: L7RulePost,
}

/// Body of `POST /v2/lbaas/l7policies/{id}/rules`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L7RulePost {
    #[serde(rename = "type")]
    pub rule_type: L7RuleType,
    pub compare_type: L7RuleCompareType,
    pub value: String,
    pub key: Option<String>,
    pub invert: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub tags: Option<Vec<String>>,
    pub project_id: Option<String>,
    pub tenant_id: Option<String>,
}

impl L7RulePost {
    /// Apply the field rules; returns the project named in the body, if any.
    pub fn validate(&self) -> Result<Option<String>, TypesError> {
        check_rule(
            self.rule_type,
            self.compare_type,
            self.key.as_deref(),
            &self.value,
        )?;
        check_tags(self.tags.as_deref())?;
        input_project(self.project_id.as_ref(), self.tenant_id.as_ref())
    }

    /// The new object (PENDING_CREATE / OFFLINE).
    pub fn into_model(self, project_id: String, l7policy_id: L7PolicyId) -> L7Rule {
        L7Rule {
            id: L7RuleId::new(),
            project_id,
            l7policy_id,
            provisioning_status: ProvisioningStatus::PendingCreate,
            operating_status: OperatingStatus::Offline,
            enabled: admin_state(self.admin_state_up, true),
            rule_type: self.rule_type,
            compare_type: self.compare_type,
            key: self.key,
            value: self.value,
            invert: self.invert.unwrap_or(false),
            tags: self.tags.unwrap_or_default(),
            created_at: octavia_model::now(),
            updated_at: None,
        }
    }
}

/// `{"rule": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L7RulePutBody {
    pub rule: L7RulePut,
}

/// Body of `PUT /v2/lbaas/l7policies/{id}/rules/{rule_id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L7RulePut {
    #[serde(rename = "type")]
    pub rule_type: Option<L7RuleType>,
    pub compare_type: Option<L7RuleCompareType>,
    pub value: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub key: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub invert: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub tags: Option<Vec<String>>,
}

impl L7RulePut {
    /// Patch a copy of `current` and check the merged rule; returns the new value.
    pub fn apply_checked(self, current: &L7Rule) -> Result<L7Rule, TypesError> {
        check_tags(self.tags.as_deref())?;
        let mut r = current.clone();
        patch(&mut r.rule_type, self.rule_type);
        patch(&mut r.compare_type, self.compare_type);
        patch(&mut r.value, self.value);
        patch(&mut r.key, self.key);
        patch_or_default(&mut r.invert, self.invert);
        patch_or_default(&mut r.enabled, self.admin_state_up);
        patch(&mut r.tags, self.tags);
        check_rule(r.rule_type, r.compare_type, r.key.as_deref(), &r.value)?;
        Ok(r)
    }
}

/// An L7 rule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L7RuleResponse {
    pub id: String,
    #[serde(rename = "type")]
    pub rule_type: L7RuleType,
    pub compare_type: L7RuleCompareType,
    pub key: Option<String>,
    pub value: String,
    pub invert: bool,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub project_id: String,
    pub tenant_id: String,
    pub admin_state_up: bool,
    pub tags: Vec<String>,
}

impl From<&L7Rule> for L7RuleResponse {
    fn from(r: &L7Rule) -> Self {
        Self {
            id: r.id.to_string(),
            rule_type: r.rule_type,
            compare_type: r.compare_type,
            key: r.key.clone(),
            value: r.value.clone(),
            invert: r.invert,
            provisioning_status: r.provisioning_status,
            operating_status: r.operating_status,
            created_at: fmt_time(&r.created_at),
            updated_at: fmt_opt_time(&r.updated_at),
            project_id: r.project_id.clone(),
            tenant_id: r.project_id.clone(),
            admin_state_up: r.enabled,
            tags: r.tags.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_body;

    fn post(body: &str) -> Result<Option<String>, TypesError> {
        let json = format!(r#"{{"rule":{{{body}}}}}"#);
        decode_body::<L7RulePostBody>(json.as_bytes())?
            .rule
            .validate()
    }

    #[test]
    fn per_type_rules_table() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#""type":"PATH","compare_type":"STARTS_WITH","value":"/api""#,
                None,
            ),
            (
                r#""type":"PATHS","compare_type":"STARTS_WITH","value":"/api""#,
                Some("rule.type"),
            ),
            (
                r#""type":"PATH","compare_type":"LIKE","value":"/api""#,
                Some("rule.compare_type"),
            ),
            (
                r#""type":"PATH","compare_type":"STARTS_WITH""#,
                Some("rule"),
            ),
            (
                r#""type":"PATH","compare_type":"STARTS_WITH","value":"/a","key":"k""#,
                Some("key"),
            ),
            (
                r#""type":"PATH","compare_type":"REGEX","value":"(""#,
                Some("value"),
            ),
            (
                r#""type":"HOST_NAME","compare_type":"EQUAL_TO","value":"a\nb""#,
                Some("value"),
            ),
            (
                r#""type":"FILE_TYPE","compare_type":"CONTAINS","value":"jpg""#,
                Some("compare_type"),
            ),
            (
                r#""type":"FILE_TYPE","compare_type":"EQUAL_TO","value":"jpg""#,
                None,
            ),
            (
                r#""type":"HEADER","compare_type":"EQUAL_TO","value":"x""#,
                Some("key"),
            ),
            (
                r#""type":"HEADER","compare_type":"EQUAL_TO","value":"x","key":"X Bad""#,
                Some("key"),
            ),
            (
                r#""type":"HEADER","compare_type":"EQUAL_TO","value":"x","key":"X-Good""#,
                None,
            ),
            (
                r#""type":"COOKIE","compare_type":"EQUAL_TO","value":"a;b","key":"sid""#,
                Some("value"),
            ),
            (
                r#""type":"SSL_CONN_HAS_CERT","compare_type":"EQUAL_TO","value":"true""#,
                None,
            ),
            (
                r#""type":"SSL_CONN_HAS_CERT","compare_type":"EQUAL_TO","value":"false""#,
                Some("value"),
            ),
            (
                r#""type":"SSL_CONN_HAS_CERT","compare_type":"REGEX","value":"true""#,
                Some("compare_type"),
            ),
            (
                r#""type":"SSL_VERIFY_RESULT","compare_type":"EQUAL_TO","value":"-1""#,
                Some("value"),
            ),
            (
                r#""type":"SSL_VERIFY_RESULT","compare_type":"EQUAL_TO","value":"0""#,
                None,
            ),
            (
                r#""type":"SSL_DN_FIELD","compare_type":"EQUAL_TO","value":"x","key":"9CN""#,
                Some("key"),
            ),
            (
                r#""type":"SSL_DN_FIELD","compare_type":"EQUAL_TO","value":"x","key":"CN""#,
                None,
            ),
        ];
        for (body, field) in cases {
            match (post(body), field) {
                (Ok(_), None) => {}
                (Err(e), Some(f)) => assert_eq!(e.field(), *f, "{body}: {e}"),
                (r, f) => panic!("{body}: got {r:?}, expected error on {f:?}"),
            }
        }
    }

    #[test]
    fn put_checks_merged_rule() {
        let b: L7RulePostBody = decode_body(
            br#"{"rule":{"type":"HEADER","compare_type":"EQUAL_TO","value":"x","key":"X-A"}}"#,
        )
        .unwrap();
        let r = b.rule.into_model("p".into(), L7PolicyId::new());
        let put: L7RulePutBody = decode_body(br#"{"rule":{"key":null}}"#).unwrap();
        assert_eq!(put.rule.apply_checked(&r).unwrap_err().field(), "key");
        let put: L7RulePutBody =
            decode_body(br#"{"rule":{"type":"PATH","key":null,"value":"/x"}}"#).unwrap();
        let new = put.rule.apply_checked(&r).unwrap();
        assert_eq!(new.rule_type, L7RuleType::Path);
        assert_eq!(L7RuleResponse::from(&new).tenant_id, "p");
    }
}
