//! Who is calling (noauth headers) and what they may do (Octavia's policy rule names).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::{policy_denied, ApiError};

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's project (`X-Project-Id`, else `X-Tenant-Id`).
    pub project_id: Option<String>,
    /// Roles from `X-Roles` (comma separated).
    pub roles: Vec<String>,
}

impl Caller {
    /// Admins see and change every project.
    pub fn is_admin(&self) -> bool {
        self.roles
            .iter()
            .any(|r| r == "admin" || r == "load-balancer_admin")
    }

    /// The project new objects belong to: the body's `project_id` if it names the
    /// caller's own project (any project for admins), else the caller's project.
    pub fn owning_project(&self, from_body: Option<String>) -> Result<String, ApiError> {
        match (from_body, &self.project_id) {
            (Some(p), own) if self.is_admin() || own.as_deref() == Some(p.as_str()) => Ok(p),
            (Some(_), _) => Err(policy_denied()),
            (None, Some(own)) => Ok(own.clone()),
            (None, None) => Err(ApiError::BadRequest(
                "Invalid input for field/attribute project_id. Missing project ID".to_string(),
            )),
        }
    }

    /// Children belong to their parent's project (as in Octavia); a `project_id` in
    /// the body must name that project.
    pub fn child_project(from_body: Option<String>, parent_project: &str) -> Result<(), ApiError> {
        match from_body {
            Some(p) if p != parent_project => Err(ApiError::BadRequest(format!(
                "Invalid input for field/attribute project_id. Value: '{p}'. \
                 A child object belongs to the project of its load balancer ({parent_project})"
            ))),
            _ => Ok(()),
        }
    }

    /// May this caller touch an object of `project_id`? (403 otherwise.)
    pub fn check_owner(&self, project_id: &str) -> Result<(), ApiError> {
        if self.is_admin() || self.project_id.as_deref() == Some(project_id) {
            Ok(())
        } else {
            Err(policy_denied())
        }
    }

    /// The project a listing is restricted to (`None` = every project).
    pub fn list_scope(&self, requested: Option<String>) -> Option<String> {
        if self.is_admin() {
            requested
        } else {
            Some(self.project_id.clone().unwrap_or_default())
        }
    }
}

fn header(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let project_id = header(parts, "x-project-id").or_else(|| header(parts, "x-tenant-id"));
        let roles: Vec<String> = header(parts, "x-roles")
            .map(|r| {
                r.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if project_id.is_none() && roles.is_empty() {
            // No identity at all: the local operator, as Octavia's noauth contexts are
            // admin. Tenants identify themselves with X-Project-Id.
            return Ok(Caller {
                project_id: None,
                roles: vec!["admin".to_string()],
            });
        }
        Ok(Caller { project_id, roles })
    }
}

/// The policy engine: decides on Octavia's rule names
/// (`os_load-balancer_api:<resource>:<action>`). Under noauth every rule is open
/// except the admin-only ones; Keystone role rules slot in here later.
pub struct Policy;

impl Policy {
    /// Rules only admins pass.
    fn admin_only(rule: &str) -> bool {
        let Some(rest) = rule.strip_prefix("os_load-balancer_api:") else {
            return true;
        };
        let (resource, action) = rest.split_once(':').unwrap_or((rest, ""));
        matches!(
            resource,
            "amphora" | "flavor-profile" | "availability-zone-profile"
        ) || (matches!(resource, "flavor" | "availability-zone")
            && matches!(action, "post" | "put" | "delete"))
            || (resource == "quota" && matches!(action, "put" | "delete"))
            || action == "get_all-global"
            || action == "put_failover"
    }

    /// Allow or deny `rule` for `caller` (403 with Octavia's message).
    pub fn check(caller: &Caller, rule: &str) -> Result<(), ApiError> {
        let allowed = caller.is_admin() || !Self::admin_only(rule);
        if allowed {
            Ok(())
        } else {
            tracing::debug!(rule, "policy denied");
            Err(policy_denied())
        }
    }
}

/// `os_load-balancer_api:<resource>:<action>`.
pub fn rule(resource: &str, action: &str) -> String {
    format!("os_load-balancer_api:{resource}:{action}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(project: Option<&str>, roles: &[&str]) -> Caller {
        Caller {
            project_id: project.map(String::from),
            roles: roles.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn admin_only_rules() {
        let user = caller(Some("p"), &["member"]);
        let admin = caller(Some("p"), &["admin"]);
        for (r, user_ok) in [
            ("os_load-balancer_api:loadbalancer:post", true),
            ("os_load-balancer_api:loadbalancer:get_all", true),
            ("os_load-balancer_api:loadbalancer:get_all-global", false),
            ("os_load-balancer_api:loadbalancer:put_failover", false),
            ("os_load-balancer_api:amphora:get_all", false),
            ("os_load-balancer_api:quota:put", false),
            ("os_load-balancer_api:quota:get_one", true),
        ] {
            assert_eq!(Policy::check(&user, r).is_ok(), user_ok, "{r}");
            assert!(Policy::check(&admin, r).is_ok(), "{r}");
        }
    }

    #[test]
    fn project_ownership() {
        let user = caller(Some("p"), &[]);
        assert_eq!(user.owning_project(None).unwrap(), "p");
        assert_eq!(user.owning_project(Some("p".into())).unwrap(), "p");
        assert_eq!(
            user.owning_project(Some("q".into()))
                .unwrap_err()
                .status()
                .as_u16(),
            403
        );
        let admin = caller(None, &["admin"]);
        assert_eq!(admin.owning_project(Some("q".into())).unwrap(), "q");
        assert_eq!(
            caller(None, &[])
                .owning_project(None)
                .unwrap_err()
                .status()
                .as_u16(),
            400
        );
        assert!(user.check_owner("q").is_err());
        assert_eq!(user.list_scope(Some("q".into())), Some("p".into()));
        assert_eq!(admin.list_scope(None), None);
    }
}
