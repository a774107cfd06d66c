//! A real Keystone for the tests: an admin client over its v3 REST API.
//!
//! `scripts/test.sh` starts one Keystone for the whole run (SQLite, loopback, a fresh database
//! each run: `scripts/openstack.sh`) and exports where it is:
//!
//! * `OCTAVIA_TEST_KEYSTONE_URL`: `http://127.0.0.1:PORT`, the v3 API under `/v3`;
//! * `OCTAVIA_TEST_KEYSTONE_ADMIN_PASSWORD`: user `admin`, project `admin`, domain `Default`;
//! * `OCTAVIA_TEST_KEYSTONE_SERVICE_USER`, `..._PASSWORD`, `..._PROJECT`: Octavia's service user
//!   (`octavia`, roles `service` and `admin` in project `service`), as which the API validates
//!   tokens;
//! * `OCTAVIA_TEST_OPENSTACK_PYTHON`: the python of the OpenStack CLI's venv, with openstacksdk.
//!
//! [`Keystone::from_env`] is `None` where no Keystone is configured (the test prints that it
//! is skipped), and panics under `CI=true`, like [`crate::require`].
//!
//! Tests run in parallel processes against that one Keystone, so everything a test creates has
//! a unique name ([`unique`]), and tests never change what they did not create. Each test that
//! registers an Octavia endpoint gets a region of its own ([`Keystone::create_service_and_endpoint`]):
//! its clients must name that region (`--os-region-name`), or they could pick another test's
//! `load-balancer` endpoint from the catalog.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use crate::require::require;

pub const URL_ENV: &str = "OCTAVIA_TEST_KEYSTONE_URL";
pub const ADMIN_PASSWORD_ENV: &str = "OCTAVIA_TEST_KEYSTONE_ADMIN_PASSWORD";
pub const SERVICE_USER_ENV: &str = "OCTAVIA_TEST_KEYSTONE_SERVICE_USER";
pub const SERVICE_PASSWORD_ENV: &str = "OCTAVIA_TEST_KEYSTONE_SERVICE_PASSWORD";
pub const SERVICE_PROJECT_ENV: &str = "OCTAVIA_TEST_KEYSTONE_SERVICE_PROJECT";
pub const OPENSTACK_PYTHON_ENV: &str = "OCTAVIA_TEST_OPENSTACK_PYTHON";

/// The user, project and domain `keystone-manage bootstrap` made.
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PROJECT: &str = "admin";
/// The id of the domain `Default`, where everything here lives.
pub const DEFAULT_DOMAIN: &str = "default";

/// Refresh the cached admin token when it expires within this margin.
const TOKEN_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// A unique name: `prefix-` and a fresh uuid (32 hex digits).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The python of the OpenStack CLI's venv (openstacksdk importable), for `test`; `None` when
/// the test is skipped (see [`require`]).
pub fn openstack_python(test: &str) -> Option<PathBuf> {
    let python = std::env::var_os(OPENSTACK_PYTHON_ENV).map(PathBuf::from);
    require(
        test,
        &[(
            "the OpenStack CLI's python (OCTAVIA_TEST_OPENSTACK_PYTHON; scripts/test.sh sets it)",
            python.is_some(),
        )],
    )
    .then_some(python)?
}

/// A token and when it expires.
#[derive(Debug, Clone)]
pub struct Token {
    /// What goes in `X-Auth-Token`.
    pub id: String,
    pub expires_at: DateTime<Utc>,
}

/// An answer Keystone gave instead of the one expected.
#[derive(Debug, Clone)]
pub struct Refused {
    pub status: StatusCode,
    pub body: String,
}

/// Octavia's service user (its roles: `service` and `admin` in its project).
#[derive(Debug, Clone)]
pub struct ServiceUser {
    pub name: String,
    pub password: String,
    /// The project's name (domain `Default`).
    pub project: String,
}

/// The Keystone of this run, driven as its admin.
#[derive(Debug)]
pub struct Keystone {
    url: String,
    admin_password: String,
    service: ServiceUser,
    http: reqwest::Client,
    admin_token: Mutex<Option<Token>>,
}

/// A project of its own with a user holding the given roles in it, and that user's token
/// scoped to it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub project_id: String,
    pub project_name: String,
    pub user_id: String,
    pub user_name: String,
    pub password: String,
    pub token: Token,
}

