//! The Octavia v2 REST API server (axum).
//!
//! [`router`] builds the whole HTTP surface from an [`ApiContext`]: the version
//! document, every `/v2/lbaas/...` resource (also mounted directly under `/v2/...` and
//! `/v2.0/...`, with an optional `.json` suffix), the operator's catalogue (flavors,
//! availability zones and their profiles), the admin amphora API and `/metrics`.
//! Handlers validate with `octavia-api-types`, ask the [`auth::Caller`] (Octavia's policy), and write
//! through `octavia_db::Store` (which locks, writes and enqueues the job atomically).
//! Errors become Octavia's fault body in exactly one place ([`error::ApiError`]).

pub mod app;
pub mod auth;
pub mod availability_zone;
pub mod body;
pub mod catalogue;
pub mod error;
pub mod flavor;
pub mod graph;
pub mod health_monitor;
pub mod l7policy;
pub mod listener;
pub mod listing;
pub mod load_balancer;
pub mod member;
pub mod misc;
pub mod network;
pub mod pool;
pub mod quota;
pub mod resource;
pub mod settings;
pub mod vip;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use octavia_model::{
    Amphora, AvailabilityZone, AvailabilityZoneProfile, Flavor, FlavorProfile, HealthMonitor,
    L7Policy, L7Rule, Listener, LoadBalancer, Member, Pool,
};
use tower::ServiceExt;
use tracing::Instrument;

use crate::catalogue::Catalogued;
use crate::resource::{Child, Collection, Creatable, CreatableChild, Removable, Updatable};

pub use app::{AppState, OriginalPath};
pub use error::ApiError;
pub use settings::{ApiSettings, AuthStrategy};

/// Renders the process's Prometheus metrics (installed by the binary).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the API serves from.
#[derive(Clone)]
pub struct ApiContext {
    /// The store all reads and writes go through.
    pub store: octavia_db::Store,
    /// Deployment settings.
    pub settings: ApiSettings,
    /// `GET /metrics` body; `None` → 404.
    pub metrics_render: Option<MetricsRender>,
    /// Read-only network lookups: the VIP of a new load balancer is checked against them
    /// ([`vip`]), and clients that resolve `--vip-subnet-id` through this endpoint are
    /// answered from them ([`network`]). `None` → VIPs are taken as given and those
    /// lookups answer 404. The API never changes anything through it.
    pub network: Option<Arc<dyn octavia_drivers::NetworkLookup>>,
}

/// The header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

/// Build the router. Refuses settings it cannot serve (a policy file that does not parse,
/// Keystone settings without an `auth_url`) with [`ApiError::Config`].
pub fn router(ctx: ApiContext) -> Result<Router, ApiError> {
    let validation = Arc::new(ctx.settings.validation());
    let policy = auth::PolicyEngine::new(ctx.settings.policy.clone())
        .map_err(|e| ApiError::Config(e.to_string()))?;
    let auth = match ctx.settings.auth_strategy {
        AuthStrategy::Noauth => auth::Authenticator::Noauth,
        AuthStrategy::Keystone => auth::Authenticator::Keystone(Box::new(
            auth::KeystoneAuth::new(ctx.settings.keystone.clone()).map_err(ApiError::Config)?,
        )),
    };
    let state = AppState {
        ctx: Arc::new(ctx),
        validation,
        auth: Arc::new(auth),
        policy,
    };
    let inner = routes()
        .fallback(misc::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state);
    let normalized = inner.map_request(normalize);
    Ok(Router::new().fallback_service(normalized))
}

