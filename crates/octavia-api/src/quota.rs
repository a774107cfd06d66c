//! `/v2/lbaas/quotas`: list, per-project (defaults filled), defaults, set, reset.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use octavia_api_types::quota::{with_defaults, QuotaListItem, QuotaPutBody, QuotaResponse};
use octavia_db::ListQuery;
use octavia_model::Quota;

use crate::app::{self, AppState};
use crate::auth::{rule, Caller};
use crate::body::json_body;
use crate::error::ApiError;

/// `row` with its unset fields filled from the deployment's defaults.
fn filled(s: &AppState, row: &Quota) -> QuotaResponse {
    let d = s.ctx.store.quota_defaults();
    with_defaults(
        row,
        [
            d.load_balancer,
            d.listener,
            d.member,
            d.pool,
            d.health_monitor,
            d.l7policy,
            d.l7rule,
        ],
    )
}

/// The stored quota of `project`, or one that sets nothing.
async fn stored(s: &AppState, project: &str) -> Result<Quota, ApiError> {
    Ok(s.ctx.store.get_quota(project).await?.unwrap_or(Quota {
        project_id: project.to_string(),
        ..Default::default()
    }))
}

pub async fn list(State(s): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let q = ListQuery {
        project_id: caller.list_scope("quota", None)?,
        limit: None,
        ..Default::default()
    };
    let rows = s.ctx.store.list_quotas(&q).await?;
    let items: Vec<QuotaListItem> = rows.iter().map(Into::into).collect();
    Ok(Json(serde_json::json!({"quotas": items, "quotas_links": []})).into_response())
}

pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize(&rule("quota", "get_one"), Some(&project))?;
    let row = stored(&s, &project).await?;
    app::single(StatusCode::OK, "quota", &filled(&s, &row))
}

/// `GET /quotas/defaults`: the defaults, for the caller's own project.
pub async fn defaults(State(s): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.authorize_own(&rule("quota", "get_defaults"))?;
    app::single(StatusCode::OK, "quota", &filled(&s, &Quota::default()))
}

/// `GET /quotas/{project}/default`.
pub async fn project_defaults(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize(&rule("quota", "get_defaults"), Some(&project))?;
    app::single(StatusCode::OK, "quota", &filled(&s, &Quota::default()))
}

pub async fn put(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.authorize(&rule("quota", "put"), Some(&project))?;
    let b: QuotaPutBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let mut row = stored(&s, &project).await?;
    b.quota.apply_checked(&mut row)?;
    let saved = s.ctx.store.set_quota(&row).await?;
    tracing::info!(project_id = %project, "quota updated");
    app::single(StatusCode::ACCEPTED, "quota", &filled(&s, &saved))
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize(&rule("quota", "delete"), Some(&project))?;
    s.ctx.store.delete_quota(&project).await?;
    tracing::info!(project_id = %project, "quota reset to defaults");
    Ok(StatusCode::ACCEPTED.into_response())
}
