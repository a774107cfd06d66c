//! `/v2/lbaas/pools`: CRUD.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use octavia_api_types::listener::check_pool_compatible;
use octavia_api_types::pool::{PoolPostBody, PoolPutBody, PoolResponse};
use octavia_model::{ListenerId, ObjectKind, Pool, PoolId};
use octavia_render::support;

use crate::app::{self, AppState, OriginalPath};
use crate::auth::{rule, Caller, Policy};
use crate::body::json_body;
use crate::error::ApiError;
use crate::{listener, listing, load_balancer};

/// Fetch a pool the caller may see.
pub async fn fetch(s: &AppState, caller: &Caller, raw: &str) -> Result<Pool, ApiError> {
    let id: PoolId = app::parse_id("pool", raw)?;
    let p = s
        .ctx
        .store
        .get_pool(id)
        .await?
        .ok_or_else(|| ApiError::not_found("pool", raw))?;
    caller.check_owner(&p.project_id)?;
    Ok(p)
}

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Extension(path): Extension<OriginalPath>,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("pool", "get_all"))?;
    let req = listing::parse(ObjectKind::Pool, q.as_deref(), &caller, &s.ctx.settings)?;
    let items = s.ctx.store.list_pools(&req.query).await?;
    let ids: Vec<String> = items.iter().map(|i| i.id.to_string()).collect();
    let resp: Vec<PoolResponse> = items.iter().map(Into::into).collect();
    app::page(
        "pools",
        "pools_links",
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
    Policy::check(&caller, &rule("pool", "post"))?;
    let b: PoolPostBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    // The parents first: a caller who may not touch them learns nothing about the body.
    let listener = match &b.pool.listener_id {
        Some(lid) => Some(listener::fetch(&s, &caller, lid).await?),
        None => None,
    };
    let lb = match (&listener, &b.pool.loadbalancer_id) {
        (Some(l), _) => load_balancer::fetch(&s, &caller, &l.load_balancer_id.to_string()).await?,
        (None, Some(lb_id)) => load_balancer::fetch(&s, &caller, lb_id).await?,
        (None, None) => {
            return Err(ApiError::BadRequest(
                "Invalid input for field/attribute loadbalancer_id. Either loadbalancer_id or listener_id must be specified".to_string(),
            ))
        }
    };
    let project = b.pool.validate()?;
    if let Some(l) = &listener {
        check_pool_compatible("protocol", l.protocol, b.pool.protocol)?;
        if b.pool
            .loadbalancer_id
            .as_ref()
            .is_some_and(|id| *id != l.load_balancer_id.to_string())
        {
            return Err(ApiError::BadRequest(
                "Invalid input for field/attribute loadbalancer_id. The listener is on another load balancer"
                    .to_string(),
            ));
        }
        if l.default_pool_id.is_some() {
            return Err(ApiError::Conflict(format!(
                "Listener {} already has a default pool",
                l.id
            )));
        }
    }
    let listener_id: Option<ListenerId> = listener.map(|l| l.id);
    Caller::child_project(project, &lb.project_id)?;
    let pool = b.pool.into_model(lb.project_id.clone(), lb.id);
    ApiError::provider_supports(lb.provider.as_deref(), support::pool(&pool))?;
    let (pool, job) = s.ctx.store.create_pool(&pool, listener_id).await?;
    tracing::info!(pool_id = %pool.id, job_id = %job, "pool create accepted");
    app::single(StatusCode::CREATED, "pool", &PoolResponse::from(&pool))
}

pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("pool", "get_one"))?;
    let p = fetch(&s, &caller, &id).await?;
    app::single_fields(
        StatusCode::OK,
        "pool",
        &PoolResponse::from(&p),
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
    Policy::check(&caller, &rule("pool", "put"))?;
    let b: PoolPutBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let old = fetch(&s, &caller, &id).await?;
    b.pool.validate(&old)?;
    let mut new = old.clone();
    b.pool.apply(&mut new);
    ApiError::provider_supports(None, support::pool(&new))?;
    let (p, job) = s.ctx.store.update_pool(&new, old.updated_at).await?;
    tracing::info!(pool_id = %p.id, job_id = %job, "pool update accepted");
    app::single(StatusCode::OK, "pool", &PoolResponse::from(&p))
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("pool", "delete"))?;
    let p = fetch(&s, &caller, &id).await?;
    let job = s.ctx.store.delete_pool(p.id).await?;
    tracing::info!(pool_id = %p.id, job_id = %job, "pool delete accepted");
    Ok(app::no_content())
}
