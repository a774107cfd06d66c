//! `/v2/lbaas/healthmonitors`: CRUD.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use octavia_api_types::health_monitor::{
    check_against_pool, HealthMonitorPostBody, HealthMonitorPutBody, HealthMonitorResponse,
};
use octavia_model::{HealthMonitor, HealthMonitorId, ObjectKind};
use octavia_render::support;

use crate::app::{self, AppState, OriginalPath};
use crate::auth::{rule, Caller, Policy};
use crate::body::json_body;
use crate::error::ApiError;
use crate::{listing, pool};

async fn fetch(s: &AppState, caller: &Caller, raw: &str) -> Result<HealthMonitor, ApiError> {
    let id: HealthMonitorId = app::parse_id("health_monitor", raw)?;
    let h = s
        .ctx
        .store
        .get_health_monitor(id)
        .await?
        .ok_or_else(|| ApiError::not_found("health_monitor", raw))?;
    caller.check_owner(&h.project_id)?;
    Ok(h)
}

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Extension(path): Extension<OriginalPath>,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("healthmonitor", "get_all"))?;
    let req = listing::parse(
        ObjectKind::HealthMonitor,
        q.as_deref(),
        &caller,
        &s.ctx.settings,
    )?;
    let items = s.ctx.store.list_health_monitors(&req.query).await?;
    let ids: Vec<String> = items.iter().map(|i| i.id.to_string()).collect();
    let resp: Vec<HealthMonitorResponse> = items.iter().map(Into::into).collect();
    app::page(
        "healthmonitors",
        "healthmonitors_links",
        &resp,
        &ids,
        &req,
        &s.collection_url(&headers, &path),
    )
}

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("healthmonitor", "post"))?;
    let b: HealthMonitorPostBody =
        json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let pool = pool::fetch(&s, &caller, &b.healthmonitor.pool_id).await?;
    let project = b.healthmonitor.validate(&s.validation)?;
    Caller::child_project(project, &pool.project_id)?;
    check_against_pool(
        b.healthmonitor.monitor_type,
        b.healthmonitor.delay,
        pool.protocol,
        &s.validation,
    )?;
    let hm = b.healthmonitor.into_model(pool.project_id.clone(), pool.id);
    ApiError::provider_supports(None, support::health_monitor(&hm))?;
    let (hm, job) = s.ctx.store.create_health_monitor(&hm).await?;
    tracing::info!(health_monitor_id = %hm.id, job_id = %job, "health monitor create accepted");
    app::single(
        StatusCode::CREATED,
        "healthmonitor",
        &HealthMonitorResponse::from(&hm),
    )
}

pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("healthmonitor", "get_one"))?;
    let h = fetch(&s, &caller, &id).await?;
    app::single_fields(
        StatusCode::OK,
        "healthmonitor",
        &HealthMonitorResponse::from(&h),
        &app::fields_of(q.as_deref()),
    )
}

pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("healthmonitor", "put"))?;
    let b: HealthMonitorPutBody =
        json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let old = fetch(&s, &caller, &id).await?;
    let pool = pool::fetch(&s, &caller, &old.pool_id.to_string()).await?;
    let new = b
        .healthmonitor
        .apply_checked(&old, pool.protocol, &s.validation)?;
    ApiError::provider_supports(None, support::health_monitor(&new))?;
    let (h, job) = s
        .ctx
        .store
        .update_health_monitor(&new, old.updated_at)
        .await?;
    tracing::info!(health_monitor_id = %h.id, job_id = %job, "health monitor update accepted");
    app::single(
        StatusCode::OK,
        "healthmonitor",
        &HealthMonitorResponse::from(&h),
    )
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("healthmonitor", "delete"))?;
    let h = fetch(&s, &caller, &id).await?;
    let job = s.ctx.store.delete_health_monitor(h.id).await?;
    tracing::info!(health_monitor_id = %h.id, job_id = %job, "health monitor delete accepted");
    Ok(app::no_content())
}
