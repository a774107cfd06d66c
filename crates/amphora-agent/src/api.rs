//! The REST API (`GET /` and Octavia's `/1.0` endpoints) and the one place where agent errors
//! become HTTP responses.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use amphora_proto::agent::{
    ApiVersion, CertificateMd5, Details, FrameworkError, Info, InterfaceInfo, ListenerStatus,
    Message, PlugNetwork, PlugVip, API_VERSION,
};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::AgentError;
use crate::haproxy::{Action, Outcome};
use crate::keepalived;
use crate::{host, is_safe_id, netif, Agent};

/// Largest request body (HAProxy configurations, certificates).
const BODY_LIMIT: usize = 32 * 1024 * 1024;

type AppState = State<Arc<Agent>>;
type ApiResult = Result<Response, AgentError>;

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            AgentError::BadRequest { message, details } => (
                StatusCode::BAD_REQUEST,
                Message::with_details(message, details),
            ),
            AgentError::InvalidHaproxyConfig(output)
            | AgentError::InvalidKeepalivedConfig(output) => (
                StatusCode::BAD_REQUEST,
                Message::with_details("Invalid request", output),
            ),
            AgentError::Config(details) => (
                StatusCode::BAD_REQUEST,
                Message::with_details("Invalid configuration", details),
            ),
            AgentError::Tls(details) => (
                StatusCode::BAD_REQUEST,
                Message::with_details("Invalid certificate", details),
            ),
            AgentError::NotFound { message, details } => (
                StatusCode::NOT_FOUND,
                Message::with_details(message, details),
            ),
            AgentError::Conflict { message, details } => (
                StatusCode::CONFLICT,
                Message::with_details(message, details),
            ),
            AgentError::Io { .. } | AgentError::Command { .. } => {
                tracing::error!(error = %self, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Message::with_details("Error", self.to_string()),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

/// The agent's router; every request is limited to `request_timeout`.
pub fn router(agent: Arc<Agent>, request_timeout: Duration) -> Router {
    let v1 = Router::new()
        .route("/info", get(info))
        .route("/details", get(details))
        .route("/listeners", get(listeners))
        .route("/listeners/{id}", axum::routing::delete(delete_listeners))
        .route("/loadbalancer/{id}/haproxy", get(get_haproxy))
        .route("/loadbalancer/{id}/{sub}", put(lb_action))
        .route("/loadbalancer/{id}/{sub}/haproxy", put(put_haproxy))
        .route(
            "/loadbalancer/{id}/certificates/{filename}",
            put(put_certificate)
                .get(get_certificate)
                .delete(delete_certificate),
        )
        .route("/certificate", put(put_server_certificate))
        .route("/client_ca", put(put_client_ca))
        .route("/config", put(put_config))
        .route("/interface/{ip}", get(interface))
        .route("/plug/vip/{vip}", post(plug_vip))
        .route("/plug/network", post(plug_network))
        .route("/vrrp/upload", put(upload_vrrp))
        .route("/vrrp/{action}", put(vrrp_action));
    Router::new()
        .route("/", get(root))
        .nest("/1.0", v1)
        .fallback(|| async { framework_error(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            framework_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .with_state(agent)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
}

fn framework_error(status: StatusCode, text: &str) -> Response {
    (
        status,
        Json(FrameworkError {
            error: text.to_owned(),
            http_code: status.as_u16(),
        }),
    )
        .into_response()
}

fn ok(status: StatusCode, message: Message) -> Response {
    (status, Json(message)).into_response()
}

fn with_etag(mut response: Response, md5: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(md5) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

fn check_id(id: &str) -> Result<(), AgentError> {
    if is_safe_id(id) {
        Ok(())
    } else {
        Err(AgentError::bad_request(
            "Invalid request",
            format!("invalid id {id:?}"),
        ))
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AgentError> {
    serde_json::from_slice(body)
        .map_err(|e| AgentError::bad_request("Invalid request", e.to_string()))
}

async fn root() -> Json<ApiVersion> {
    Json(ApiVersion {
        api_version: API_VERSION.to_owned(),
    })
}

async fn info_of(agent: &Agent) -> Info {
    Info {
        hostname: host::hostname(),
        haproxy_version: agent.haproxy().version().await,
        api_version: API_VERSION.to_owned(),
        keepalived_version: agent.keepalived().version().await,
        ipvsadm_version: None,
    }
}

async fn info(State(agent): AppState) -> Json<Info> {
    Json(info_of(&agent).await)
}

async fn details(State(agent): AppState) -> Json<Details> {
    let info = info_of(&agent).await;
    let (cpu, cpu_count) = host::cpu();
    let haproxy = agent.haproxy();
    let listeners = haproxy
        .load_balancers()
        .iter()
        .flat_map(|lb| haproxy.listeners(lb))
        .map(|(id, _)| id)
        .collect();
    let base_path = agent.config().haproxy_amphora.base_path;
    let vrrp = agent.keepalived();
    let topology = if vrrp.configured() {
        "ACTIVE_STANDBY"
    } else {
        "SINGLE"
    };
    let vip_held = vrrp.vip_held().await;
    Json(Details {
        hostname: info.hostname,
        haproxy_version: info.haproxy_version,
        api_version: info.api_version,
        keepalived_version: info.keepalived_version,
        ipvsadm_version: None,
        networks: host::networks(),
        active: true,
        haproxy_count: haproxy.running().len() as u64,
        cpu_count,
        cpu,
        memory: host::memory(),
        disk: host::disk(&base_path),
        load: host::load(),
        active_tuned_profiles: String::new(),
        topology: topology.to_owned(),
        topology_status: "OK".to_owned(),
        listeners,
        packages: Default::default(),
        lvs_listener_process_count: 0,
        vip_held,
    })
}

async fn listeners(State(agent): AppState) -> Json<Vec<ListenerStatus>> {
    let haproxy = agent.haproxy();
    let mut out = Vec::new();
    for lb in haproxy.load_balancers() {
        let status = if haproxy.is_running(&lb) {
            "ACTIVE"
        } else {
            "STOPPED"
        };
        for (uuid, kind) in haproxy.listeners(&lb) {
            out.push(ListenerStatus {
                status: status.to_owned(),
                uuid,
                kind: kind.to_owned(),
            });
        }
    }
    Json(out)
}

async fn put_haproxy(
    State(agent): AppState,
    Path((amphora_id, lb_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    check_id(&amphora_id)?;
    check_id(&lb_id)?;
    let md5 = agent.haproxy().upload_config(&lb_id, &body).await?;
    Ok(with_etag(
        ok(StatusCode::ACCEPTED, Message::new("OK")),
        &md5,
    ))
}

async fn get_haproxy(State(agent): AppState, Path(lb_id): Path<String>) -> ApiResult {
    check_id(&lb_id)?;
    let (text, md5) = agent.haproxy().read_config(&lb_id)?;
    let response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response();
    Ok(with_etag(response, &md5))
}

async fn lb_action(
    State(agent): AppState,
    Path((lb_id, action)): Path<(String, String)>,
) -> ApiResult {
    let Some(parsed) = Action::parse(&action) else {
        return Err(AgentError::bad_request(
            "Invalid Request",
            format!("Unknown action: {action}"),
        ));
    };
    check_id(&lb_id)?;
    let outcome = agent.haproxy().act(&lb_id, parsed).await?;
    let details = match outcome {
        Outcome::Started => {
            format!("Configuration file is valid\nhaproxy daemon for {lb_id} started")
        }
        Outcome::AlreadyRunning => format!("haproxy daemon for {lb_id} already running"),
        Outcome::Reloaded => {
            format!("Configuration file is valid\nhaproxy daemon for {lb_id} reloaded")
        }
        Outcome::Stopped => format!("haproxy daemon for {lb_id} stopped"),
        Outcome::NotRunning => format!("haproxy daemon for {lb_id} was not running"),
    };
    Ok(ok(
        StatusCode::ACCEPTED,
        Message::with_details("OK", details),
    ))
}

async fn delete_listeners(State(agent): AppState, Path(lb_id): Path<String>) -> ApiResult {
    check_id(&lb_id)?;
    agent.haproxy().delete(&lb_id).await?;
    agent.certificates().delete_all(&lb_id)?;
    Ok(ok(StatusCode::OK, Message::new("OK")))
}

async fn put_certificate(
    State(agent): AppState,
    Path((lb_id, filename)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    check_id(&lb_id)?;
    let md5 = agent.certificates().put(&lb_id, &filename, &body)?;
    agent.haproxy().forget_validation(&lb_id);
    Ok(with_etag(ok(StatusCode::OK, Message::new("OK")), &md5))
}

async fn get_certificate(
    State(agent): AppState,
    Path((lb_id, filename)): Path<(String, String)>,
) -> ApiResult {
    check_id(&lb_id)?;
    let md5sum = agent.certificates().md5(&lb_id, &filename)?;
    Ok(Json(CertificateMd5 { md5sum }).into_response())
}

async fn delete_certificate(
    State(agent): AppState,
    Path((lb_id, filename)): Path<(String, String)>,
) -> ApiResult {
    check_id(&lb_id)?;
    agent.certificates().delete(&lb_id, &filename)?;
    agent.haproxy().forget_validation(&lb_id);
    Ok(ok(StatusCode::OK, Message::new("OK")))
}

async fn put_server_certificate(State(agent): AppState, body: Bytes) -> ApiResult {
    agent.replace_server_certificate(&body)?;
    Ok(ok(StatusCode::ACCEPTED, Message::new("OK")))
}

async fn put_client_ca(State(agent): AppState, body: Bytes) -> ApiResult {
    agent.replace_client_ca(&body)?;
    Ok(ok(StatusCode::ACCEPTED, Message::new("OK")))
}

async fn put_config(State(agent): AppState, body: Bytes) -> ApiResult {
    agent.replace_config(&body)?;
    Ok(ok(StatusCode::ACCEPTED, Message::new("OK")))
}

async fn interface(Path(ip): Path<String>) -> ApiResult {
    let addr: IpAddr = ip.parse().map_err(|_| {
        AgentError::bad_request(
            "Invalid IP address",
            format!("{ip} is not a valid IP address"),
        )
    })?;
    match netif::interface_of(addr).await? {
        Some(interface) => Ok(Json(InterfaceInfo {
            message: "OK".to_owned(),
            interface,
        })
        .into_response()),
        None => Err(AgentError::not_found(
            "Error interface not found for IP address",
            format!("No interface holds {addr}"),
        )),
    }
}

async fn plug_vip(Path(vip): Path<String>, body: Bytes) -> ApiResult {
    let addr: IpAddr = vip.parse().map_err(|_| {
        AgentError::bad_request("Invalid VIP", format!("{vip} is not a valid IP address"))
    })?;
    let plug: PlugVip = parse_json(&body)?;
    let interface = netif::plug_vip(addr, &plug).await?;
    Ok(ok(
        StatusCode::ACCEPTED,
        Message::with_details("OK", format!("VIP {addr} plugged on interface {interface}")),
    ))
}

async fn plug_network(body: Bytes) -> ApiResult {
    let plug: PlugNetwork = parse_json(&body)?;
    let interface = netif::plug_network(&plug).await?;
    Ok(ok(
        StatusCode::ACCEPTED,
        Message::with_details("OK", format!("Plugged on interface {interface}")),
    ))
}

async fn upload_vrrp(State(agent): AppState, body: Bytes) -> ApiResult {
    let md5 = agent.keepalived().upload_config(&body).await?;
    Ok(with_etag(ok(StatusCode::OK, Message::new("OK")), &md5))
}

async fn vrrp_action(State(agent): AppState, Path(action): Path<String>) -> ApiResult {
    let Some(parsed) = Action::parse(&action) else {
        return Err(AgentError::bad_request(
            "Invalid Request",
            format!("Unknown action: {action}"),
        ));
    };
    let details = match agent.keepalived().act(parsed).await? {
        keepalived::Outcome::Started => "keepalived started",
        keepalived::Outcome::Reloaded => "keepalived reloaded",
        keepalived::Outcome::Stopped => "keepalived stopped",
        keepalived::Outcome::NotRunning => "keepalived was not running",
    };
    Ok(ok(
        StatusCode::ACCEPTED,
        Message::with_details("OK", details),
    ))
}
