//! `/v2/lbaas/listeners`: what a create or update judges.

use octavia_api_types::listener::{
    check_cidrs_match_vips, check_pool_compatible, ListenerPostBody, ListenerPutBody,
};
use octavia_model::{Listener, LoadBalancer, ObjectKind, PoolId};
use octavia_render::support;

use crate::app::AppState;
use crate::auth::{rule, Caller};
use crate::error::ApiError;
use crate::resource::{self, Creatable, Queued, Resource, Updatable};

/// A pool `listener` sends traffic to (its default pool, an L7 redirect), named by `field`:
/// it exists (404), is on the listener's load balancer (400, saying `elsewhere`) and speaks
/// a protocol the listener's can carry (400).
pub(crate) async fn check_target_pool(
    s: &AppState,
    listener: &Listener,
    field: &str,
    pool: PoolId,
    elsewhere: &str,
) -> Result<(), ApiError> {
    let found = s
        .ctx
        .store
        .get_pool(pool)
        .await?
        .ok_or_else(|| ApiError::not_found(ObjectKind::Pool, pool))?;
    if found.load_balancer_id != listener.load_balancer_id {
        return Err(ApiError::BadRequest(format!(
            "Invalid input for field/attribute {field}. {elsewhere}"
        )));
    }
    check_pool_compatible(field, listener.protocol, found.protocol)?;
    Ok(())
}

async fn check_default_pool(s: &AppState, listener: &Listener) -> Result<(), ApiError> {
    let Some(pid) = listener.default_pool_id else {
        return Ok(());
    };
    let elsewhere = format!(
        "Pool {pid} is not on load balancer {}",
        listener.load_balancer_id
    );
    check_target_pool(s, listener, "default_pool_id", pid, &elsewhere).await
}

/// Every allowed CIDR must share its IP version with a VIP of the load balancer (400, as
/// Octavia: a CIDR no VIP can match would silently block every client of that family).
pub(crate) fn check_allowed_cidrs(listener: &Listener, lb: &LoadBalancer) -> Result<(), ApiError> {
    let vips: Vec<String> = lb.vip.ip_address.iter().cloned().collect();
    if vips.is_empty() {
        return Ok(());
    }
    check_cidrs_match_vips(&listener.allowed_cidrs, &vips)
        .map_err(|detail| ApiError::BadRequest(format!("Validation failure: {detail}")))
}

impl Creatable for Listener {
    type PostBody = ListenerPostBody;

    async fn create(s: &AppState, caller: &Caller, b: Self::PostBody) -> Queued<Self> {
        let lb = resource::fetch_as::<LoadBalancer>(
            s,
            caller,
            &b.listener.loadbalancer_id,
            &rule(Self::RULE, "post"),
        )
        .await?;
        let project = b.listener.validate(&s.validation)?;
        Caller::child_project(project, &lb.project_id)?;
        let l = b
            .listener
            .into_model(lb.project_id.clone(), lb.id, &s.validation);
        ApiError::provider_supports(lb.provider.as_deref(), support::listener(&l))?;
        check_default_pool(s, &l).await?;
        check_allowed_cidrs(&l, &lb)?;
        Ok(s.ctx.store.create_listener(&l).await?)
    }
}

impl Updatable for Listener {
    type PutBody = ListenerPutBody;

    async fn update(s: &AppState, caller: &Caller, old: &Self, b: Self::PutBody) -> Queued<Self> {
        b.listener.validate(old)?;
        let mut new = old.clone();
        b.listener.apply(&mut new, &s.validation);
        if new.default_pool_id != old.default_pool_id {
            check_default_pool(s, &new).await?;
        }
        if new.allowed_cidrs != old.allowed_cidrs {
            let lb = resource::fetch_as::<LoadBalancer>(
                s,
                caller,
                &new.load_balancer_id.to_string(),
                &rule(Self::RULE, "put"),
            )
            .await?;
            check_allowed_cidrs(&new, &lb)?;
        }
        Ok(s.ctx.store.update_listener(&new, old.updated_at).await?)
    }
}
