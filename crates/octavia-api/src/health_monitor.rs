//! `/v2/lbaas/healthmonitors`: what a create or update judges.

use octavia_api_types::health_monitor::{
    check_against_pool, HealthMonitorPostBody, HealthMonitorPutBody,
};
use octavia_model::{HealthMonitor, Pool};
use octavia_render::support;

use crate::app::AppState;
use crate::auth::{rule, Caller};
use crate::error::ApiError;
use crate::resource::{self, Creatable, Queued, Resource, Updatable};

impl Creatable for HealthMonitor {
    type PostBody = HealthMonitorPostBody;

    async fn create(s: &AppState, caller: &Caller, b: Self::PostBody) -> Queued<Self> {
        let pool = resource::fetch_as::<Pool>(
            s,
            caller,
            &b.healthmonitor.pool_id,
            &rule(Self::RULE, "post"),
        )
        .await?;
        let project = b.healthmonitor.validate(&s.validation)?;
        Caller::child_project(project, &pool.project_id)?;
        check_against_pool(
            b.healthmonitor.monitor_type,
            b.healthmonitor.delay,
            pool.protocol,
            &s.validation,
        )?;
        let hm = b.healthmonitor.into_model(pool.project_id.clone(), pool.id);
        ApiError::provider_supports(None, support::health_monitor(&hm))?;
        Ok(s.ctx.store.create_health_monitor(&hm).await?)
    }
}

impl Updatable for HealthMonitor {
    type PutBody = HealthMonitorPutBody;

    async fn update(s: &AppState, caller: &Caller, old: &Self, b: Self::PutBody) -> Queued<Self> {
        let pool = resource::fetch_as::<Pool>(
            s,
            caller,
            &old.pool_id.to_string(),
            &rule(Self::RULE, "put"),
        )
        .await?;
        let new = b
            .healthmonitor
            .apply_checked(old, pool.protocol, &s.validation)?;
        ApiError::provider_supports(None, support::health_monitor(&new))?;
        Ok(s.ctx
            .store
            .update_health_monitor(&new, old.updated_at)
            .await?)
    }
}
