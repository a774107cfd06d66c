//! Who is calling (a Keystone token, or noauth headers) and what they may do (Octavia's
//! policy, [`policy::PolicyEngine`]).
//!
//! The [`authenticate`] middleware turns every request into a [`Caller`] before a handler
//! runs; handlers ask the caller with Octavia's rule names and the project of the object
//! concerned, exactly where Octavia's controllers do (`authorize(rule, {"project_id": ...})`).

pub mod check;
pub mod keystone;
pub mod policy;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use check::Credentials;
pub use keystone::{AuthError, Identity, KeystoneAuth, KeystoneSettings};
pub use policy::{rule, PolicyEngine, PolicySettings};

use crate::app::AppState;
use crate::error::{policy_denied, ApiError};

/// How requests are authenticated.
#[derive(Debug)]
pub enum Authenticator {
    /// Trust `X-Project-Id`/`X-Tenant-Id`, `X-User-Id` and `X-Roles` (local use, tests).
    Noauth,
    /// Validate `X-Auth-Token` with Keystone.
    Keystone(Box<KeystoneAuth>),
}

/// Paths served without authentication, for monitors and version discovery (after the
/// router's path normalisation: `/v2.0` and `/v2/lbaas` are `/v2`).
pub fn is_open_path(path: &str) -> bool {
    matches!(
        path,
        "/" | "/v2" | "/v2/octavia" | "/metrics" | "/healthcheck"
    )
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub creds: Credentials,
    policy: Arc<PolicyEngine>,
}

impl Caller {
    /// A caller with `creds`, decided by `policy` (its `is_admin` set from
    /// `context_is_admin` unless already set).
    pub fn new(mut creds: Credentials, policy: Arc<PolicyEngine>) -> Self {
        if !creds.is_admin {
            creds.is_admin = policy.authorize("context_is_admin", None, &creds);
        }
        Caller { creds, policy }
    }

    /// The caller's project.
    pub fn project_id(&self) -> Option<&str> {
        self.creds.project_id.as_deref()
    }

    /// Whether the caller passes `rule` for an object of `project`.
    pub fn allows(&self, rule: &str, project: Option<&str>) -> bool {
        self.policy.authorize(rule, project, &self.creds)
    }

    /// [`Self::allows`], or 403 with Octavia's message.
    pub fn authorize(&self, rule: &str, project: Option<&str>) -> Result<(), ApiError> {
        if self.allows(rule, project) {
            Ok(())
        } else {
            Err(policy_denied())
        }
    }

    /// `rule` for the caller's own project (providers, flavors, amphorae: objects of no
    /// project are checked against the caller's, as Octavia does).
    pub fn authorize_own(&self, rule: &str) -> Result<(), ApiError> {
        self.authorize(rule, self.project_id())
    }

