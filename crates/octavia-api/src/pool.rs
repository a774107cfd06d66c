//! `/v2/lbaas/pools`: what a create or update judges.

use octavia_api_types::listener::check_pool_compatible;
use octavia_api_types::pool::{PoolPostBody, PoolPutBody};
use octavia_model::{Listener, ListenerId, LoadBalancer, Pool};
use octavia_render::support;

use crate::app::AppState;
use crate::auth::{rule, Caller};
use crate::error::ApiError;
use crate::resource::{self, Creatable, Queued, Resource, Updatable};

impl Creatable for Pool {
    type PostBody = PoolPostBody;

    async fn create(s: &AppState, caller: &Caller, b: Self::PostBody) -> Queued<Self> {
        // The parents first: a caller who may not touch them learns nothing about the body.
        let post = rule(Self::RULE, "post");
        let listener = match &b.pool.listener_id {
            Some(lid) => Some(resource::fetch_as::<Listener>(s, caller, lid, &post).await?),
            None => None,
        };
        let lb = match (&listener, &b.pool.loadbalancer_id) {
            (Some(l), _) => {
                resource::fetch_as::<LoadBalancer>(s, caller, &l.load_balancer_id.to_string(), &post)
                    .await?
            }
            (None, Some(lb_id)) => resource::fetch_as::<LoadBalancer>(s, caller, lb_id, &post).await?,
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
        Ok(s.ctx.store.create_pool(&pool, listener_id).await?)
    }
}

impl Updatable for Pool {
    type PutBody = PoolPutBody;

    async fn update(s: &AppState, _caller: &Caller, old: &Self, b: Self::PutBody) -> Queued<Self> {
        b.pool.validate(old)?;
        let mut new = old.clone();
        b.pool.apply(&mut new);
        ApiError::provider_supports(None, support::pool(&new))?;
        Ok(s.ctx.store.update_pool(&new, old.updated_at).await?)
    }
}
