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
use crate::auth::{rule, Caller, Policy};
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
    Policy::check(&caller, &rule("quota", "get_all"))?;
    let q = ListQuery {
        project_id: caller.list_scope(None),
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
    Policy::check(&caller, &rule("quota", "get_one"))?;
    caller.check_owner(&project)?;
    let row = stored(&s, &project).await?;
    app::single(StatusCode::OK, "quota", &filled(&s, &row))
}

pub async fn defaults(State(s): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("quota", "get_defaults"))?;
    app::single(StatusCode::OK, "quota", &filled(&s, &Quota::default()))
}

pub async fn project_defaults(
    state: State<AppState>,
    caller: Caller,
    Path(_project): Path<String>,
) -> Result<Response, ApiError> {
    defaults(state, caller).await
}

pub async fn put(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("quota", "put"))?;
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
    Policy::check(&caller, &rule("quota", "delete"))?;
    s.ctx.store.delete_quota(&project).await?;
    tracing::info!(project_id = %project, "quota reset to defaults");
    Ok(StatusCode::ACCEPTED.into_response())
}
