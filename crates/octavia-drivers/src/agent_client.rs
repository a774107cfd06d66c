//! The controller's mutual-TLS client of the amphora agent's `/1.0` REST API (reference §4).
//!
//! Every request goes to `https://<lb_network_ip>:<port>` but is addressed to the amphora
//! **id** as TLS server name: the client resolves the id to the management address itself,
//! sends the id as SNI and verifies the agent's certificate against it (the amphora
//! certificate's CN/SAN is its id), trusting only the server CA. It presents the controller's
//! client certificate, which the agent requires. A stale amphora answering on a reused address,
//! or any certificate from another CA, is refused.
//!
//! Connection failures, timeouts and "agent not ready" answers (a 404 that is not JSON, or
//! one saying no suitable network interface exists yet) are retried a bounded number of times
//! (`[haproxy_amphora] active_connection_max_retries` × `active_connection_retry_interval`);
//! certificate failures are not. [`AgentClient::wait_for_connectivity`] instead polls with a
//! short exponential backoff (50 ms doubling to 1 s) until its deadline.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amphora_proto::agent as proto;
use async_trait::async_trait;
use octavia_model::{Amphora, AmphoraId, LoadBalancerId, Topology};
use reqwest::{Method, StatusCode};

use crate::certs::{AmphoraCert, CertificateAuthority, ControllerIdentity};
use crate::network::{AmphoraNetworkConfig, HostRoute, MemberNetworkConfig};
use crate::{AgentInfo, AmphoraDriver, DriverError, FaultOwner, Result, VrrpAction};

/// Default agent port: `[haproxy_amphora] bind_port`.
pub const DEFAULT_AGENT_PORT: u16 = 9443;
/// Default connect timeout: `[haproxy_amphora] rest_request_conn_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default read timeout: `[haproxy_amphora] rest_request_read_timeout`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default retries of a call on connection errors: `active_connection_max_retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 15;
/// Default pause between those retries: `active_connection_retry_interval`.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(2);

const USER_AGENT: &str = concat!(
    "Octavia HaProxy Rest Client/",
    env!("CARGO_PKG_VERSION"),
    " (octavia-rs)"
);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Clients (one per amphora and address) kept for connection reuse before the cache is reset.
const MAX_CACHED_CLIENTS: usize = 4096;
/// Longest part of an unexpected response body quoted in an error.
const MAX_QUOTED_BODY: usize = 512;
/// What the agent says when a plug request comes before the interface appeared.
const NO_INTERFACE_YET: &str = "No suitable network interface found";

/// How to reach agents: trust, identity, port, timeouts and retries.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentClientConfig {
    /// CA certificate(s) (PEM) agent certificates must chain to: `[haproxy_amphora] server_ca`.
    pub server_ca_pem: String,
    /// The controller's client certificate and key: `[haproxy_amphora] client_cert`.
    pub controller: ControllerIdentity,
    /// Agent port: `[haproxy_amphora] bind_port`.
    pub port: u16,
    /// TCP + TLS connect timeout of one attempt.
    pub connect_timeout: Duration,
    /// Read timeout of one attempt.
    pub read_timeout: Duration,
    /// Retries of a call after connection errors, timeouts or "agent not ready".
    pub max_retries: u32,
    /// Pause between those retries.
    pub retry_interval: Duration,
}

impl fmt::Debug for AgentClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClientConfig")
            .field("port", &self.port)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_interval", &self.retry_interval)
            .finish_non_exhaustive()
    }
}

impl AgentClientConfig {
    /// Octavia's defaults with the given trust anchor and identity.
    pub fn new(server_ca_pem: impl Into<String>, controller: ControllerIdentity) -> Self {
        Self {
            server_ca_pem: server_ca_pem.into(),
            controller,
            port: DEFAULT_AGENT_PORT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_interval: DEFAULT_RETRY_INTERVAL,
        }
    }

    /// Octavia's defaults, trusting the local CA's server CA and presenting its controller
    /// certificate.
    pub fn from_ca(ca: &CertificateAuthority) -> Self {
        Self::new(ca.server_ca_pem(), ca.controller_identity())
    }
}