fn routes() -> Router<AppState> {
    use axum::routing::get as g;
    Router::new()
        .route("/", g(misc::versions))
        .route("/v2", g(misc::v2))
        .route("/v2/octavia", g(misc::v2))
        .route("/metrics", g(misc::metrics))
        .route("/v2/subnets", g(network::list_subnets))
        .route("/v2/subnets/{id}", g(network::get_subnet))
        .route("/projects", g(network::identity_refused))
        .route("/projects/{id}", g(network::identity_refused))
        .route("/v3/projects", g(network::identity_refused))
        .route("/v3/projects/{id}", g(network::identity_refused))
        .route(
            "/v2/loadbalancers",
            g(resource::list::<LoadBalancer>).post(graph::create),
        )
        .route(
            "/v2/loadbalancers/{id}",
            g(resource::get::<LoadBalancer>)
                .put(resource::update::<LoadBalancer>)
                .delete(load_balancer::delete),
        )
        .route("/v2/loadbalancers/{id}/status", g(load_balancer::status))
        .route("/v2/loadbalancers/{id}/statuses", g(load_balancer::status))
        .route(
            "/v2/loadbalancers/{id}/stats",
            g(resource::stats::<LoadBalancer>),
        )
        .route(
            "/v2/loadbalancers/{id}/failover",
            axum::routing::put(load_balancer::failover),
        )
        .route("/v2/listeners", list_create::<Listener>())
        .route("/v2/listeners/{id}", get_put_delete::<Listener>())
        .route("/v2/listeners/{id}/stats", g(resource::stats::<Listener>))
        .route("/v2/pools", list_create::<Pool>())
        .route("/v2/pools/{id}", get_put_delete::<Pool>())
        .route(
            "/v2/pools/{pool_id}/members",
            list_create_children::<Member>().put(member::batch),
        )
        .route(
            "/v2/pools/{pool_id}/members/{id}",
            get_put_delete_child::<Member>(),
        )
        .route("/v2/healthmonitors", list_create::<HealthMonitor>())
        .route("/v2/healthmonitors/{id}", get_put_delete::<HealthMonitor>())
        .route("/v2/l7policies", list_create::<L7Policy>())
        .route("/v2/l7policies/{id}", get_put_delete::<L7Policy>())
        .route(
            "/v2/l7policies/{id}/rules",
            list_create_children::<L7Rule>(),
        )
        .route(
            "/v2/l7policies/{id}/rules/{rule_id}",
            get_put_delete_child::<L7Rule>(),
        )
        .route("/v2/quotas", g(quota::list))
        .route("/v2/quotas/defaults", g(quota::defaults))
        .route(
            "/v2/quotas/{project}",
            g(quota::get).put(quota::put).delete(quota::delete),
        )
        .route("/v2/quotas/{project}/default", g(quota::project_defaults))
        .route("/v2/flavors", catalogue_list_create::<Flavor>())
        .route("/v2/flavors/{id}", catalogue_get_put_delete::<Flavor>())
        .route(
            "/v2/flavorprofiles",
            catalogue_list_create::<FlavorProfile>(),
        )
        .route(
            "/v2/flavorprofiles/{id}",
            catalogue_get_put_delete::<FlavorProfile>(),
        )
        .route(
            "/v2/availabilityzones",
            catalogue_list_create::<AvailabilityZone>(),
        )
        .route(
            "/v2/availabilityzones/{name}",
            catalogue_get_put_delete::<AvailabilityZone>(),
        )
        .route(
            "/v2/availabilityzoneprofiles",
            catalogue_list_create::<AvailabilityZoneProfile>(),
        )
        .route(
            "/v2/availabilityzoneprofiles/{id}",
            catalogue_get_put_delete::<AvailabilityZoneProfile>(),
        )
        .route("/v2/providers", g(misc::providers))
        .route(
            "/v2/providers/{provider}/flavor_capabilities",
            g(misc::flavor_capabilities),
        )
        .route(
            "/v2/providers/{provider}/availability_zone_capabilities",
            g(misc::availability_zone_capabilities),
        )
        .route("/v2/octavia/amphorae", g(resource::list::<Amphora>))
        .route(
            "/v2/octavia/amphorae/{id}",
            g(resource::get::<Amphora>).delete(misc::delete_amphora),
        )
        .route(
            "/v2/octavia/amphorae/{id}/failover",
            axum::routing::put(misc::failover_amphora),
        )
        .route(
            "/v2/octavia/amphorae/{id}/config",
            axum::routing::put(misc::update_amphora_config),
        )
        .route("/v2/octavia/amphorae/{id}/stats", g(misc::amphora_stats))
}

/// `GET` (a page) and `POST` of a top-level collection.
fn list_create<R: Creatable>() -> MethodRouter<AppState> {
    get(resource::list::<R>).post(resource::create::<R>)
}

/// `GET` (a page) and `POST` of a collection of the operator's catalogue.
fn catalogue_list_create<R: Catalogued>() -> MethodRouter<AppState> {
    get(catalogue::list::<R>).post(catalogue::create::<R>)
}

