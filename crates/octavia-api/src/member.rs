//! `/v2/lbaas/pools/{pool_id}/members`: CRUD and the batch update.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use octavia_api_types::member::{MemberBatchBody, MemberPostBody, MemberPutBody, MemberResponse};
use octavia_db::{ListQuery, MemberBatchChange};
use octavia_model::{Member, MemberId, ObjectKind, Pool};

use crate::app::{self, AppState, OriginalPath};
use crate::auth::{rule, Caller, Policy};
use crate::body::json_body;
use crate::error::ApiError;
use crate::listing;
use crate::resource;

async fn fetch(s: &AppState, caller: &Caller, pool: &Pool, raw: &str) -> Result<Member, ApiError> {
    let id: MemberId = app::parse_id(ObjectKind::Member, raw)?;
    let m = s
        .ctx
        .store
        .get_member(id)
        .await?
        .filter(|m| m.pool_id == pool.id)
        .ok_or_else(|| ApiError::not_found(ObjectKind::Member, raw))?;
    caller.check_owner(&m.project_id)?;
    Ok(m)
}

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool_id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Extension(path): Extension<OriginalPath>,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("member", "get_all"))?;
    let pool = resource::fetch::<Pool>(&s, &caller, &pool_id).await?;
    let req = listing::parse(ObjectKind::Member, q.as_deref(), &caller, &s.ctx.settings)?;
    let items = s.ctx.store.list_members(pool.id, &req.query).await?;
    let ids: Vec<String> = items.iter().map(|i| i.id.to_string()).collect();
    let resp: Vec<MemberResponse> = items.iter().map(Into::into).collect();
    app::page(
        "members",
        "members_links",
        &resp,
        &ids,
        &req,
        &s.collection_url(&headers, &path),
    )
}

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Path(pool_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("member", "post"))?;
    let b: MemberPostBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let pool = resource::fetch::<Pool>(&s, &caller, &pool_id).await?;
    let project = b.member.validate(&s.validation)?;
    Caller::child_project(project, &pool.project_id)?;
    let m = b.member.into_model(
        pool.project_id.clone(),
        pool.id,
        pool.health_monitor_id.is_some(),
    );
    let (m, job) = s.ctx.store.create_member(&m).await?;
    tracing::info!(member_id = %m.id, job_id = %job, "member create accepted");
    app::single(StatusCode::CREATED, "member", &MemberResponse::from(&m))
}

pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path((pool_id, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("member", "get_one"))?;
    let pool = resource::fetch::<Pool>(&s, &caller, &pool_id).await?;
    let m = fetch(&s, &caller, &pool, &id).await?;
    app::single_fields(
        StatusCode::OK,
        "member",
        &MemberResponse::from(&m),
        &app::fields_of(q.as_deref()),
    )
}

pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path((pool_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("member", "put"))?;
    let b: MemberPutBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let pool = resource::fetch::<Pool>(&s, &caller, &pool_id).await?;
    let old = fetch(&s, &caller, &pool, &id).await?;
    b.member.validate()?;
    let mut new = old.clone();
    b.member.apply(&mut new);
    let (m, job) = s.ctx.store.update_member(&new, old.updated_at).await?;
    tracing::info!(member_id = %m.id, job_id = %job, "member update accepted");
    app::single(StatusCode::OK, "member", &MemberResponse::from(&m))
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path((pool_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("member", "delete"))?;
    let pool = resource::fetch::<Pool>(&s, &caller, &pool_id).await?;
    let m = fetch(&s, &caller, &pool, &id).await?;
    let job = s.ctx.store.delete_member(m.id).await?;
    tracing::info!(member_id = %m.id, job_id = %job, "member delete accepted");
    Ok(app::no_content())
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
    let additive_only =
        serde_urlencoded::from_str::<Vec<(String, String)>>(q.as_deref().unwrap_or(""))
            .unwrap_or_default()
            .iter()
            .any(|(k, v)| k == "additive_only" && v.eq_ignore_ascii_case("true"));
    Policy::check(&caller, &rule("member", "post"))?;
    Policy::check(&caller, &rule("member", "put"))?;
    if !additive_only {
        Policy::check(&caller, &rule("member", "delete"))?;
    }
    let b: MemberBatchBody =
        json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let pool = resource::fetch::<Pool>(&s, &caller, &pool_id).await?;
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
