//! `/v2/lbaas/healthmonitors`: CRUD.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use octavia_api_types::health_monitor::{
    check_against_pool, HealthMonitorPostBody, HealthMonitorPutBody, HealthMonitorResponse,
};
use octavia_model::{HealthMonitor, Pool};
use octavia_render::support;

use crate::app::{self, AppState};
use crate::auth::{rule, Caller, Policy};
use crate::body::json_body;
use crate::error::ApiError;
use crate::resource;

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("healthmonitor", "post"))?;
    let b: HealthMonitorPostBody =
        json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let pool = resource::fetch::<Pool>(&s, &caller, &b.healthmonitor.pool_id).await?;
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
    let old = resource::fetch::<HealthMonitor>(&s, &caller, &id).await?;
    let pool = resource::fetch::<Pool>(&s, &caller, &old.pool_id.to_string()).await?;
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