/// Catalog services (e.g. `load-balancer`) with public, internal and admin endpoints, in a
/// region of their own.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// What the test's clients must pass as `--os-region-name` / `region_name`.
    pub region: String,
    pub service_ids: Vec<String>,
    pub endpoint_ids: Vec<String>,
}

impl Keystone {
    /// The Keystone of this run for `test`, or `None` when none is configured: the test is
    /// then skipped with the reason printed, or, under `CI=true`, fails.
    pub fn from_env(test: &str) -> Option<Keystone> {
        let url = std::env::var(URL_ENV).ok().filter(|u| !u.is_empty());
        if !require(
            test,
            &[(
                "a Keystone (OCTAVIA_TEST_KEYSTONE_URL; scripts/test.sh starts one)",
                url.is_some(),
            )],
        ) {
            return None;
        }
        let set = |name: &str, value: Result<String, std::env::VarError>| {
            value.unwrap_or_else(|_| panic!("{URL_ENV} is set, so {name} must be too"))
        };
        let admin_password = set(ADMIN_PASSWORD_ENV, std::env::var(ADMIN_PASSWORD_ENV));
        let service = ServiceUser {
            name: set(SERVICE_USER_ENV, std::env::var(SERVICE_USER_ENV)),
            password: set(SERVICE_PASSWORD_ENV, std::env::var(SERVICE_PASSWORD_ENV)),
            project: set(SERVICE_PROJECT_ENV, std::env::var(SERVICE_PROJECT_ENV)),
        };
        Some(Keystone {
            url: url?.trim_end_matches('/').to_string(),
            admin_password,
            service,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("build the Keystone HTTP client"),
            admin_token: Mutex::new(None),
        })
    }

