//! What every top-level collection shares, written once: fetching one object the caller may
//! see, `GET` of the collection (policy, listing, paging) and `GET` of one object (policy,
//! `fields=`). Each resource describes itself with [`Resource`]; its module keeps only what
//! differs (its writes).

use std::future::Future;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use octavia_api_types::amphora::AmphoraResponse;
use octavia_api_types::health_monitor::HealthMonitorResponse;
use octavia_api_types::l7policy::L7PolicyResponse;
use octavia_api_types::listener::ListenerResponse;
use octavia_api_types::load_balancer::LoadBalancerResponse;
use octavia_api_types::pool::PoolResponse;
use octavia_db::{DbError, ListQuery, Store};
use octavia_model::{
    Amphora, AmphoraId, HealthMonitor, HealthMonitorId, JobId, L7Policy, L7PolicyId, Listener,
    ListenerId, LoadBalancer, LoadBalancerId, ObjectKind, Pool, PoolId,
};
use serde::Serialize;

use crate::app::{self, AppState, OriginalPath};
use crate::auth::{rule, Caller, Policy};
use crate::error::ApiError;
use crate::listing;

/// One top-level collection of the API, as the shared handlers see it.
pub trait Resource: Sized + Send + Sync + 'static {
    /// Its id type (a path segment that does not parse is a 404).
    type Id: std::str::FromStr + Send;
    /// Its wire form.
    type Response: Serialize + for<'a> From<&'a Self>;
    /// Its kind (listing columns, not-found messages).
    const KIND: ObjectKind;
    /// Its policy name: `os_load-balancer_api:<RULE>:<action>`.
    const RULE: &'static str;
    /// The envelope key of one object, of a list, and of a list's links.
    const ONE: &'static str;
    const MANY: &'static str;
    const LINKS: &'static str;

    /// Its id, for paging links.
    fn id_text(&self) -> String;
    /// The project that owns it; `None` for objects of no project (amphorae).
    fn project(&self) -> Option<&str>;
    /// Read one (`None`: it does not exist for the API, DELETED included).
    fn load(
        store: &Store,
        id: Self::Id,
    ) -> impl Future<Output = Result<Option<Self>, DbError>> + Send;
    /// Read one page.
    fn load_page(
        store: &Store,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Vec<Self>, DbError>> + Send;
}

/// One object the caller may see: 404 if there is none, 403 if it is another project's.
pub async fn fetch<R: Resource>(s: &AppState, caller: &Caller, raw: &str) -> Result<R, ApiError> {
    let id: R::Id = app::parse_id(R::KIND, raw)?;
    let object = R::load(&s.ctx.store, id)
        .await?
        .ok_or_else(|| ApiError::not_found(R::KIND, raw))?;
    if let Some(project) = object.project() {
        caller.check_owner(project)?;
    }
    Ok(object)
}

/// `GET /v2/lbaas/<collection>`.
pub async fn list<R: Resource>(
    State(s): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Extension(path): Extension<OriginalPath>,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule(R::RULE, "get_all"))?;
    let req = listing::parse(R::KIND, q.as_deref(), &caller, &s.ctx.settings)?;
    let items = R::load_page(&s.ctx.store, &req.query).await?;
    let ids: Vec<String> = items.iter().map(R::id_text).collect();
    let resp: Vec<R::Response> = items.iter().map(Into::into).collect();
    app::page(
        R::MANY,
        R::LINKS,
        &resp,
        &ids,
        &req,
        &s.collection_url(&headers, &path),
    )
}

/// `GET /v2/lbaas/<collection>/{id}`.
pub async fn get<R: Resource>(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule(R::RULE, "get_one"))?;
    let object: R = fetch(&s, &caller, &id).await?;
    app::single_fields(
        StatusCode::OK,
        R::ONE,
        &R::Response::from(&object),
        &app::fields_of(q.as_deref()),
    )
}

