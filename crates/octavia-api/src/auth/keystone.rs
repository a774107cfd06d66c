//! Keystone token validation (`[api_settings] auth_strategy = "keystone"`), what
//! keystonemiddleware's `auth_token` does for Octavia: each `X-Auth-Token` is validated with
//! Keystone's v3 API (`GET /v3/auth/tokens`) as the service user, and the answer is cached
//! until `token_cache_time` or the token's expiry, whichever comes first (invalid tokens are
//! cached too, so a client retrying a bad token does not hammer Keystone). The service
//! user's own token is renewed before it expires, and again when Keystone says it is no
//! longer valid. A Keystone that cannot be reached (refused, timed out, 5xx) is the
//! [`AuthError::Unavailable`] the API answers with 503; tokens already cached keep working.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `[keystone_authtoken]` (keystonemiddleware's option names).
#[derive(Clone, PartialEq, Eq)]
pub struct KeystoneSettings {
    /// Sent to clients in `WWW-Authenticate` (the public identity endpoint).
    pub www_authenticate_uri: String,
    /// Where tokens are validated (the identity endpoint, with or without `/v3`).
    pub auth_url: String,
    /// The service user that validates tokens.
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    /// `token_cache_time`: how long a validation is reused (300 s), never past the token's
    /// expiry.
    pub token_cache_time: Duration,
    /// `http_connect_timeout` (3 s here; keystonemiddleware has none by default).
    pub http_connect_timeout: Duration,
    /// Whole-request timeout of a call to Keystone (10 s).
    pub http_request_timeout: Duration,
    /// `cafile`: PEM bundle of CAs for an https Keystone (else the system bundle).
    pub cafile: Option<PathBuf>,
}

impl std::fmt::Debug for KeystoneSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneSettings")
            .field("www_authenticate_uri", &self.www_authenticate_uri)
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("password", &"<secret>")
            .field("project_name", &self.project_name)
            .field("token_cache_time", &self.token_cache_time)
            .finish_non_exhaustive()
    }
}

impl Default for KeystoneSettings {
    fn default() -> Self {
        Self {
            www_authenticate_uri: String::new(),
            auth_url: String::new(),
            username: "octavia".into(),
            password: String::new(),
            project_name: "service".into(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            token_cache_time: Duration::from_secs(300),
            http_connect_timeout: Duration::from_secs(3),
            http_request_timeout: Duration::from_secs(10),
            cafile: None,
        }
    }
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub user_domain_id: Option<String>,
    /// `None` for a token not scoped to a project (domain or system scope, or unscoped).
    pub project_id: Option<String>,
    pub project_domain_id: Option<String>,
    /// Role names, lower-cased, implied roles included (Keystone expands them).
    pub roles: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, expired or revoked: the client's fault (401).
    #[error("The request you have made requires authentication.")]
    Unauthorized,
    /// Keystone could not answer (or refused our service credentials): retry later (503).
    #[error("The identity service is unavailable: {0}")]
    Unavailable(String),
}

/// Cached answers are dropped (expired first, then all) beyond this many.
const CACHE_LIMIT: usize = 100_000;
/// The service token is renewed this long before it expires.
const RENEW_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

struct Cached {
    identity: Option<Identity>,
    until: Instant,
}

/// The Keystone client of the API: validation with a cache, and the service token.
pub struct KeystoneAuth {
    settings: KeystoneSettings,
    base: String,
    http: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    service_token: tokio::sync::Mutex<Option<(String, DateTime<Utc>)>>,
}

impl std::fmt::Debug for KeystoneAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneAuth")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenBody {
    token: Token,
}

#[derive(Deserialize)]
struct Token {
    expires_at: String,
    #[serde(default)]
    roles: Vec<Named>,
    user: Option<Scoped>,
    project: Option<Scoped>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Scoped {
    id: String,
    domain: Option<DomainRef>,
}

#[derive(Deserialize)]
struct DomainRef {
    id: Option<String>,
}

fn parse_expiry(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("token expires_at {s:?}: {e}"))
}