    /// `http://127.0.0.1:PORT`, what clients take as their auth URL (`/v3` appended or not).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The v3 API: `{url}/v3`.
    pub fn v3(&self) -> String {
        format!("{}/v3", self.url)
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// Octavia's service user, made by scripts/openstack.sh.
    pub fn service_user(&self) -> &ServiceUser {
        &self.service
    }

    /// A token of `admin` scoped to project `admin` (cached while it has minutes to live).
    pub async fn admin_token(&self) -> String {
        let cached = self.admin_token.lock().expect("admin token lock").clone();
        if let Some(t) = cached.filter(|t| t.expires_at - Utc::now() > TOKEN_MARGIN) {
            return t.id;
        }
        let token = self
            .password_token(
                json!({ "name": ADMIN_USER, "domain": { "id": DEFAULT_DOMAIN },
                        "password": self.admin_password }),
                json!({ "project": { "name": ADMIN_PROJECT, "domain": { "id": DEFAULT_DOMAIN } } }),
            )
            .await
            .unwrap_or_else(|r| panic!("admin token from {}: {r:?}", self.url));
        *self.admin_token.lock().expect("admin token lock") = Some(token.clone());
        token.id
    }

    /// A token of Octavia's service user, scoped to its project.
    pub async fn service_token(&self) -> Token {
        self.password_token(
            json!({ "name": self.service.name, "domain": { "id": DEFAULT_DOMAIN },
                    "password": self.service.password }),
            json!({ "project": { "name": self.service.project,
                                 "domain": { "id": DEFAULT_DOMAIN } } }),
        )
        .await
        .unwrap_or_else(|r| panic!("token of service user {}: {r:?}", self.service.name))
    }

    /// Creates a project (domain `Default`) named `name`; its id.
    pub async fn create_project(&self, name: &str) -> String {
        let body = json!({ "project": { "name": name, "domain_id": DEFAULT_DOMAIN } });
        let v = self
            .admin(Method::POST, "/projects", Some(body), StatusCode::CREATED)
            .await;
        id(&v["project"])
    }

    /// Creates a user (domain `Default`) with `password`, its default project `project_id`;
    /// its id.
    pub async fn create_user(&self, name: &str, password: &str, project_id: &str) -> String {
        let body = json!({ "user": { "name": name, "domain_id": DEFAULT_DOMAIN,
                                     "password": password, "default_project_id": project_id } });
        let v = self
            .admin(Method::POST, "/users", Some(body), StatusCode::CREATED)
            .await;
        id(&v["user"])
    }

    /// The id of the role `name`, created if missing (by this or, concurrently, another test).
    pub async fn ensure_role(&self, name: &str) -> String {
        if let Some(id) = self.find_role(name).await {
            return id;
        }
        let body = json!({ "role": { "name": name } });
        match self
            .request(Method::POST, "/roles", Some(body), StatusCode::CREATED)
            .await
        {
            Ok(v) => id(&v["role"]),
            // Another process created it between the lookup and the creation.
            Err(r) if r.status == StatusCode::CONFLICT => self
                .find_role(name)
                .await
                .unwrap_or_else(|| panic!("role {name}: 409 on create, then not found")),
            Err(r) => panic!("create role {name}: {r:?}"),
        }
    }

    async fn find_role(&self, name: &str) -> Option<String> {
        let admin = self.admin_token().await;
        let req = self
            .http
            .get(format!("{}/roles", self.v3()))
            .query(&[("name", name)])
            .header("X-Auth-Token", admin);
        let v = answer(req, "GET", "/roles", StatusCode::OK)
            .await
            .unwrap_or_else(|r| panic!("find role {name}: {r:?}"));
        v["roles"].as_array()?.first().map(id)
    }

    /// Grants the role `role_id` to user `user_id` on project `project_id`.
    pub async fn grant(&self, user_id: &str, project_id: &str, role_id: &str) {
        self.admin(
            Method::PUT,
            &format!("/projects/{project_id}/users/{user_id}/roles/{role_id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
    }

    /// Password authentication of user `user_id`, scoped to project `project_id`: the token
    /// (`X-Subject-Token`) and its expiry, or Keystone's refusal (401 for a wrong password).
    pub async fn token(
        &self,
        user_id: &str,
        password: &str,
        project_id: &str,
    ) -> Result<Token, Refused> {
        self.password_token(
            json!({ "id": user_id, "password": password }),
            json!({ "project": { "id": project_id } }),
        )
        .await
    }

    async fn password_token(&self, user: Value, scope: Value) -> Result<Token, Refused> {
        let body = json!({ "auth": {
            "identity": { "methods": ["password"], "password": { "user": user } },
            "scope": scope,
        } });
        let resp = self
            .http
            .post(format!("{}/auth/tokens", self.v3()))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {}/auth/tokens: {e:?}", self.v3()));
        let status = resp.status();
        let subject = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        if status != StatusCode::CREATED {
            return Err(Refused { status, body: text });
        }
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("token answer is not JSON ({e}): {text}"));
        Ok(Token {
            id: subject.unwrap_or_else(|| panic!("201 without X-Subject-Token: {text}")),
            expires_at: expires_at(&v["token"]),
        })
    }

    /// Keystone's validation of `subject` (`GET /v3/auth/tokens` as admin), the `token` object
    /// of its answer; `catalog: false` asks with `?nocatalog`.
    pub async fn validate(&self, subject: &str, catalog: bool) -> Result<Value, Refused> {
        let path = if catalog {
            "/auth/tokens"
        } else {
            "/auth/tokens?nocatalog"
        };
        let admin = self.admin_token().await;
        let req = self
            .http
            .get(format!("{}{path}", self.v3()))
            .header("X-Auth-Token", admin)
            .header("X-Subject-Token", subject);
        let mut v = answer(req, "GET", path, StatusCode::OK).await?;
        Ok(v["token"].take())
    }

    /// Revokes `subject` (`DELETE /v3/auth/tokens` as admin).
    pub async fn revoke(&self, subject: &str) {
        let admin = self.admin_token().await;
        let req = self
            .http
            .delete(format!("{}/auth/tokens", self.v3()))
            .header("X-Auth-Token", admin)
            .header("X-Subject-Token", subject);
        answer(req, "DELETE", "/auth/tokens", StatusCode::NO_CONTENT)
            .await
            .unwrap_or_else(|r| panic!("revoke a token: {r:?}"));
    }

    /// A unique project with a unique user holding `roles` (created if missing) in it, and its
    /// token. [`Tenant::delete`] removes both.
    pub async fn tenant(&self, roles: &[&str]) -> Tenant {
        let project_name = unique("project");
        let user_name = unique("user");
        let password = unique("pw");
        let project_id = self.create_project(&project_name).await;
        let user_id = self.create_user(&user_name, &password, &project_id).await;
        for role in roles {
            let role_id = self.ensure_role(role).await;
            self.grant(&user_id, &project_id, &role_id).await;
        }
        let token = self
            .token(&user_id, &password, &project_id)
            .await
            .unwrap_or_else(|r| panic!("token of {user_name}: {r:?}"));
        Tenant {
            project_id,
            project_name,
            user_id,
            user_name,
            password,
            token,
        }
    }

    /// Registers `url` in the catalog as a `service_type` service (e.g. `load-balancer`) with
    /// public, internal and admin endpoints, in a region of its own ([`Endpoint::region`]).
    /// [`Endpoint::delete`] removes them.
    pub async fn create_service_and_endpoint(&self, service_type: &str, url: &str) -> Endpoint {
        self.create_services(&[(service_type, url)]).await
    }

    /// Like [`Keystone::create_service_and_endpoint`] for several `(service_type, url)` in one
    /// region: what a client that talks to two services (the `openstack` CLI looks subnets up
    /// in `network`) finds in one catalog.
    pub async fn create_services(&self, services: &[(&str, &str)]) -> Endpoint {
        let region = unique("region");
        let body = json!({ "region": { "id": region, "description": "octavia-rs test" } });
        self.admin(Method::POST, "/regions", Some(body), StatusCode::CREATED)
            .await;
        let mut service_ids = Vec::new();
        let mut endpoint_ids = Vec::new();
        for (service_type, url) in services {
            let body = json!({ "service": { "type": service_type, "name": unique(service_type) } });
            let v = self
                .admin(Method::POST, "/services", Some(body), StatusCode::CREATED)
                .await;
            let service_id = id(&v["service"]);
            for interface in ["public", "internal", "admin"] {
                let body = json!({ "endpoint": { "service_id": service_id, "interface": interface,
                                                 "region_id": region, "url": url } });
                let v = self
                    .admin(Method::POST, "/endpoints", Some(body), StatusCode::CREATED)
                    .await;
                endpoint_ids.push(id(&v["endpoint"]));
            }
            service_ids.push(service_id);
        }
        Endpoint {
            region,
            service_ids,
            endpoint_ids,
        }
    }

    pub async fn delete_project(&self, project_id: &str) {
        self.delete(&format!("/projects/{project_id}")).await;
    }

    pub async fn delete_user(&self, user_id: &str) {
        self.delete(&format!("/users/{user_id}")).await;
    }

    async fn delete(&self, path: &str) {
        self.admin(Method::DELETE, path, None, StatusCode::NO_CONTENT)
            .await;
    }

    /// `method path` as admin; the answer's JSON (`null` for none). Panics unless `expected`.
    async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Value {
        let what = format!("{method} {path}");
        self.request(method, path, body, expected)
            .await
            .unwrap_or_else(|r| panic!("{what}: {r:?}"))
    }

    /// `method path` as admin: the answer's JSON (`null` for none), or Keystone's refusal.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Result<Value, Refused> {
        let admin = self.admin_token().await;
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.v3()))
            .header("X-Auth-Token", admin);
        if let Some(body) = body {
            req = req.json(&body);
        }
        answer(req, method.as_str(), path, expected).await
    }
}

