//! `/v2/lbaas/listeners`: CRUD and stats.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use octavia_api_types::listener::{
    check_cidrs_match_vips, check_pool_compatible, ListenerPostBody, ListenerPutBody,
    ListenerResponse,
};
use octavia_api_types::stats::StatsResponse;
use octavia_model::{Listener, LoadBalancer, ObjectKind, PoolId};
use octavia_render::support;

use crate::app::{self, AppState};
use crate::auth::{rule, Caller, Policy};
use crate::body::json_body;
use crate::error::ApiError;
use crate::resource;

async fn check_default_pool(
    s: &AppState,
    listener: &Listener,
    pool: Option<PoolId>,
) -> Result<(), ApiError> {
    let Some(pid) = pool else { return Ok(()) };
    let pool = s
        .ctx
        .store
        .get_pool(pid)
        .await?
        .ok_or_else(|| ApiError::not_found(ObjectKind::Pool, pid))?;
    if pool.load_balancer_id != listener.load_balancer_id {
        return Err(ApiError::BadRequest(format!(
            "Invalid input for field/attribute default_pool_id. Pool {pid} is not on load balancer {}",
            listener.load_balancer_id
        )));
    }
    check_pool_compatible("default_pool_id", listener.protocol, pool.protocol)?;
    Ok(())
}

/// Every allowed CIDR must share its IP version with a VIP of the load balancer (400, as
/// Octavia: a CIDR no VIP can match would silently block every client of that family).
fn check_allowed_cidrs(listener: &Listener, lb: &LoadBalancer) -> Result<(), ApiError> {
    let vips: Vec<String> = lb.vip.ip_address.iter().cloned().collect();
    if vips.is_empty() {
        return Ok(());
    }
    check_cidrs_match_vips(&listener.allowed_cidrs, &vips)
        .map_err(|detail| ApiError::BadRequest(format!("Validation failure: {detail}")))
}

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("listener", "post"))?;
    let b: ListenerPostBody =
        json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let lb = resource::fetch::<LoadBalancer>(&s, &caller, &b.listener.loadbalancer_id).await?;
    let project = b.listener.validate(&s.validation)?;
    Caller::child_project(project, &lb.project_id)?;
    let l = b
        .listener
        .into_model(lb.project_id.clone(), lb.id, &s.validation);
    ApiError::provider_supports(lb.provider.as_deref(), support::listener(&l))?;
    check_default_pool(&s, &l, l.default_pool_id).await?;
    check_allowed_cidrs(&l, &lb)?;
    let (l, job) = s.ctx.store.create_listener(&l).await?;
    tracing::info!(listener_id = %l.id, job_id = %job, "listener create accepted");
    app::single(StatusCode::CREATED, "listener", &ListenerResponse::from(&l))
}

pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("listener", "put"))?;
    let b: ListenerPutBody =
        json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let old = resource::fetch::<Listener>(&s, &caller, &id).await?;
    b.listener.validate(&old)?;
    let mut new = old.clone();
    b.listener.apply(&mut new, &s.validation);
    if new.default_pool_id != old.default_pool_id {
        check_default_pool(&s, &new, new.default_pool_id).await?;
    }
    if new.allowed_cidrs != old.allowed_cidrs {
        let lb =
            resource::fetch::<LoadBalancer>(&s, &caller, &new.load_balancer_id.to_string()).await?;
        check_allowed_cidrs(&new, &lb)?;
    }
    let (l, job) = s.ctx.store.update_listener(&new, old.updated_at).await?;
    tracing::info!(listener_id = %l.id, job_id = %job, "listener update accepted");
    app::single(StatusCode::OK, "listener", &ListenerResponse::from(&l))
}

pub async fn stats(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("listener", "get_stats"))?;
    let l = resource::fetch::<Listener>(&s, &caller, &id).await?;
    let st = s.ctx.store.listener_stats(l.id).await?;
    app::single(StatusCode::OK, "stats", &StatsResponse::from(&st))
}