impl KeystoneAuth {
    /// A client for `settings`; fails on an unreadable `cafile` or a missing `auth_url`.
    pub fn new(settings: KeystoneSettings) -> Result<Self, String> {
        if settings.auth_url.trim().is_empty() {
            return Err(
                "[keystone_authtoken] auth_url is required with auth_strategy keystone".into(),
            );
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.http_connect_timeout)
            .timeout(settings.http_request_timeout)
            .pool_max_idle_per_host(8);
        let bundle = settings.cafile.clone().or_else(|| {
            let system = PathBuf::from("/etc/ssl/certs/ca-certificates.crt");
            system.exists().then_some(system)
        });
        if let Some(path) = bundle {
            let pem = std::fs::read(&path)
                .map_err(|e| format!("read [keystone_authtoken] cafile {}: {e}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("parse CA bundle {}: {e}", path.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| format!("build the Keystone HTTP client: {e}"))?;
        let base = settings.auth_url.trim_end_matches('/');
        let base = base.strip_suffix("/v3").unwrap_or(base).to_string();
        Ok(Self {
            settings,
            base,
            http,
            cache: Mutex::new(HashMap::new()),
            service_token: tokio::sync::Mutex::new(None),
        })
    }

    /// What clients are told in `WWW-Authenticate`.
    pub fn www_authenticate(&self) -> String {
        let uri = if self.settings.www_authenticate_uri.is_empty() {
            &self.settings.auth_url
        } else {
            &self.settings.www_authenticate_uri
        };
        format!("Keystone uri=\"{uri}\"")
    }

    /// Validate `token`: from the cache when it can, else with Keystone.
    pub async fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        if token.is_empty() || token.len() > 8192 {
            return Err(AuthError::Unauthorized);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cached(&key) {
            return hit.ok_or(AuthError::Unauthorized);
        }
        let answer = self.ask_keystone(token).await?;
        self.remember(key, answer.clone());
        answer.ok_or(AuthError::Unauthorized)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Option<Identity>> {
        let mut cache = self.cache.lock().expect("token cache lock");
        match cache.get(key) {
            Some(c) if c.until > Instant::now() => Some(c.identity.clone()),
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }

    fn remember(&self, key: [u8; 32], identity: Option<Identity>) {
        let mut ttl = self.settings.token_cache_time;
        if let Some(id) = &identity {
            let left = (id.expires_at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            ttl = ttl.min(left);
        }
        if ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().expect("token cache lock");
        if cache.len() >= CACHE_LIMIT {
            let now = Instant::now();
            cache.retain(|_, c| c.until > now);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                identity,
                until: Instant::now() + ttl,
            },
        );
    }

    /// `Ok(None)`: Keystone says the token is not valid.
    async fn ask_keystone(&self, token: &str) -> Result<Option<Identity>, AuthError> {
        for attempt in 0..2 {
            let service = self.service_token(attempt > 0).await?;
            let resp = self
                .http
                .get(format!("{}/v3/auth/tokens?nocatalog", self.base))
                .header("X-Auth-Token", &service)
                .header("X-Subject-Token", token)
                .send()
                .await
                .map_err(|e| unavailable("validate a token", e))?;
            match resp.status().as_u16() {
                200 => {
                    let body: TokenBody = resp
                        .json()
                        .await
                        .map_err(|e| unavailable("read a token validation", e))?;
                    return identity(body.token)
                        .map(Some)
                        .map_err(AuthError::Unavailable);
                }
                // Not found (expired, revoked, never issued) or malformed.
                404 | 400 => return Ok(None),
                // Our own token is no longer accepted: renew once.
                401 if attempt == 0 => continue,
                code => {
                    let msg = format!("Keystone answered {code} to a token validation");
                    tracing::error!(
                        code,
                        "the service user cannot validate tokens; check [keystone_authtoken]"
                    );
                    return Err(AuthError::Unavailable(msg));
                }
            }
        }
        Err(AuthError::Unavailable(
            "Keystone refused the service credentials".into(),
        ))
    }

    /// The service user's token, issued again when `renew` is set or it nears expiry.
    async fn service_token(&self, renew: bool) -> Result<String, AuthError> {
        let mut slot = self.service_token.lock().await;
        if let Some((tok, expires)) = slot.as_ref() {
            if !renew && *expires - RENEW_MARGIN > Utc::now() {
                return Ok(tok.clone());
            }
        }
        let s = &self.settings;
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": s.username,
                "domain": {"name": s.user_domain_name},
                "password": s.password,
            }}},
            "scope": {"project": {"name": s.project_name, "domain": {"name": s.project_domain_name}}},
        }});
        let resp = self
            .http
            .post(format!("{}/v3/auth/tokens?nocatalog", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| unavailable("issue the service token", e))?;
        if resp.status().as_u16() != 201 {
            let code = resp.status().as_u16();
            tracing::error!(code, user = %s.username, "Keystone refused the service user's credentials; check [keystone_authtoken]");
            return Err(AuthError::Unavailable(format!(
                "Keystone answered {code} to the service user's authentication"
            )));
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| AuthError::Unavailable("Keystone issued no X-Subject-Token".into()))?;
        let body: TokenBody = resp
            .json()
            .await
            .map_err(|e| unavailable("read the service token", e))?;
        let expires = parse_expiry(&body.token.expires_at).map_err(AuthError::Unavailable)?;
        tracing::debug!(expires_at = %expires, "service token issued");
        *slot = Some((token.clone(), expires));
        Ok(token)
    }
}

fn unavailable(what: &str, e: reqwest::Error) -> AuthError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    tracing::warn!(error = %e, "{what}: Keystone {kind}");
    AuthError::Unavailable(format!("{what}: Keystone {kind}"))
}

fn identity(t: Token) -> Result<Identity, String> {
    let user = t.user.ok_or("token without a user")?;
    Ok(Identity {
        user_id: user.id,
        user_domain_id: user.domain.and_then(|d| d.id),
        project_domain_id: t
            .project
            .as_ref()
            .and_then(|p| p.domain.as_ref()?.id.clone()),
        project_id: t.project.map(|p| p.id),
        roles: t
            .roles
            .into_iter()
            .map(|r| r.name.to_ascii_lowercase())
            .collect(),
        expires_at: parse_expiry(&t.expires_at)?,
    })
}
