//! `/v2/lbaas/pools/{pool_id}/members`: what a create or update judges, and the batch update.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use octavia_api_types::member::{MemberBatchBody, MemberPostBody, MemberPutBody};
use octavia_db::{ListQuery, MemberBatchChange};
use octavia_model::{Member, Pool};

use crate::app::{self, AppState};
use crate::auth::{rule, Caller};
use crate::body::json_body;
use crate::error::ApiError;
use crate::resource::{self, CreatableChild, Queued, Updatable};

impl CreatableChild for Member {
    type PostBody = MemberPostBody;

    async fn create(s: &AppState, pool: Pool, b: Self::PostBody) -> Queued<Self> {
        let project = b.member.validate(&s.validation)?;
        Caller::child_project(project, &pool.project_id)?;
        let m = b.member.into_model(
            pool.project_id.clone(),
            pool.id,
            pool.health_monitor_id.is_some(),
        );
        Ok(s.ctx.store.create_member(&m).await?)
    }
}

impl Updatable for Member {
    type PutBody = MemberPutBody;

    async fn update(s: &AppState, _caller: &Caller, old: &Self, b: Self::PutBody) -> Queued<Self> {
        b.member.validate()?;
        let mut new = old.clone();
        b.member.apply(&mut new);
        Ok(s.ctx.store.update_member(&new, old.updated_at).await?)
    }
}

/// `PUT /pools/{pool_id}/members[?additive_only=true]`: 202, one job for the batch.
pub async fn batch(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool_id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let additive_only = app::query_flag(q.as_deref(), "additive_only");
    let b: MemberBatchBody =
        json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    // Octavia asks for post, put and (unless additive) delete on the pool's project.
    let pool = resource::fetch_as::<Pool>(&s, &caller, &pool_id, &rule("member", "post")).await?;
    caller.authorize(&rule("member", "put"), Some(&pool.project_id))?;
    if !additive_only {
        caller.authorize(&rule("member", "delete"), Some(&pool.project_id))?;
    }
    b.validate(&s.validation)?;
    let all = ListQuery {
        limit: None,
        ..Default::default()
    };
    let existing = s.ctx.store.list_members(pool.id, &all).await?;
    let mut by_key: HashMap<(Option<std::net::IpAddr>, i64), &Member> = existing
        .iter()
        .map(|m| ((m.ip_address.parse().ok(), m.protocol_port as i64), m))
        .collect();
    let mut change = MemberBatchChange::default();
    let has_monitor = pool.health_monitor_id.is_some();
    for item in b.members {
        match by_key.remove(&(item.ip(), item.protocol_port)) {
            Some(old) => {
                if let Some(new) = item.as_update_of(old) {
                    change.update.push(new);
                }
            }
            None => {
                change
                    .create
                    .push(item.into_model(pool.project_id.clone(), pool.id, has_monitor))
            }
        }
    }
    if !additive_only {
        change.delete = by_key.values().map(|m| m.id).collect();
    }
    if change.create.is_empty() && change.update.is_empty() && change.delete.is_empty() {
        tracing::debug!(pool_id = %pool.id, "member batch changes nothing");
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let job = s.ctx.store.batch_update_members(pool.id, &change).await?;
    tracing::info!(
        pool_id = %pool.id,
        job_id = %job,
        created = change.create.len(),
        updated = change.update.len(),
        deleted = change.delete.len(),
        "member batch update accepted"
    );
    Ok(StatusCode::ACCEPTED.into_response())
}