/// The mTLS client of amphora agents; implements [`AmphoraDriver`].
pub struct AgentClient {
    config: AgentClientConfig,
    /// The CA whose files the trust and identity follow (see [`AgentClient::following`]).
    ca: Option<Arc<CertificateAuthority>>,
    state: Mutex<ClientState>,
}

/// The TLS configuration in use, the CA generation it was built from, and the HTTP clients
/// built with it.
struct ClientState {
    generation: u64,
    tls: rustls::ClientConfig,
    clients: HashMap<(AmphoraId, SocketAddr), reqwest::Client>,
}

impl fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn ours(context: &str, message: impl Into<String>) -> DriverError {
    DriverError::permanent(FaultOwner::Ours, context, message)
}

/// Build the rustls configuration: only the server CA is trusted, the controller certificate
/// is presented; ring is the crypto provider.
fn tls_config(config: &AgentClientConfig) -> Result<rustls::ClientConfig> {
    const CTX: &str = "configure agent client tls";
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut config.server_ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| ours(CTX, format!("invalid server CA PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ours(CTX, format!("unusable server CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ours(CTX, "server CA PEM holds no certificate"));
    }
    let chain = rustls_pemfile::certs(&mut config.controller.cert_pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ours(CTX, format!("invalid controller certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(ours(CTX, "controller certificate PEM holds no certificate"));
    }
    let key = rustls_pemfile::private_key(&mut config.controller.key_pem.expose().as_bytes())
        .map_err(|e| ours(CTX, format!("invalid controller key PEM: {e}")))?
        .ok_or_else(|| ours(CTX, "controller key PEM holds no private key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ours(CTX, e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            ours(
                CTX,
                format!("controller certificate and key do not fit: {e}"),
            )
        })
}

/// A request body.
enum Body {
    Empty,
    Text(String),
    Json(serde_json::Value),
}

/// One answer of the agent.
struct Reply {
    status: StatusCode,
    is_json: bool,
    body: Vec<u8>,
}

impl Reply {
    /// Octavia's "agent not ready": a 404 that is not JSON (the agent's routes are not up),
    /// or the plug handlers saying the interface has not appeared yet.
    fn agent_not_ready(&self) -> bool {
        if self.status != StatusCode::NOT_FOUND {
            return false;
        }
        if !self.is_json {
            return true;
        }
        serde_json::from_slice::<proto::Message>(&self.body)
            .ok()
            .and_then(|m| m.details)
            .is_some_and(|d| d.contains(NO_INTERFACE_YET))
    }

    /// What the agent said, for error messages.
    fn describe(&self) -> String {
        let reason = self.status.canonical_reason().unwrap_or("");
        let said = if let Ok(m) = serde_json::from_slice::<proto::Message>(&self.body) {
            match m.details {
                Some(d) if !d.is_empty() => format!("{}: {d}", m.message),
                _ => m.message,
            }
        } else if let Ok(e) = serde_json::from_slice::<proto::FrameworkError>(&self.body) {
            e.error
        } else {
            let text = String::from_utf8_lossy(&self.body);
            let text = text.trim();
            match text.char_indices().nth(MAX_QUOTED_BODY) {
                Some((cut, _)) => format!("{}...", &text[..cut]),
                None => text.to_string(),
            }
        };
        if said.is_empty() {
            format!("agent answered {} {reason}", self.status.as_u16())
        } else {
            format!("agent answered {} {reason}: {said}", self.status.as_u16())
        }
    }

    /// Success for 2xx and the statuses listed in `also_ok`; otherwise an agent error,
    /// retryable for "not ready" and gateway-type statuses.
    fn check(&self, context: &str, also_ok: &[StatusCode]) -> Result<()> {
        if self.status.is_success() || also_ok.contains(&self.status) {
            return Ok(());
        }
        let retryable = self.agent_not_ready()
            || matches!(
                self.status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            );
        let message = self.describe();
        Err(if retryable {
            DriverError::retryable(FaultOwner::Agent, context, message)
        } else {
            DriverError::permanent(FaultOwner::Agent, context, message)
        })
    }
}

/// Why one attempt failed before the agent answered.
struct TransportError {
    /// Connection refused/reset, timeouts: trying again may help. Certificate failures: no.
    retryable: bool,
    message: String,
}

/// The TLS error somewhere in an error's chain. rustls errors travel inside `io::Error`s,
/// sometimes nested twice, which `source()` does not open, so each link's `io::Error` content
/// is searched too.
fn find_tls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    fn at<'a>(e: &'a (dyn std::error::Error + 'static), depth: u8) -> Option<&'a rustls::Error> {
        if depth > 8 {
            return None;
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(tls) = at(inner, depth + 1) {
                return Some(tls);
            }
        }
        None
    }
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = at(e, 0) {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// The whole chain of an error, joined, for messages.
fn chain_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if parts.last().is_none_or(|p| !p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

fn classify(err: &reqwest::Error) -> TransportError {
    let message = chain_message(err);
    if let Some(tls) = find_tls_error(err) {
        return TransportError {
            retryable: false,
            message: format!("tls handshake refused: {tls} ({message})"),
        };
    }
    TransportError {
        // Connect errors, timeouts, resets and bodies cut short may all go away.
        retryable: err.is_connect()
            || err.is_timeout()
            || err.is_request()
            || err.is_body()
            || err.is_decode(),
        message,
    }
}

impl AgentClient {
    /// A client with the given trust, identity and timeouts.
    pub fn new(config: AgentClientConfig) -> Result<Self> {
        let tls = tls_config(&config)?;
        Ok(Self {
            config,
            ca: None,
            state: Mutex::new(ClientState {
                generation: 0,
                tls,
                clients: HashMap::new(),
            }),
        })
    }

    /// A client whose trusted server CAs and client certificate are `ca`'s and follow its
    /// files: when they change (`octavia certs rotate-ca`, `rotate-client`), the next
    /// connection uses the new ones (connections already open finish their requests).
    /// `config`'s port, timeouts and retries apply; its CA and identity are replaced.
    pub fn following(mut config: AgentClientConfig, ca: Arc<CertificateAuthority>) -> Result<Self> {
        let generation = ca.generation();
        config.server_ca_pem = ca.server_ca_pem();
        config.controller = ca.controller_identity();
        let mut client = Self::new(config)?;
        client
            .state
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .generation = generation;
        client.ca = Some(ca);
        Ok(client)
    }

    /// The configuration in use.
    pub fn config(&self) -> &AgentClientConfig {
        &self.config
    }

    /// One `GET /1.0/info` (with this client's retries): whether the agent answers this
    /// client's trust and identity. `octavia certs rotate-ca` asks it with a client trusting
    /// only the new server CA, to learn whether an amphora serves a certificate it signed.
    pub async fn check_reachable(&self, amphora: &Amphora) -> Result<()> {
        const CTX: &str = "ask amphora agent for its info";
        let path = format!("{}/info", proto::API_PREFIX);
        self.call(amphora, CTX, Method::GET, &path, Body::Empty)
            .await?
            .check(CTX, &[])
    }

    /// Replace the client CA bundle the agent verifies controllers with: `PUT
    /// /1.0/client_ca` (our addition to Octavia's `/1.0`; the agent keeps it as its
    /// `agent_server_ca` file and verifies new connections against it at once).
    pub async fn upload_client_ca(&self, amphora: &Amphora, pem: &str) -> Result<()> {
        const CTX: &str = "replace client ca on amphora";
        let path = format!("{}/client_ca", proto::API_PREFIX);
        self.call(
            amphora,
            CTX,
            Method::PUT,
            &path,
            Body::Text(pem.to_string()),
        )
        .await?
        .check(CTX, &[])
    }

    /// Where the agent of `amphora` listens.
    fn address(&self, amphora: &Amphora, context: &str) -> Result<SocketAddr> {
        let ip = amphora.lb_network_ip.as_deref().ok_or_else(|| {
            ours(
                context,
                format!("amphora {} has no lb_network_ip", amphora.id),
            )
        })?;
        let ip: IpAddr = ip.parse().map_err(|_| {
            ours(
                context,
                format!(
                    "lb_network_ip '{ip}' of amphora {} is not an IP address \
                     (scoped link-local addresses are not supported)",
                    amphora.id
                ),
            )
        })?;
        Ok(SocketAddr::new(ip, self.config.port))
    }

    /// The HTTP client for one amphora: resolves its id to `addr`, so the id is the TLS
    /// server name that is sent and verified.
    fn http(
        &self,
        amphora_id: AmphoraId,
        addr: SocketAddr,
        context: &str,
    ) -> Result<reqwest::Client> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ca) = &self.ca {
            let generation = ca.generation();
            if generation != state.generation {
                let mut config = self.config.clone();
                config.server_ca_pem = ca.server_ca_pem();
                config.controller = ca.controller_identity();
                match tls_config(&config) {
                    Ok(tls) => {
                        tracing::info!(
                            generation,
                            "agent client: certificate authority changed, new connections use it"
                        );
                        state.tls = tls;
                        state.clients.clear();
                    }
                    Err(error) => {
                        tracing::warn!(%error, "agent client: changed certificate authority unusable; keeping the previous one");
                    }
                }
                state.generation = generation;
            }
        }
        let state = &mut *state;
        let clients = &mut state.clients;
        if let Some(client) = clients.get(&(amphora_id, addr)) {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(state.tls.clone())
            .resolve(&amphora_id.to_string(), addr)
            .no_proxy()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.config.connect_timeout)
            .read_timeout(self.config.read_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ours(context, format!("cannot build http client: {e}")))?;
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        clients.insert((amphora_id, addr), client.clone());
        Ok(client)
    }

    /// One attempt: send and read the whole answer.
    async fn send_once(
        &self,
        client: &reqwest::Client,
        amphora_id: AmphoraId,
        method: Method,
        path: &str,
        body: &Body,
        timeout: Option<Duration>,
    ) -> std::result::Result<Reply, TransportError> {
        let url = format!("https://{amphora_id}:{}{path}", self.config.port);
        let mut request = client.request(method, url);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        request = match body {
            Body::Empty => request,
            Body::Text(text) => request
                .header(reqwest::header::CONTENT_TYPE, "text/plain")
                .body(text.clone()),
            Body::Json(value) => request.json(value),
        };
        let response = request.send().await.map_err(|e| classify(&e))?;
        let status = response.status();
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
        let body = response.bytes().await.map_err(|e| classify(&e))?.to_vec();
        Ok(Reply {
            status,
            is_json,
            body,
        })
    }

    /// A call with bounded retries on connection errors, timeouts and "agent not ready".
    async fn call(
        &self,
        amphora: &Amphora,
        context: &str,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Reply> {
        let addr = self.address(amphora, context)?;
        let client = self.http(amphora.id, addr, context)?;
        let attempts = self.config.max_retries.saturating_add(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self
                .send_once(&client, amphora.id, method.clone(), path, &body, None)
                .await
            {
                Ok(reply) if reply.agent_not_ready() => last = reply.describe(),
                Ok(reply) => {
                    tracing::debug!(
                        amphora_id = %amphora.id, %addr, %method, path,
                        status = reply.status.as_u16(), attempt, "agent call"
                    );
                    return Ok(reply);
                }
                Err(e) if e.retryable => last = e.message,
                Err(e) => {
                    tracing::warn!(
                        amphora_id = %amphora.id, %addr, %method, path, error = %e.message,
                        "agent refused"
                    );
                    return Err(DriverError::permanent(
                        FaultOwner::Agent,
                        context,
                        format!("amphora {} at {addr}: {}", amphora.id, e.message),
                    ));
                }
            }
            tracing::debug!(
                amphora_id = %amphora.id, %addr, %method, path, attempt, error = %last,
                "agent call failed, will retry"
            );
            if attempt < attempts {
                tokio::time::sleep(self.config.retry_interval).await;
            }
        }
        Err(DriverError::retryable(
            FaultOwner::Agent,
            context,
            format!(
                "amphora {} at {addr} gave no usable answer after {attempts} attempts: {last}",
                amphora.id
            ),
        ))
    }

    fn parse_ip(context: &str, what: &str, value: &str) -> Result<IpAddr> {
        value.trim().parse().map_err(|_| {
            DriverError::permanent(
                FaultOwner::Network,
                context,
                format!("{what} '{value}' is not an IP address"),
            )
        })
    }

    fn host_routes(context: &str, routes: &[HostRoute]) -> Result<Vec<proto::HostRoute>> {
        routes
            .iter()
            .map(|r| {
                Ok(proto::HostRoute {
                    nexthop: Self::parse_ip(context, "route next hop", &r.nexthop)?,
                    destination: r.destination.clone(),
                })
            })
            .collect()
    }
}

/// Octavia refuses agents whose API version is 0.5 or older.
fn api_version_too_old(version: &str) -> bool {
    let mut parts = version.trim().split('.');
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(0);
    matches!(major, Some(major) if (major, minor) <= (0, 5))
}

#[async_trait]
impl AmphoraDriver for AgentClient {
    async fn wait_for_connectivity(
        &self,
        amphora: &Amphora,
        timeout: Duration,
    ) -> Result<AgentInfo> {
        const CTX: &str = "wait for amphora agent";
        let addr = self.address(amphora, CTX)?;
        let client = self.http(amphora.id, addr, CTX)?;
        let started = Instant::now();
        let deadline = started + timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0u32;
        let mut last = String::from("no attempt made");
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                tracing::warn!(
                    amphora_id = %amphora.id, %addr, attempts, error = %last,
                    "amphora agent did not answer in time"
                );
                return Err(DriverError::retryable(
                    FaultOwner::Agent,
                    CTX,
                    format!(
                        "agent of amphora {} at {addr} did not answer within {} ms \
                         ({attempts} attempts); last error: {last}",
                        amphora.id,
                        timeout.as_millis()
                    ),
                ));
            }
            attempts += 1;
            let attempt_timeout = remaining.min(self.config.read_timeout);
            match self
                .send_once(
                    &client,
                    amphora.id,
                    Method::GET,
                    &format!("{}/info", proto::API_PREFIX),
                    &Body::Empty,
                    Some(attempt_timeout),
                )
                .await
            {
                Ok(reply) if reply.status.is_success() => {
                    let info: proto::Info = serde_json::from_slice(&reply.body).map_err(|e| {
                        DriverError::permanent(
                            FaultOwner::Agent,
                            CTX,
                            format!("amphora {} sent an invalid /info body: {e}", amphora.id),
                        )
                    })?;
                    if api_version_too_old(&info.api_version) {
                        return Err(DriverError::permanent(
                            FaultOwner::Agent,
                            CTX,
                            format!(
                                "agent of amphora {} speaks API {}, older than supported",
                                amphora.id, info.api_version
                            ),
                        ));
                    }
                    tracing::info!(
                        amphora_id = %amphora.id, %addr, attempts,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        api_version = %info.api_version, "amphora agent answered"
                    );
                    return Ok(AgentInfo {
                        hostname: info.hostname,
                        api_version: info.api_version,
                        haproxy_version: info.haproxy_version,
                    });
                }
                Ok(reply) => last = reply.describe(),
                // Certificate failures too: a stale amphora may still hold the address.
                Err(e) => last = e.message,
            }
            tracing::debug!(amphora_id = %amphora.id, %addr, attempts, error = %last, "agent not up yet");
            let pause = backoff.min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn upload_config(
        &self,
        amphora: &Amphora,
        load_balancer_id: LoadBalancerId,
        config: &str,
    ) -> Result<()> {
        const CTX: &str = "upload haproxy configuration to amphora";
        let path = format!(
            "{}/loadbalancer/{}/{load_balancer_id}/haproxy",
            proto::API_PREFIX,
            amphora.id
        );
        self.call(
            amphora,
            CTX,
            Method::PUT,
            &path,
            Body::Text(config.to_string()),
        )
        .await?
        .check(CTX, &[])
    }

    async fn reload(&self, amphora: &Amphora, load_balancer_id: LoadBalancerId) -> Result<()> {
        const CTX: &str = "reload haproxy on amphora";
        let path = format!(
            "{}/loadbalancer/{load_balancer_id}/reload",
            proto::API_PREFIX
        );
        self.call(amphora, CTX, Method::PUT, &path, Body::Empty)
            .await?
            .check(CTX, &[])
    }

    async fn remove_config(
        &self,
        amphora: &Amphora,
        load_balancer_id: LoadBalancerId,
    ) -> Result<()> {
        const CTX: &str = "remove haproxy configuration from amphora";
        let path = format!("{}/listeners/{load_balancer_id}", proto::API_PREFIX);
        // Removing what is gone succeeds (the agent answers a JSON 404).
        self.call(amphora, CTX, Method::DELETE, &path, Body::Empty)
            .await?
            .check(CTX, &[StatusCode::NOT_FOUND])
    }

    async fn plug_vip(
        &self,
        amphora: &Amphora,
        vip_address: &str,
        config: &AmphoraNetworkConfig,
        topology: Topology,
    ) -> Result<()> {
        const CTX: &str = "plug vip on amphora";
        let vip = Self::parse_ip(CTX, "vip address", vip_address)?;
        let host_routes = Self::host_routes(CTX, &config.host_routes)?;
        let body = proto::PlugVip {
            subnet_cidr: config.subnet_cidr.clone(),
            gateway: config
                .gateway
                .as_deref()
                .map(|g| Self::parse_ip(CTX, "gateway", g))
                .transpose()?,
            mac_address: config.mac_address.clone(),
            mtu: config.mtu,
            vrrp_ip: config
                .vrrp_ip
                .as_deref()
                .map(|v| Self::parse_ip(CTX, "vrrp address", v))
                .transpose()?,
            host_routes,
            additional_vips: Vec::new(),
            is_sriov: false,
            topology: Some(match topology {
                Topology::Single => proto::PlugTopology::Single,
                Topology::ActiveStandby => proto::PlugTopology::ActiveStandby,
            }),
        };
        let body = serde_json::to_value(&body).map_err(|e| ours(CTX, e.to_string()))?;
        let path = format!("{}/plug/vip/{vip}", proto::API_PREFIX);
        // 409: the interface is already configured (a repeated step).
        self.call(amphora, CTX, Method::POST, &path, Body::Json(body))
            .await?
            .check(CTX, &[StatusCode::CONFLICT])
    }

    async fn plug_network(&self, amphora: &Amphora, config: &MemberNetworkConfig) -> Result<()> {
        const CTX: &str = "plug network on amphora";
        let fixed_ips = config
            .addresses
            .iter()
            .map(|a| {
                Ok(proto::FixedIp {
                    ip_address: Self::parse_ip(CTX, "fixed ip", &a.ip_address)?,
                    subnet_cidr: a.subnet_cidr.clone(),
                    host_routes: Self::host_routes(CTX, &a.host_routes)?,
                    gateway: a
                        .gateway
                        .as_deref()
                        .map(|g| Self::parse_ip(CTX, "gateway", g))
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let body = proto::PlugNetwork {
            mac_address: config.mac_address.clone(),
            fixed_ips,
            mtu: config.mtu,
            vip_net_info: None,
            is_sriov: false,
        };
        let body = serde_json::to_value(&body).map_err(|e| ours(CTX, e.to_string()))?;
        let path = format!("{}/plug/network", proto::API_PREFIX);
        self.call(amphora, CTX, Method::POST, &path, Body::Json(body))
            .await?
            .check(CTX, &[StatusCode::CONFLICT])
    }

    async fn interface_of(&self, amphora: &Amphora, ip: &str) -> Result<String> {
        const CTX: &str = "look up interface on amphora";
        let addr = Self::parse_ip(CTX, "address", ip)?;
        let path = format!("{}/interface/{addr}", proto::API_PREFIX);
        let reply = self
            .call(amphora, CTX, Method::GET, &path, Body::Empty)
            .await?;
        reply.check(CTX, &[])?;
        let info: proto::InterfaceInfo = serde_json::from_slice(&reply.body).map_err(|e| {
            DriverError::permanent(
                FaultOwner::Agent,
                CTX,
                format!(
                    "amphora {} sent an invalid /interface body: {e}",
                    amphora.id
                ),
            )
        })?;
        Ok(info.interface)
    }

    async fn upload_vrrp_config(&self, amphora: &Amphora, config: &str) -> Result<()> {
        const CTX: &str = "upload keepalived configuration to amphora";
        let path = format!("{}/vrrp/upload", proto::API_PREFIX);
        self.call(
            amphora,
            CTX,
            Method::PUT,
            &path,
            Body::Text(config.to_string()),
        )
        .await?
        .check(CTX, &[])
    }

    async fn vrrp_action(&self, amphora: &Amphora, action: VrrpAction) -> Result<()> {
        const CTX: &str = "control keepalived on amphora";
        let path = format!("{}/vrrp/{}", proto::API_PREFIX, action.as_str());
        self.call(amphora, CTX, Method::PUT, &path, Body::Empty)
            .await?
            .check(CTX, &[])
    }

    async fn update_agent_config(&self, amphora: &Amphora, config: &str) -> Result<()> {
        const CTX: &str = "update agent configuration on amphora";
        let path = format!("{}/config", proto::API_PREFIX);
        self.call(
            amphora,
            CTX,
            Method::PUT,
            &path,
            Body::Text(config.to_string()),
        )
        .await?
        .check(CTX, &[])
    }

    async fn upload_server_certificate(&self, amphora: &Amphora, cert: &AmphoraCert) -> Result<()> {
        const CTX: &str = "replace server certificate on amphora";
        let path = format!("{}/certificate", proto::API_PREFIX);
        self.call(
            amphora,
            CTX,
            Method::PUT,
            &path,
            Body::Text(cert.server_pem().expose().to_string()),
        )
        .await?
        .check(CTX, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, is_json: bool, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            is_json,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn not_ready_is_a_plain_404_or_missing_interface() {
        assert!(reply(404, false, "<html>Not Found</html>").agent_not_ready());
        assert!(reply(
            404,
            true,
            r#"{"message":"Error","details":"No suitable network interface found"}"#
        )
        .agent_not_ready());
        assert!(!reply(404, true, r#"{"message":"Loadbalancer Not Found"}"#).agent_not_ready());
        assert!(!reply(500, false, "boom").agent_not_ready());
        assert!(!reply(202, false, "").agent_not_ready());
    }

    #[test]
    fn statuses_map_to_errors() {
        let ctx = "do it";
        assert!(reply(202, false, "").check(ctx, &[]).is_ok());
        assert!(reply(409, true, "{}")
            .check(ctx, &[StatusCode::CONFLICT])
            .is_ok());
        let err = reply(
            400,
            true,
            r#"{"message":"Invalid request","details":"line 3"}"#,
        )
        .check(ctx, &[])
        .unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.owner(), FaultOwner::Agent);
        assert!(err.to_string().contains("Invalid request: line 3"), "{err}");
        let err = reply(503, false, "busy").check(ctx, &[]).unwrap_err();
        assert!(err.is_retryable());
        let err = reply(404, true, r#"{"error":"no such route","http_code":404}"#)
            .check(ctx, &[])
            .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("no such route"), "{err}");
    }

    #[test]
    fn default_reqwest_clients_still_build() {
        // This crate turns on reqwest's rustls backend for the whole workspace; other crates'
        // `Client::new()` must keep working without a process-wide crypto provider (reqwest
        // falls back to ring, see the `rustls-tls-manual-roots` feature).
        reqwest::Client::new();
    }

    #[test]
    fn old_api_versions_are_refused() {
        assert!(api_version_too_old("0.5"));
        assert!(api_version_too_old("0.1"));
        assert!(!api_version_too_old("1.0"));
        assert!(!api_version_too_old("0.6"));
        assert!(!api_version_too_old("garbage"));
    }
}
