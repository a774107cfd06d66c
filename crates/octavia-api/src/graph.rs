//! Single-call create (Octavia's "fully populated" load balancer): `POST
//! /v2/lbaas/loadbalancers` with `listeners` or `pools` builds the load balancer and the
//! whole tree below it in one transaction with one job, and answers with the full graph.
//! A body without them is the plain create of `load_balancer.rs`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use octavia_api_types::graph;
use octavia_api_types::load_balancer::LoadBalancerPostBody;
use octavia_model::{LoadBalancer, LoadBalancerGraph};
use octavia_render::support;

use crate::app::{self, AppState};
use crate::auth::Caller;
use crate::body::json_body;
use crate::error::ApiError;
use crate::listener::check_allowed_cidrs;
use crate::load_balancer::new_load_balancer;
use crate::resource::{self, Creatable};

/// `POST /v2/lbaas/loadbalancers`. As in Octavia, only the load balancer's own rule is
/// checked (for the body's project); the children are the load balancer's project's.
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut b: LoadBalancerPostBody =
        json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let listeners = b.loadbalancer.listeners.take().unwrap_or_default();
    let pools = b.loadbalancer.pools.take().unwrap_or_default();
    if listeners.is_empty() && pools.is_empty() {
        let (lb, job) = LoadBalancer::create(&s, &caller, b).await?;
        return resource::accepted(StatusCode::CREATED, "create", &lb, job);
    }
    let lb = new_load_balancer(&s, &caller, b).await?;
    let graph = graph::build(&listeners, &pools, &lb, &s.validation)?;
    check_graph(&lb, &graph)?;
    let (tree, job) = s.ctx.store.create_load_balancer_graph(&lb, &graph).await?;
    tracing::info!(lb_id = %lb.id, job_id = %job, listeners = tree.listeners.len(),
        pools = tree.pools.len(), members = tree.members.len(), "single-call create accepted");
    let full = graph::full_response(&tree)
        .map_err(|e| ApiError::Internal(format!("serialize the full graph: {e}")))?;
    app::single(StatusCode::CREATED, "loadbalancer", &full)
}

/// What the store cannot judge of a graph: what the provider serves (501) and the
/// listeners' allowed CIDRs against the VIP (400), as each object's own POST checks.
fn check_graph(lb: &LoadBalancer, graph: &LoadBalancerGraph) -> Result<(), ApiError> {
    let provider = lb.provider.as_deref();
    for p in &graph.pools {
        ApiError::provider_supports(provider, support::pool(&p.pool))?;
        if let Some(h) = &p.health_monitor {
            ApiError::provider_supports(provider, support::health_monitor(h))?;
        }
    }
    for l in &graph.listeners {
        ApiError::provider_supports(provider, support::listener(&l.listener))?;
        check_allowed_cidrs(&l.listener, lb)?;
        for p in &l.l7policies {
            ApiError::provider_supports(provider, support::l7policy(l.listener.protocol))?;
            for r in &p.rules {
                ApiError::provider_supports(provider, support::l7rule(r))?;
            }
        }
    }
    Ok(())
}
