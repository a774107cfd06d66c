//! `/v2/lbaas/loadbalancers`: what a create or update judges, cascade delete, status tree
//! and failover.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use octavia_api_types::load_balancer::{LoadBalancerPostBody, LoadBalancerPutBody};
use octavia_model::{LoadBalancer, ObjectKind};

use crate::app::{self, AppState};
use crate::auth::{rule, Caller};
use crate::error::ApiError;
use crate::resource::{self, Creatable, Queued, Resource, Updatable};

impl Creatable for LoadBalancer {
    type PostBody = LoadBalancerPostBody;

    async fn create(s: &AppState, caller: &Caller, b: Self::PostBody) -> Queued<Self> {
        let lb = new_load_balancer(s, caller, b).await?;
        Ok(s.ctx.store.create_load_balancer(&lb).await?)
    }
}

/// The load balancer a POST body asks for, not stored yet (a plain create stores it alone,
/// a single-call create with its tree, `crate::graph`): whose it is and the policy for that
/// project before anything about the body is judged, Octavia's validation, the provider,
/// the flavor and availability zone applied, the VIP completed from the network.
pub(crate) async fn new_load_balancer(
    s: &AppState,
    caller: &Caller,
    b: LoadBalancerPostBody,
) -> Result<LoadBalancer, ApiError> {
    let project = b
        .loadbalancer
        .project_id
        .clone()
        .or_else(|| b.loadbalancer.tenant_id.clone());
    let project = caller.owning_project(project, &rule(LoadBalancer::RULE, "post"))?;
    b.loadbalancer.validate()?;
    let mut post = b.loadbalancer;
    // The flavor decides the provider (when the body names none) and the topology; the
    // availability zone may restrict the VIP's network.
    let topology = crate::flavor::apply_to_new_load_balancer(s, &mut post).await?;
    let provider = post.provider.clone().unwrap_or_default();
    let zone = post.availability_zone.clone();
    let zone =
        crate::availability_zone::for_new_load_balancer(s, zone.as_deref(), &provider).await?;
    let mut lb = post.into_model(project, topology);
    if let Some(lookup) = &s.ctx.network {
        crate::vip::resolve(lookup.as_ref(), &mut lb.vip).await?;
    }
    crate::vip::check_network_allowed(&lb.vip, &zone.valid_vip_networks)?;
    Ok(lb)
}

impl Updatable for LoadBalancer {
    type PutBody = LoadBalancerPutBody;

    async fn update(s: &AppState, _caller: &Caller, old: &Self, b: Self::PutBody) -> Queued<Self> {
        b.loadbalancer.validate()?;
        let mut new = old.clone();
        b.loadbalancer.apply(&mut new);
        Ok(s.ctx
            .store
            .update_load_balancer(&new, old.updated_at)
            .await?)
    }
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let cascade = app::query_flag(q.as_deref(), "cascade");
    let lb = resource::fetch::<LoadBalancer>(&s, &caller, &id, "delete").await?;
    let job = s.ctx.store.delete_load_balancer(lb.id, cascade).await?;
    tracing::info!(lb_id = %lb.id, job_id = %job, cascade, "load balancer delete accepted");
    Ok(app::no_content())
}

pub async fn status(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let lb = resource::fetch::<LoadBalancer>(&s, &caller, &id, "get_status").await?;
    let tree = s
        .ctx
        .store
        .load_balancer_tree(lb.id)
        .await?
        .ok_or_else(|| ApiError::not_found(ObjectKind::LoadBalancer, &id))?;
    let doc = octavia_api_types::status::build(
        &tree.load_balancer,
        &tree.listeners,
        &tree.pools,
        &tree.members,
        &tree.health_monitors,
    );
    Ok(axum::response::IntoResponse::into_response(axum::Json(
        app::to_value(&doc)?,
    )))
}

/// `PUT /loadbalancers/{id}/failover` (admin): replace every amphora of the load balancer.
/// 202; 409 unless it is ACTIVE or ERROR. Queued after tenant operations (operator class).
pub async fn failover(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let lb = resource::fetch::<LoadBalancer>(&s, &caller, &id, "put_failover").await?;
    let job = s
        .ctx
        .store
        .failover_load_balancer(lb.id, octavia_model::JobClass::Operator)
        .await?;
    tracing::info!(load_balancer_id = %lb.id, job_id = %job, "load balancer failover requested");
    metrics::counter!("octavia_failovers_queued_total", "cause" => "operator").increment(1);
    Ok(StatusCode::ACCEPTED.into_response())
}