    /// The project a new top-level object belongs to (the body's `project_id`, else the
    /// caller's), once `rule` allows the caller to create in it: Octavia's order.
    pub fn owning_project(
        &self,
        from_body: Option<String>,
        rule: &str,
    ) -> Result<String, ApiError> {
        let project = match (from_body, self.project_id()) {
            (Some(p), _) => p,
            (None, Some(own)) => own.to_string(),
            (None, None) => {
                return Err(ApiError::BadRequest(
                    "Invalid input for field/attribute project_id. Missing project ID".to_string(),
                ))
            }
        };
        self.authorize(rule, Some(&project))?;
        Ok(project)
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

    /// The project a listing of `resource` is restricted to (`None` = every project), as
    /// Octavia's `_auth_get_all`: callers passing `<resource>:get_all-global` see what they
    /// ask for; the others see one project (the one they ask for, else their own) if
    /// `<resource>:get_all` allows it, and get 403 otherwise.
    pub fn list_scope(
        &self,
        resource: &str,
        requested: Option<String>,
    ) -> Result<Option<String>, ApiError> {
        if self.allows(&rule(resource, "get_all-global"), requested.as_deref()) {
            return Ok(requested);
        }
        let project = requested
            .or_else(|| self.creds.project_id.clone())
            .ok_or_else(policy_denied)?;
        self.authorize(&rule(resource, "get_all"), Some(&project))?;
        Ok(Some(project))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _s: &AppState) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("request reached a handler unauthenticated".into()))
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The credentials of a noauth request. With no identity at all the caller is the local
/// operator (an admin context, as every noauth context is in Octavia); a caller naming a
/// project but no roles acts as that project's member (`member`, `reader`); `X-Roles` gives
/// exactly the roles listed. Unlike Octavia's noauth, a caller that names itself is judged by
/// the policy like a Keystone caller with the same roles, so tests can exercise every role.
pub fn noauth_credentials(headers: &HeaderMap) -> Credentials {
    let project_id = header(headers, "x-project-id").or_else(|| header(headers, "x-tenant-id"));
    let roles: Option<Vec<String>> = header(headers, "x-roles").map(|r| {
        r.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    });
    let user_id = header(headers, "x-user-id");
    match (project_id, roles) {
        (None, None) => Credentials {
            roles: vec!["admin".into()],
            user_id,
            is_admin: true,
            ..Default::default()
        },
        (project_id, roles) => Credentials {
            roles: roles.unwrap_or_else(|| vec!["member".into(), "reader".into()]),
            project_id,
            user_id,
            ..Default::default()
        },
    }
}

/// The 401 answer: Octavia's fault body and where to get a token.
fn unauthorized(www_authenticate: Option<String>) -> Response {
    let mut resp = ApiError::Unauthorized(AuthError::Unauthorized.to_string()).into_response();
    if let Some(v) = www_authenticate.and_then(|v| HeaderValue::from_str(&v).ok()) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Authenticate the request (open paths pass as they are) and hand the handler a [`Caller`].
pub async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if is_open_path(req.uri().path()) {
        return next.run(req).await;
    }
    let creds = match &*s.auth {
        Authenticator::Noauth => noauth_credentials(req.headers()),
        Authenticator::Keystone(ks) => {
            let Some(token) = header(req.headers(), "x-auth-token") else {
                return unauthorized(Some(ks.www_authenticate()));
            };
            match ks.validate(&token).await {
                Ok(id) => Credentials {
                    roles: id.roles,
                    project_id: id.project_id,
                    user_id: Some(id.user_id),
                    project_domain_id: id.project_domain_id,
                    user_domain_id: id.user_domain_id,
                    is_admin: false,
                },
                Err(AuthError::Unauthorized) => return unauthorized(Some(ks.www_authenticate())),
                Err(e @ AuthError::Unavailable(_)) => {
                    return ApiError::Unavailable(e.to_string()).into_response()
                }
            }
        }
    };
    req.extensions_mut()
        .insert(Caller::new(creds, s.policy.clone()));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn engine() -> Arc<PolicyEngine> {
        PolicyEngine::new(PolicySettings::default()).unwrap()
    }

    #[test]
    fn noauth_identities() {
        let operator = noauth_credentials(&HeaderMap::new());
        assert!(operator.is_admin);
        let tenant = noauth_credentials(&headers(&[("x-project-id", "p")]));
        assert_eq!(tenant.roles, ["member", "reader"]);
        assert!(!tenant.is_admin);
        let reader = noauth_credentials(&headers(&[("x-project-id", "p"), ("x-roles", "Reader")]));
        assert_eq!(reader.roles, ["reader"]);
        let nobody = noauth_credentials(&headers(&[("x-project-id", "p"), ("x-roles", "")]));
        assert_eq!(
            nobody.roles,
            ["member", "reader"],
            "an empty header is no header"
        );
        let admin = Caller::new(
            noauth_credentials(&headers(&[("x-project-id", "p"), ("x-roles", "admin")])),
            engine(),
        );
        assert!(admin.creds.is_admin);
    }

    #[test]
    fn ownership_and_listing_scope() {
        let e = engine();
        let member = Caller::new(
            noauth_credentials(&headers(&[("x-project-id", "p")])),
            e.clone(),
        );
        let lb_post = rule("loadbalancer", "post");
        assert_eq!(member.owning_project(None, &lb_post).unwrap(), "p");
        assert_eq!(
            member.owning_project(Some("p".into()), &lb_post).unwrap(),
            "p"
        );
        assert_eq!(
            member
                .owning_project(Some("q".into()), &lb_post)
                .unwrap_err()
                .status()
                .as_u16(),
            403
        );
        assert_eq!(
            member.list_scope("loadbalancer", None).unwrap(),
            Some("p".into())
        );
        assert_eq!(
            member
                .list_scope("loadbalancer", Some("q".into()))
                .unwrap_err()
                .status()
                .as_u16(),
            403
        );
        let operator = Caller::new(noauth_credentials(&HeaderMap::new()), e.clone());
        assert_eq!(operator.list_scope("loadbalancer", None).unwrap(), None);
        assert_eq!(
            operator.owning_project(Some("q".into()), &lb_post).unwrap(),
            "q"
        );
        assert_eq!(
            operator
                .owning_project(None, &lb_post)
                .unwrap_err()
                .status()
                .as_u16(),
            400
        );
        let roleless = Caller::new(
            Credentials {
                project_id: Some("p".into()),
                ..Default::default()
            },
            e,
        );
        assert_eq!(
            roleless
                .list_scope("loadbalancer", None)
                .unwrap_err()
                .status()
                .as_u16(),
            403
        );
    }
}