/// `GET`, `PUT` and `DELETE` of one record of the operator's catalogue.
fn catalogue_get_put_delete<R: Catalogued>() -> MethodRouter<AppState> {
    get(catalogue::get::<R>)
        .put(catalogue::update::<R>)
        .delete(catalogue::delete::<R>)
}

/// `GET`, `PUT` and `DELETE` of one object of a top-level collection.
fn get_put_delete<R: Collection + Updatable + Removable>() -> MethodRouter<AppState> {
    get(resource::get::<R>)
        .put(resource::update::<R>)
        .delete(resource::delete::<R>)
}

/// `GET` (a page) and `POST` of a collection under an object of another.
fn list_create_children<R: CreatableChild>() -> MethodRouter<AppState> {
    get(resource::list_children::<R>).post(resource::create_child::<R>)
}

/// `GET`, `PUT` and `DELETE` of one object of a collection under an object of another.
fn get_put_delete_child<R: Child + Updatable + Removable>() -> MethodRouter<AppState> {
    get(resource::get_child::<R>)
        .put(resource::update_child::<R>)
        .delete(resource::delete_child::<R>)
}

/// Map every accepted spelling of a path onto the one the router knows:
/// `/v2.0/...` → `/v2/...`, `/v2/lbaas/...` → `/v2/...`, a `.json` suffix dropped,
/// a trailing `/` dropped. The client's path is kept as [`OriginalPath`] for links.
pub fn normalize_path(path: &str) -> String {
    let mut p = path.strip_suffix(".json").unwrap_or(path).to_string();
    while p.len() > 1 && p.ends_with('/') {
        p.pop();
    }
    for (from, to) in [("/v2.0", "/v2"), ("/v2/lbaas", "/v2")] {
        if p == from || p.starts_with(&format!("{from}/")) {
            p = format!("{to}{}", &p[from.len()..]);
        }
    }
    if p.is_empty() {
        p.push('/');
    }
    p
}

fn normalize(mut req: Request) -> Request {
    let original = req.uri().path().to_string();
    let path = normalize_path(&original);
    if path != original {
        let pq = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = pq.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req.extensions_mut().insert(OriginalPath(original));
    req
}

/// Whether an `Accept` header allows a JSON answer (empty is fine).
fn accepts_json(accept: &str) -> bool {
    accept.trim().is_empty()
        || accept.split(',').any(|item| {
            let mime = item.split(';').next().unwrap_or_default().trim();
            matches!(mime, "application/json" | "application/*" | "*/*" | "*")
                || (mime == "text/plain")
        })
}

/// Per request: request id, span, Accept check, early size check, latency histogram.
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span =
        tracing::info_span!("request", method = %method, route = %route, request_id = %request_id);
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let too_big = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > s.ctx.settings.max_request_body_size);
    let mut resp = if !accepts_json(&accept) && route != "/metrics" {
        let body = serde_json::json!({"errors": [{
            "status": 406,
            "title": "Not Acceptable",
            "detail": format!("Only application/json is available, not {accept}"),
            "request_id": request_id,
        }]});
        (StatusCode::NOT_ACCEPTABLE, axum::Json(body)).into_response()
    } else if too_big {
        body::too_large(s.ctx.settings.max_request_body_size).into_response()
    } else {
        next.run(req).instrument(span.clone()).await
    };
    let status = resp.status().as_u16();
    let elapsed = start.elapsed().as_secs_f64();
    metrics::histogram!(
        "octavia_api_request_duration_seconds",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .record(elapsed);
    span.in_scope(|| tracing::debug!(status, elapsed_s = elapsed, "request done"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise() {
        for (from, to) in [
            ("/", "/"),
            ("/v2", "/v2"),
            ("/v2.0", "/v2"),
            ("/v2.0/lbaas/loadbalancers", "/v2/loadbalancers"),
            ("/v2/lbaas/loadbalancers.json", "/v2/loadbalancers"),
            ("/v2/lbaas", "/v2"),
            ("/v2/lbaas/pools/x/members/", "/v2/pools/x/members"),
            ("/v2/octavia/amphorae", "/v2/octavia/amphorae"),
            ("/v2/lbaasx", "/v2/lbaasx"),
        ] {
            assert_eq!(normalize_path(from), to, "{from}");
        }
    }

    #[test]
    fn accept_rule() {
        assert!(accepts_json(""));
        assert!(accepts_json("application/json"));
        assert!(accepts_json("text/html, */*;q=0.1"));
        assert!(!accepts_json("application/xml"));
    }
}
