//! `/v2/lbaas/l7policies` and their rules (`/l7policies/{id}/rules`, envelope `rule`): what a
//! create or update judges.

use octavia_api_types::l7policy::{L7PolicyPostBody, L7PolicyPutBody};
use octavia_api_types::l7rule::{L7RulePostBody, L7RulePutBody};
use octavia_model::{L7Policy, L7Rule, Listener};
use octavia_render::support;

use crate::app::AppState;
use crate::auth::{rule, Caller};
use crate::error::ApiError;
use crate::listener::check_target_pool;
use crate::resource::{self, Creatable, CreatableChild, Queued, Resource, Updatable};

async fn check_redirect_pool(s: &AppState, l: &Listener, p: &L7Policy) -> Result<(), ApiError> {
    let Some(pid) = p.redirect_pool_id else {
        return Ok(());
    };
    let elsewhere = format!("Pool {pid} is not on the listener's load balancer");
    check_target_pool(s, l, "redirect_pool_id", pid, &elsewhere).await
}

impl Creatable for L7Policy {
    type PostBody = L7PolicyPostBody;

    async fn create(s: &AppState, caller: &Caller, b: Self::PostBody) -> Queued<Self> {
        let l = resource::fetch_as::<Listener>(
            s,
            caller,
            &b.l7policy.listener_id,
            &rule(Self::RULE, "post"),
        )
        .await?;
        let project = b.l7policy.validate()?;
        Caller::child_project(project, &l.project_id)?;
        ApiError::provider_supports(None, support::l7policy(l.protocol))?;
        let p = b.l7policy.into_model(l.project_id.clone(), l.id)?;
        check_redirect_pool(s, &l, &p).await?;
        Ok(s.ctx.store.create_l7policy(&p).await?)
    }
}

impl Updatable for L7Policy {
    type PutBody = L7PolicyPutBody;

    async fn update(s: &AppState, caller: &Caller, old: &Self, b: Self::PutBody) -> Queued<Self> {
        let new = b.l7policy.apply_checked(old)?;
        if new.redirect_pool_id != old.redirect_pool_id {
            let l = resource::fetch_as::<Listener>(
                s,
                caller,
                &old.listener_id.to_string(),
                &rule(Self::RULE, "put"),
            )
            .await?;
            check_redirect_pool(s, &l, &new).await?;
        }
        Ok(s.ctx.store.update_l7policy(&new, old.updated_at).await?)
    }
}

impl CreatableChild for L7Rule {
    type PostBody = L7RulePostBody;

    async fn create(s: &AppState, p: L7Policy, b: Self::PostBody) -> Queued<Self> {
        let project = b.rule.validate()?;
        Caller::child_project(project, &p.project_id)?;
        let r = b.rule.into_model(p.project_id.clone(), p.id);
        ApiError::provider_supports(None, support::l7rule(&r))?;
        Ok(s.ctx.store.create_l7rule(&r).await?)
    }
}

impl Updatable for L7Rule {
    type PutBody = L7RulePutBody;

    async fn update(s: &AppState, _caller: &Caller, old: &Self, b: Self::PutBody) -> Queued<Self> {
        let new = b.rule.apply_checked(old)?;
        ApiError::provider_supports(None, support::l7rule(&new))?;
        Ok(s.ctx.store.update_l7rule(&new, old.updated_at).await?)
    }
}
