//! L7 policy request and response bodies and the policy rules.

use serde::{Deserialize, Serialize};

use octavia_model::{
    L7Policy, L7PolicyAction, L7PolicyId, ListenerId, OperatingStatus, ProvisioningStatus,
};

use crate::common::{
    admin_state, check_len, check_names, check_range, check_uuid, fmt_opt_time, fmt_time,
    input_project, non_empty, non_null, nullable, or_empty, patch, patch_or_default,
    refuse_not_implemented,
};
use crate::{IdRef, TypesError};

/// Redirect codes Octavia accepts.
pub const REDIRECT_CODES: &[i64] = &[301, 302, 303, 307, 308];

fn check_url(field: &str, url: &str) -> Result<(), TypesError> {
    check_len(field, url, 255)?;
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty())
        && !url.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(TypesError::invalid(
            field,
            format!("'{url}' is not an http or https URL"),
        ))
    }
}

/// Check the merged policy's action against its redirect fields; clears the fields
/// the action does not use and fills the default redirect code.
pub fn normalize(p: &mut L7Policy) -> Result<(), TypesError> {
    use L7PolicyAction as A;
    let need = |field: &str, set: bool| {
        if set {
            Ok(())
        } else {
            Err(TypesError::invalid(
                field,
                format!("{field} is required for action {}", p.action),
            ))
        }
    };
    match p.action {
        A::Reject => {}
        A::RedirectToUrl => need("redirect_url", p.redirect_url.is_some())?,
        A::RedirectPrefix => need("redirect_prefix", p.redirect_prefix.is_some())?,
        A::RedirectToPool => need("redirect_pool_id", p.redirect_pool_id.is_some())?,
    }
    if !matches!(p.action, A::RedirectToUrl) {
        p.redirect_url = None;
    }
    if !matches!(p.action, A::RedirectPrefix) {
        p.redirect_prefix = None;
    }
    if !matches!(p.action, A::RedirectToPool) {
        p.redirect_pool_id = None;
    }
    if matches!(p.action, A::RedirectToUrl | A::RedirectPrefix) {
        p.redirect_http_code.get_or_insert(302);
    } else {
        p.redirect_http_code = None;
    }
    Ok(())
}

/// The redirect fields one request gives: each well formed, and none contradicting the others
/// or the action.
fn check_redirect(
    action: L7PolicyAction,
    url: Option<&str>,
    prefix: Option<&str>,
    pool: Option<&str>,
    code: Option<i64>,
) -> Result<(), TypesError> {
    if let Some(u) = url {
        check_url("redirect_url", u)?;
    }
    if let Some(u) = prefix {
        check_url("redirect_prefix", u)?;
    }
    if let Some(p) = pool {
        check_uuid("redirect_pool_id", p)?;
    }
    use L7PolicyAction as A;
    let given = [
        ("redirect_url", url.is_some()),
        ("redirect_prefix", prefix.is_some()),
        ("redirect_pool_id", pool.is_some()),
    ];
    if given.iter().filter(|(_, g)| *g).count() > 1 {
        return Err(TypesError::invalid(
            "redirect_pool_id",
            "only one of redirect_pool_id, redirect_url and redirect_prefix may be given",
        ));
    }
    let allowed = match action {
        A::Reject => None,
        A::RedirectToUrl => Some("redirect_url"),
        A::RedirectPrefix => Some("redirect_prefix"),
        A::RedirectToPool => Some("redirect_pool_id"),
    };
    let wrong = given
        .into_iter()
        .find(|(field, g)| *g && Some(*field) != allowed);
    if let Some((field, _)) = wrong {
        return Err(TypesError::invalid(
            field,
            format!("{field} is not allowed for action {action}"),
        ));
    }
    if let Some(c) = code {
        if !REDIRECT_CODES.contains(&c) {
            return Err(TypesError::invalid(
                "redirect_http_code",
                format!("{c} is not one of {REDIRECT_CODES:?}"),
            ));
        }
        if !matches!(action, A::RedirectToUrl | A::RedirectPrefix) {
            return Err(TypesError::invalid(
                "redirect_http_code",
                format!("redirect_http_code is not allowed for action {action}"),
            ));
        }
    }
    Ok(())
}

/// `{"l7policy": {...}}` on POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L7PolicyPostBody {
    pub l7policy: L7PolicyPost,
}

/// Body of `POST /v2/lbaas/l7policies`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L7PolicyPost {
    pub listener_id: String,
    pub action: L7PolicyAction,
    pub position: Option<i64>,
    pub redirect_http_code: Option<i64>,
    pub redirect_url: Option<String>,
    pub redirect_prefix: Option<String>,
    pub redirect_pool_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub rules: Option<Vec<serde_json::Value>>,
    pub tags: Option<Vec<String>>,
    pub project_id: Option<String>,
    pub tenant_id: Option<String>,
}