/// A collection whose objects a tenant deletes with a plain `DELETE .../{id}` (204, one job).
pub trait Removable: Resource {
    /// Queue the delete of `self` (the store locks, marks PENDING_DELETE and queues the job).
    fn remove(&self, store: &Store) -> impl Future<Output = Result<JobId, DbError>> + Send;
}

/// `DELETE /v2/lbaas/<collection>/{id}`.
pub async fn delete<R: Removable>(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Policy::check(&caller, &rule(R::RULE, "delete"))?;
    let object: R = fetch(&s, &caller, &id).await?;
    let job = object.remove(&s.ctx.store).await?;
    tracing::info!(kind = R::KIND.as_str(), id = %object.id_text(), job_id = %job, "delete accepted");
    Ok(app::no_content())
}

/// `impl Resource` for a model type whose store reads are `get_*`/`list_*`.
macro_rules! resource {
    ($model:ty, $id:ty, $response:ty, $kind:expr, $rule:literal, $one:literal, $many:literal,
     $links:literal, $get:ident, $list:ident, |$o:ident| $project:expr) => {
        impl Resource for $model {
            type Id = $id;
            type Response = $response;
            const KIND: ObjectKind = $kind;
            const RULE: &'static str = $rule;
            const ONE: &'static str = $one;
            const MANY: &'static str = $many;
            const LINKS: &'static str = $links;

            fn id_text(&self) -> String {
                self.id.to_string()
            }
            fn project(&self) -> Option<&str> {
                let $o = self;
                $project
            }
            async fn load(store: &Store, id: $id) -> Result<Option<Self>, DbError> {
                store.$get(id).await
            }
            async fn load_page(store: &Store, query: &ListQuery) -> Result<Vec<Self>, DbError> {
                store.$list(query).await
            }
        }
    };
}

resource!(
    LoadBalancer,
    LoadBalancerId,
    LoadBalancerResponse,
    ObjectKind::LoadBalancer,
    "loadbalancer",
    "loadbalancer",
    "loadbalancers",
    "loadbalancers_links",
    get_load_balancer,
    list_load_balancers,
    |o| Some(&o.project_id)
);
resource!(
    Listener,
    ListenerId,
    ListenerResponse,
    ObjectKind::Listener,
    "listener",
    "listener",
    "listeners",
    "listeners_links",
    get_listener,
    list_listeners,
    |o| Some(&o.project_id)
);
resource!(
    Pool,
    PoolId,
    PoolResponse,
    ObjectKind::Pool,
    "pool",
    "pool",
    "pools",
    "pools_links",
    get_pool,
    list_pools,
    |o| Some(&o.project_id)
);
resource!(
    HealthMonitor,
    HealthMonitorId,
    HealthMonitorResponse,
    ObjectKind::HealthMonitor,
    "healthmonitor",
    "healthmonitor",
    "healthmonitors",
    "healthmonitors_links",
    get_health_monitor,
    list_health_monitors,
    |o| Some(&o.project_id)
);
resource!(
    L7Policy,
    L7PolicyId,
    L7PolicyResponse,
    ObjectKind::L7Policy,
    "l7policy",
    "l7policy",
    "l7policies",
    "l7policies_links",
    get_l7policy,
    list_l7policies,
    |o| Some(&o.project_id)
);
resource!(
    Amphora,
    AmphoraId,
    AmphoraResponse,
    ObjectKind::Amphora,
    "amphora",
    "amphora",
    "amphorae",
    "amphorae_links",
    get_amphora,
    list_amphorae,
    |_o| None
);

macro_rules! removable {
    ($($model:ty => $delete:ident),* $(,)?) => {$(
        impl Removable for $model {
            async fn remove(&self, store: &Store) -> Result<JobId, DbError> {
                store.$delete(self.id).await
            }
        }
    )*};
}

removable!(
    Listener => delete_listener,
    Pool => delete_pool,
    HealthMonitor => delete_health_monitor,
    L7Policy => delete_l7policy,
);
