//! `/v2/lbaas/l7policies` and their rules (`/l7policies/{id}/rules`, envelope `rule`).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use octavia_api_types::l7policy::{L7PolicyPostBody, L7PolicyPutBody, L7PolicyResponse};
use octavia_api_types::l7rule::{L7RulePostBody, L7RulePutBody, L7RuleResponse};
use octavia_api_types::listener::check_pool_compatible;
use octavia_model::{L7Policy, L7Rule, L7RuleId, Listener, ObjectKind};
use octavia_render::support;

use crate::app::{self, AppState, OriginalPath};
use crate::auth::{rule, Caller, Policy};
use crate::body::json_body;
use crate::error::ApiError;
use crate::listing;
use crate::resource;

async fn check_redirect_pool(s: &AppState, l: &Listener, p: &L7Policy) -> Result<(), ApiError> {
    let Some(pid) = p.redirect_pool_id else {
        return Ok(());
    };
    let pool = s
        .ctx
        .store
        .get_pool(pid)
        .await?
        .ok_or_else(|| ApiError::not_found(ObjectKind::Pool, pid))?;
    if pool.load_balancer_id != l.load_balancer_id {
        return Err(ApiError::BadRequest(format!(
            "Invalid input for field/attribute redirect_pool_id. Pool {pid} is not on the listener's load balancer"
        )));
    }
    check_pool_compatible("redirect_pool_id", l.protocol, pool.protocol)?;
    Ok(())
}

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("l7policy", "post"))?;
    let b: L7PolicyPostBody =
        json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let l = resource::fetch::<Listener>(&s, &caller, &b.l7policy.listener_id).await?;
    let project = b.l7policy.validate()?;
    Caller::child_project(project, &l.project_id)?;
    ApiError::provider_supports(None, support::l7policy(l.protocol))?;
    let p = b.l7policy.into_model(l.project_id.clone(), l.id)?;
    check_redirect_pool(&s, &l, &p).await?;
    let (p, job) = s.ctx.store.create_l7policy(&p).await?;
    tracing::info!(l7policy_id = %p.id, job_id = %job, "l7 policy create accepted");
    app::single(StatusCode::CREATED, "l7policy", &L7PolicyResponse::from(&p))
}

pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("l7policy", "put"))?;
    let b: L7PolicyPutBody =
        json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let old = resource::fetch::<L7Policy>(&s, &caller, &id).await?;
    let new = b.l7policy.apply_checked(&old)?;
    if new.redirect_pool_id != old.redirect_pool_id {
        let l = resource::fetch::<Listener>(&s, &caller, &old.listener_id.to_string()).await?;
        check_redirect_pool(&s, &l, &new).await?;
    }
    let (p, job) = s.ctx.store.update_l7policy(&new, old.updated_at).await?;
    tracing::info!(l7policy_id = %p.id, job_id = %job, "l7 policy update accepted");
    app::single(StatusCode::OK, "l7policy", &L7PolicyResponse::from(&p))
}

async fn fetch_rule(
    s: &AppState,
    caller: &Caller,
    policy: &L7Policy,
    raw: &str,
) -> Result<L7Rule, ApiError> {
    let id: L7RuleId = app::parse_id(ObjectKind::L7Rule, raw)?;
    let r = s
        .ctx
        .store
        .get_l7rule(id)
        .await?
        .filter(|r| r.l7policy_id == policy.id)
        .ok_or_else(|| ApiError::not_found(ObjectKind::L7Rule, raw))?;
    caller.check_owner(&r.project_id)?;
    Ok(r)
}

pub async fn list_rules(
    State(s): State<AppState>,
    caller: Caller,
    Path(policy_id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Extension(path): Extension<OriginalPath>,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("l7rule", "get_all"))?;
    let p = resource::fetch::<L7Policy>(&s, &caller, &policy_id).await?;
    let req = listing::parse(ObjectKind::L7Rule, q.as_deref(), &caller, &s.ctx.settings)?;
    let items = s.ctx.store.list_l7rules(p.id, &req.query).await?;
    let ids: Vec<String> = items.iter().map(|i| i.id.to_string()).collect();
    let resp: Vec<L7RuleResponse> = items.iter().map(Into::into).collect();
    app::page(
        "rules",
        "rules_links",
        &resp,
        &ids,
        &req,
        &s.collection_url(&headers, &path),
    )
}

pub async fn create_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path(policy_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("l7rule", "post"))?;
    let b: L7RulePostBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let p = resource::fetch::<L7Policy>(&s, &caller, &policy_id).await?;
    let project = b.rule.validate()?;
    Caller::child_project(project, &p.project_id)?;
    let r = b.rule.into_model(p.project_id.clone(), p.id);
    ApiError::provider_supports(None, support::l7rule(&r))?;
    let (r, job) = s.ctx.store.create_l7rule(&r).await?;
    tracing::info!(l7rule_id = %r.id, job_id = %job, "l7 rule create accepted");
    app::single(StatusCode::CREATED, "rule", &L7RuleResponse::from(&r))
}

pub async fn get_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path((policy_id, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("l7rule", "get_one"))?;
    let p = resource::fetch::<L7Policy>(&s, &caller, &policy_id).await?;
    let r = fetch_rule(&s, &caller, &p, &id).await?;
    app::single_fields(
        StatusCode::OK,
        "rule",
        &L7RuleResponse::from(&r),
        &app::fields_of(q.as_deref()),
    )
}

pub async fn update_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path((policy_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("l7rule", "put"))?;
    let b: L7RulePutBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let p = resource::fetch::<L7Policy>(&s, &caller, &policy_id).await?;
    let old = fetch_rule(&s, &caller, &p, &id).await?;
    let new = b.rule.apply_checked(&old)?;
    ApiError::provider_supports(None, support::l7rule(&new))?;
    let (r, job) = s.ctx.store.update_l7rule(&new, old.updated_at).await?;
    tracing::info!(l7rule_id = %r.id, job_id = %job, "l7 rule update accepted");
    app::single(StatusCode::OK, "rule", &L7RuleResponse::from(&r))
}

pub async fn delete_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path((policy_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule("l7rule", "delete"))?;
    let p = resource::fetch::<L7Policy>(&s, &caller, &policy_id).await?;
    let r = fetch_rule(&s, &caller, &p, &id).await?;
    let job = s.ctx.store.delete_l7rule(r.id).await?;
    tracing::info!(l7rule_id = %r.id, job_id = %job, "l7 rule delete accepted");
    Ok(app::no_content())
}