impl L7PolicyPost {
    /// Apply the field rules; returns the project named in the body, if any.
    pub fn validate(&self) -> Result<Option<String>, TypesError> {
        check_uuid("listener_id", &self.listener_id)?;
        if let Some(p) = self.position {
            check_range("position", p, 1, i32::MAX as i64)?;
        }
        check_redirect(
            self.action,
            self.redirect_url.as_deref(),
            self.redirect_prefix.as_deref(),
            self.redirect_pool_id.as_deref(),
            self.redirect_http_code,
        )?;
        check_names(
            self.name.as_deref(),
            self.description.as_deref(),
            self.tags.as_deref(),
        )?;
        refuse_not_implemented(&[(
            "rules",
            non_empty(&self.rules),
            "inline L7 rule creation is not implemented yet",
        )])?;
        input_project(self.project_id.as_ref(), self.tenant_id.as_ref())
    }

    /// The new object (PENDING_CREATE / OFFLINE). Position 0 = append.
    pub fn into_model(
        self,
        project_id: String,
        listener_id: ListenerId,
    ) -> Result<L7Policy, TypesError> {
        let mut p = L7Policy {
            id: L7PolicyId::new(),
            project_id,
            listener_id,
            name: self.name,
            description: self.description,
            provisioning_status: ProvisioningStatus::PendingCreate,
            operating_status: OperatingStatus::Offline,
            enabled: admin_state(self.admin_state_up, true),
            action: self.action,
            position: self.position.map(|p| p as i32).unwrap_or(0),
            redirect_pool_id: self.redirect_pool_id.and_then(|p| p.parse().ok()),
            redirect_url: self.redirect_url,
            redirect_prefix: self.redirect_prefix,
            redirect_http_code: self.redirect_http_code.map(|c| c as i32),
            tags: self.tags.unwrap_or_default(),
            rule_ids: vec![],
            created_at: octavia_model::now(),
            updated_at: None,
        };
        normalize(&mut p)?;
        Ok(p)
    }
}

/// `{"l7policy": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L7PolicyPutBody {
    pub l7policy: L7PolicyPut,
}

/// Body of `PUT /v2/lbaas/l7policies/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L7PolicyPut {
    pub action: Option<L7PolicyAction>,
    pub position: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    pub redirect_http_code: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub redirect_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub redirect_prefix: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub redirect_pool_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub admin_state_up: Option<Option<bool>>,
    pub tags: Option<Vec<String>>,
}

impl L7PolicyPut {
    /// Check the fields, then patch a copy of `current`; returns the new value.
    pub fn apply_checked(self, current: &L7Policy) -> Result<L7Policy, TypesError> {
        if let Some(p) = self.position {
            check_range("position", p, 1, i32::MAX as i64)?;
        }
        let action = self.action.unwrap_or(current.action);
        check_redirect(
            action,
            non_null(&self.redirect_url),
            non_null(&self.redirect_prefix),
            non_null(&self.redirect_pool_id),
            self.redirect_http_code.flatten(),
        )?;
        check_names(
            non_null(&self.name),
            non_null(&self.description),
            self.tags.as_deref(),
        )?;
        let mut p = current.clone();
        p.action = action;
        patch(&mut p.position, self.position.map(|v| v as i32));
        patch(
            &mut p.redirect_http_code,
            self.redirect_http_code.map(|v| v.map(|c| c as i32)),
        );
        patch(&mut p.redirect_url, self.redirect_url);
        patch(&mut p.redirect_prefix, self.redirect_prefix);
        patch(
            &mut p.redirect_pool_id,
            self.redirect_pool_id
                .map(|v| v.and_then(|p| p.parse().ok())),
        );
        patch(&mut p.name, self.name);
        patch(&mut p.description, self.description);
        patch_or_default(&mut p.enabled, self.admin_state_up);
        patch(&mut p.tags, self.tags);
        normalize(&mut p)?;
        Ok(p)
    }
}

/// An L7 policy as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L7PolicyResponse {
    pub id: String,
    pub name: String,
    pub description: String,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub admin_state_up: bool,
    pub project_id: String,
    pub tenant_id: String,
    pub action: L7PolicyAction,
    pub listener_id: String,
    pub redirect_pool_id: Option<String>,
    pub redirect_url: Option<String>,
    pub redirect_prefix: Option<String>,
    pub position: i32,
    pub rules: Vec<IdRef>,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub tags: Vec<String>,
    pub redirect_http_code: Option<i32>,
}