impl Tenant {
    /// Deletes the user and the project (the role assignments go with them).
    pub async fn delete(self, keystone: &Keystone) {
        keystone.delete_user(&self.user_id).await;
        keystone.delete_project(&self.project_id).await;
    }
}

impl Endpoint {
    /// Deletes the endpoints, the service and the region.
    pub async fn delete(self, keystone: &Keystone) {
        for e in &self.endpoint_ids {
            keystone.delete(&format!("/endpoints/{e}")).await;
        }
        for service in &self.service_ids {
            keystone.delete(&format!("/services/{service}")).await;
        }
        keystone.delete(&format!("/regions/{}", self.region)).await;
    }
}

/// Sends `req`; its JSON (`null` when empty) if the status is `expected`, else the refusal.
async fn answer(
    req: RequestBuilder,
    method: &str,
    path: &str,
    expected: StatusCode,
) -> Result<Value, Refused> {
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status != expected {
        return Err(Refused { status, body: text });
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: answer is not JSON ({e}): {text}")))
}

/// The `id` of a Keystone object.
fn id(object: &Value) -> String {
    object["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {object}"))
        .to_string()
}

/// A token object's `expires_at` (`2026-12-07T07:43:19.000000Z`).
fn expires_at(token: &Value) -> DateTime<Utc> {
    let at = token["expires_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no expires_at in {token}"));
    DateTime::parse_from_rfc3339(at)
        .unwrap_or_else(|e| panic!("expires_at {at}: {e}"))
        .with_timezone(&Utc)
}