impl From<&L7Policy> for L7PolicyResponse {
    fn from(p: &L7Policy) -> Self {
        Self {
            id: p.id.to_string(),
            name: or_empty(&p.name),
            description: or_empty(&p.description),
            provisioning_status: p.provisioning_status,
            operating_status: p.operating_status,
            admin_state_up: p.enabled,
            project_id: p.project_id.clone(),
            tenant_id: p.project_id.clone(),
            action: p.action,
            listener_id: p.listener_id.to_string(),
            redirect_pool_id: p.redirect_pool_id.map(|i| i.to_string()),
            redirect_url: p.redirect_url.clone(),
            redirect_prefix: p.redirect_prefix.clone(),
            position: p.position,
            rules: p.rule_ids.iter().map(IdRef::of).collect(),
            created_at: fmt_time(&p.created_at),
            updated_at: fmt_opt_time(&p.updated_at),
            tags: p.tags.clone(),
            redirect_http_code: p.redirect_http_code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_body;

    const L: &str = "11111111-1111-1111-1111-111111111111";
    const P: &str = "22222222-2222-2222-2222-222222222222";

    fn post(extra: &str) -> Result<L7Policy, TypesError> {
        let json =
            crate::common::merged(&format!(r#"{{"l7policy":{{"listener_id":"{L}"}}}}"#), extra);
        let b = decode_body::<L7PolicyPostBody>(json.as_bytes())?.l7policy;
        b.validate()?;
        b.into_model("p".into(), L.parse().unwrap())
    }

    #[test]
    fn post_rules_table() {
        let cases: Vec<(String, Option<&str>)> = vec![
            (r#","action":"REJECT""#.into(), None),
            (r#","action":"DROP""#.into(), Some("l7policy.action")),
            (
                r#","action":"REDIRECT_TO_URL""#.into(),
                Some("redirect_url"),
            ),
            (
                r#","action":"REDIRECT_TO_URL","redirect_url":"ftp://x""#.into(),
                Some("redirect_url"),
            ),
            (
                r#","action":"REDIRECT_TO_URL","redirect_url":"http://x/y""#.into(),
                None,
            ),
            (
                r#","action":"REDIRECT_TO_URL","redirect_url":"http://x","redirect_http_code":304"#
                    .into(),
                Some("redirect_http_code"),
            ),
            (
                format!(
                    r#","action":"REDIRECT_TO_URL","redirect_url":"http://x","redirect_pool_id":"{P}""#
                ),
                Some("redirect_pool_id"),
            ),
            (
                r#","action":"REDIRECT_PREFIX""#.into(),
                Some("redirect_prefix"),
            ),
            (
                r#","action":"REDIRECT_TO_POOL""#.into(),
                Some("redirect_pool_id"),
            ),
            (
                format!(r#","action":"REDIRECT_TO_POOL","redirect_pool_id":"{P}""#),
                None,
            ),
            (
                format!(r#","action":"REJECT","redirect_pool_id":"{P}""#),
                Some("redirect_pool_id"),
            ),
            (
                r#","action":"REJECT","redirect_http_code":301"#.into(),
                Some("redirect_http_code"),
            ),
            (
                r#","action":"REJECT","position":0"#.into(),
                Some("position"),
            ),
            (
                r#","action":"REJECT","listener_id":"x""#.into(),
                Some("listener_id"),
            ),
        ];
        for (extra, field) in cases {
            match (post(&extra), field) {
                (Ok(_), None) => {}
                (Err(e), Some(f)) => assert_eq!(e.field(), f, "{extra}: {e}"),
                (r, f) => panic!("{extra}: got {r:?}, expected error on {f:?}"),
            }
        }
    }

    #[test]
    fn default_code_and_action_change_clears_fields() {
        let p = post(r#","action":"REDIRECT_TO_URL","redirect_url":"http://x""#).unwrap();
        assert_eq!(p.redirect_http_code, Some(302));
        let put: L7PolicyPutBody = decode_body(br#"{"l7policy":{"action":"REJECT"}}"#).unwrap();
        let new = put.l7policy.apply_checked(&p).unwrap();
        assert_eq!(new.redirect_url, None);
        assert_eq!(new.redirect_http_code, None);
        let put: L7PolicyPutBody =
            decode_body(br#"{"l7policy":{"action":"REDIRECT_PREFIX"}}"#).unwrap();
        assert_eq!(
            put.l7policy.apply_checked(&p).unwrap_err().field(),
            "redirect_prefix"
        );
    }
}
