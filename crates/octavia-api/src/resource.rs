//! What every collection shares, written once: fetching one object the caller may see, and
//! the handlers of `GET` (a page, one object), `POST`, `PUT` and plain `DELETE`, for the
//! top-level collections ([`Collection`]) and for those under an object of another
//! ([`Child`]: members, L7 rules). The handlers fix the order of the checks: (on writes) the
//! body's JSON, then the objects the path names (404), then the policy rule for the project
//! of the object concerned (403, as Octavia's controllers authorize); what a
//! resource judges of the body comes after (its [`Creatable`], [`CreatableChild`] or [`Updatable`]
//! impl: Octavia's validation, 400, then what the provider serves, 501). Each resource
//! describes itself with these traits; its module keeps only what differs.

use std::future::Future;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use octavia_api_types::amphora::AmphoraResponse;
use octavia_api_types::health_monitor::HealthMonitorResponse;
use octavia_api_types::l7policy::L7PolicyResponse;
use octavia_api_types::l7rule::L7RuleResponse;
use octavia_api_types::listener::ListenerResponse;
use octavia_api_types::load_balancer::LoadBalancerResponse;
use octavia_api_types::member::MemberResponse;
use octavia_api_types::pool::PoolResponse;
use octavia_api_types::stats::StatsResponse;
use octavia_db::{DbError, ListQuery, Store};
use octavia_model::{
    Amphora, AmphoraId, HealthMonitor, HealthMonitorId, JobId, L7Policy, L7PolicyId, L7Rule,
    L7RuleId, Listener, ListenerId, ListenerStatistics, LoadBalancer, LoadBalancerId, Member,
    MemberId, ObjectKind, Pool, PoolId,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::{self, AppState, OriginalPath};
use crate::auth::{rule, Caller};
use crate::body::json_body;
use crate::error::ApiError;
use crate::listing::{self, ListRequest};

/// One kind of object of the API, as the shared handlers see it.
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

    /// Whether its objects belong to projects: the policy is asked about the object's
    /// project once it is loaded, and listings are scoped by `get_all`/`get_all-global`.
    /// Amphorae, flavors and zones do not: the policy is asked about the caller's own
    /// project before anything is read (as Octavia does), and listings are whole.
    const PROJECT_SCOPED: bool = true;
    /// Its id, for paging links and logs.
    fn id_text(&self) -> String;
    /// The project that owns it; `None` for objects of no project (amphorae).
    fn project(&self) -> Option<&str>;
    /// Read one (`None`: it does not exist for the API, DELETED included).
    fn load(
        store: &Store,
        id: Self::Id,
    ) -> impl Future<Output = Result<Option<Self>, DbError>> + Send;
}

/// A top-level collection: `/v2/lbaas/<MANY>` and `/v2/lbaas/<MANY>/{id}`.
pub trait Collection: Resource {
    /// Read one page.
    fn load_page(
        store: &Store,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Vec<Self>, DbError>> + Send;
}

/// A collection under one object of another: `/<parents>/{parent_id}/<MANY>[/{id}]`.
pub trait Child: Resource {
    /// The kind of object it hangs under.
    type Parent: Resource;
    /// Whether it hangs under `parent` (under another parent, it does not exist: 404).
    fn is_under(&self, parent: &Self::Parent) -> bool;
    /// Read one page of the children of `parent`.
    fn load_page(
        store: &Store,
        parent: &Self::Parent,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Vec<Self>, DbError>> + Send;
}

/// One object for `action`: 404 if there is none, then 403 unless the caller passes
/// `<RULE>:<action>` for its project (Octavia loads the object, then authorizes).
pub async fn fetch<R: Resource>(
    s: &AppState,
    caller: &Caller,
    raw: &str,
    action: &str,
) -> Result<R, ApiError> {
    fetch_as(s, caller, raw, &rule(R::RULE, action)).await
}

/// [`fetch`] judged by a rule of another resource: the parent a new object names is
/// checked with the new object's `post` rule.
pub async fn fetch_as<R: Resource>(
    s: &AppState,
    caller: &Caller,
    raw: &str,
    rule: &str,
) -> Result<R, ApiError> {
    if !R::PROJECT_SCOPED {
        caller.authorize_own(rule)?;
        return load(s, raw, |_| true).await;
    }
    let object: R = load(s, raw, |_| true).await?;
    caller.authorize(rule, object.project())?;
    Ok(object)
}

/// One child under the parent the path names, for `action`: the parent must exist (404),
/// the child must exist under it (404), then the child's rule decides (403).
pub async fn fetch_child<R: Child>(
    s: &AppState,
    caller: &Caller,
    parent_raw: &str,
    raw: &str,
    action: &str,
) -> Result<R, ApiError> {
    let parent: R::Parent = load(s, parent_raw, |_| true).await?;
    let object: R = load(s, raw, |o: &R| o.is_under(&parent)).await?;
    caller.authorize(
        &rule(R::RULE, action),
        object.project().or(caller.project_id()),
    )?;
    Ok(object)
}

/// One object by its path id, whoever asks (404 if there is none or `keep` refuses it).
async fn load<R: Resource>(
    s: &AppState,
    raw: &str,
    keep: impl FnOnce(&R) -> bool,
) -> Result<R, ApiError> {
    let id: R::Id = app::parse_id(R::KIND, raw)?;
    R::load(&s.ctx.store, id)
        .await?
        .filter(keep)
        .ok_or_else(|| ApiError::not_found(R::KIND, raw))
}

/// `GET /v2/lbaas/<collection>`.
pub async fn list<R: Collection>(
    State(s): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Extension(path): Extension<OriginalPath>,
) -> Result<Response, ApiError> {
    let mut req = listing::parse(R::KIND, q.as_deref(), &s.ctx.settings)?;
    let requested = req.query.project_id.take();
    req.query.project_id = if R::PROJECT_SCOPED {
        caller.list_scope(R::RULE, requested)?
    } else {
        caller.authorize_own(&rule(R::RULE, "get_all"))?;
        requested
    };
    let items = R::load_page(&s.ctx.store, &req.query).await?;
    page(&items, &req, &s.collection_url(&headers, &path))
}

/// `GET /v2/lbaas/<parents>/{parent_id}/<children>`: the children rule's `get_all` for the
/// parent's project.
pub async fn list_children<R: Child>(
    State(s): State<AppState>,
    caller: Caller,
    Path(parent_id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Extension(path): Extension<OriginalPath>,
) -> Result<Response, ApiError> {
    let parent: R::Parent = load(&s, &parent_id, |_| true).await?;
    caller.authorize(&rule(R::RULE, "get_all"), parent.project())?;
    let mut req = listing::parse(R::KIND, q.as_deref(), &s.ctx.settings)?;
    req.query.project_id = None;
    let items = R::load_page(&s.ctx.store, &parent, &req.query).await?;
    page(&items, &req, &s.collection_url(&headers, &path))
}

/// `{"<MANY>": [...], "<LINKS>": [...]}` for one page read for `req`.
fn page<R: Resource>(items: &[R], req: &ListRequest, base: &str) -> Result<Response, ApiError> {
    let ids: Vec<String> = items.iter().map(R::id_text).collect();
    let resp: Vec<R::Response> = items.iter().map(Into::into).collect();
    app::page(R::MANY, R::LINKS, &resp, &ids, req, base)
}

/// `GET /v2/lbaas/<collection>/{id}`.
pub async fn get<R: Collection>(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let object: R = fetch(&s, &caller, &id, "get_one").await?;
    one(&object, q.as_deref())
}

/// `GET /v2/lbaas/<parents>/{parent_id}/<children>/{id}`.
pub async fn get_child<R: Child>(
    State(s): State<AppState>,
    caller: Caller,
    Path((parent_id, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let object: R = fetch_child(&s, &caller, &parent_id, &id, "get_one").await?;
    one(&object, q.as_deref())
}

/// `{"<ONE>": {...}}` with the `fields=` of the query.
fn one<R: Resource>(object: &R, query: Option<&str>) -> Result<Response, ApiError> {
    app::single_fields(
        StatusCode::OK,
        R::ONE,
        &R::Response::from(object),
        &app::fields_of(query),
    )
}

/// What a create or update returns: the object as stored and the job queued for it.
pub type Queued<T> = Result<(T, JobId), ApiError>;

/// A top-level collection a tenant adds to with `POST /v2/lbaas/<collection>` (201, one job).
pub trait Creatable: Collection {
    /// The request body (`{"<ONE>": {...}}`).
    type PostBody: DeserializeOwned + Send;
    /// Queue the create the body asks for: the parents it names first (404, 403), then
    /// Octavia's validation (400), then what the provider serves (501).
    fn create(
        s: &AppState,
        caller: &Caller,
        body: Self::PostBody,
    ) -> impl Future<Output = Queued<Self>> + Send;
}

/// A child collection a tenant adds to with `POST .../{parent_id}/<children>` (201, one job).
pub trait CreatableChild: Child {
    /// The request body (`{"<ONE>": {...}}`).
    type PostBody: DeserializeOwned + Send;
    /// Queue the create of a child of `parent` (fetched, the caller's to touch): Octavia's
    /// validation (400), then what the provider serves (501).
    fn create(
        s: &AppState,
        parent: Self::Parent,
        body: Self::PostBody,
    ) -> impl Future<Output = Queued<Self>> + Send;
}

/// `POST /v2/lbaas/<collection>`.
pub async fn create<R: Creatable>(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body: R::PostBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let (object, job) = R::create(&s, &caller, body).await?;
    accepted(StatusCode::CREATED, "create", &object, job)
}

/// `POST /v2/lbaas/<parents>/{parent_id}/<children>`.
pub async fn create_child<R: CreatableChild>(
    State(s): State<AppState>,
    caller: Caller,
    Path(parent_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body: R::PostBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let parent: R::Parent = load(&s, &parent_id, |_| true).await?;
    caller.authorize(&rule(R::RULE, "post"), parent.project())?;
    let (object, job) = R::create(&s, parent, body).await?;
    accepted(StatusCode::CREATED, "create", &object, job)
}

/// A collection whose objects a tenant changes with `PUT .../{id}` (200, one job).
pub trait Updatable: Resource {
    /// The request body (`{"<ONE>": {...}}`).
    type PutBody: DeserializeOwned + Send;
    /// Queue the update of `old` (fetched, the caller's to touch) that the body asks for:
    /// Octavia's validation (400), then what the provider serves (501).
    fn update(
        s: &AppState,
        caller: &Caller,
        old: &Self,
        body: Self::PutBody,
    ) -> impl Future<Output = Queued<Self>> + Send;
}

/// `PUT /v2/lbaas/<collection>/{id}`.
pub async fn update<R: Updatable + Collection>(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body: R::PutBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let old: R = fetch(&s, &caller, &id, "put").await?;
    let (object, job) = R::update(&s, &caller, &old, body).await?;
    accepted(StatusCode::OK, "update", &object, job)
}

/// `PUT /v2/lbaas/<parents>/{parent_id}/<children>/{id}`.
pub async fn update_child<R: Updatable + Child>(
    State(s): State<AppState>,
    caller: Caller,
    Path((parent_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body: R::PutBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    let old: R = fetch_child(&s, &caller, &parent_id, &id, "put").await?;
    let (object, job) = R::update(&s, &caller, &old, body).await?;
    accepted(StatusCode::OK, "update", &object, job)
}

/// The answer to an accepted create or update: the object as stored, with the given status.
pub(crate) fn accepted<R: Resource>(
    status: StatusCode,
    write: &str,
    object: &R,
    job: JobId,
) -> Result<Response, ApiError> {
    tracing::info!(kind = R::KIND.as_str(), id = %object.id_text(), job_id = %job, "{write} accepted");
    app::single(status, R::ONE, &R::Response::from(object))
}

/// A collection whose objects a tenant deletes with a plain `DELETE .../{id}` (204, one job).
pub trait Removable: Resource {
    /// Queue the delete of `self` (the store locks, marks PENDING_DELETE and queues the job).
    fn remove(&self, store: &Store) -> impl Future<Output = Result<JobId, DbError>> + Send;
}

/// `DELETE /v2/lbaas/<collection>/{id}`.
pub async fn delete<R: Removable + Collection>(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let object: R = fetch(&s, &caller, &id, "delete").await?;
    remove(&s, &object).await
}

/// `DELETE /v2/lbaas/<parents>/{parent_id}/<children>/{id}`.
pub async fn delete_child<R: Removable + Child>(
    State(s): State<AppState>,
    caller: Caller,
    Path((parent_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let object: R = fetch_child(&s, &caller, &parent_id, &id, "delete").await?;
    remove(&s, &object).await
}

async fn remove<R: Removable>(s: &AppState, object: &R) -> Result<Response, ApiError> {
    let job = object.remove(&s.ctx.store).await?;
    tracing::info!(kind = R::KIND.as_str(), id = %object.id_text(), job_id = %job, "delete accepted");
    Ok(app::no_content())
}

/// A collection whose objects count traffic: `GET .../{id}/stats`.
pub trait Measured: Collection {
    /// Read the counters of `self` (summed over its listeners for a load balancer).
    fn load_stats(
        &self,
        store: &Store,
    ) -> impl Future<Output = Result<ListenerStatistics, DbError>> + Send;
}

/// `GET /v2/lbaas/<collection>/{id}/stats`.
pub async fn stats<R: Measured>(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let object: R = fetch(&s, &caller, &id, "get_stats").await?;
    let stats = object.load_stats(&s.ctx.store).await?;
    app::single(StatusCode::OK, "stats", &StatsResponse::from(&stats))
}

/// `impl Resource` for a model type whose store read is `get_*`.
macro_rules! resource {
    ($model:ty, $id:ty, $response:ty, $kind:expr, $rule:literal, $one:literal, $many:literal,
     $links:literal, $get:ident, |$o:ident| $project:expr $(, scoped: $scoped:literal)?) => {
        impl Resource for $model {
            $(const PROJECT_SCOPED: bool = $scoped;)?
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
    |o| Some(&o.project_id)
);
resource!(
    Member,
    MemberId,
    MemberResponse,
    ObjectKind::Member,
    "member",
    "member",
    "members",
    "members_links",
    get_member,
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
    |o| Some(&o.project_id)
);
resource!(
    L7Rule,
    L7RuleId,
    L7RuleResponse,
    ObjectKind::L7Rule,
    "l7rule",
    "rule",
    "rules",
    "rules_links",
    get_l7rule,
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
    |_o| None,
    scoped: false
);

macro_rules! collection {
    ($($model:ty => $list:ident),* $(,)?) => {$(
        impl Collection for $model {
            async fn load_page(store: &Store, query: &ListQuery) -> Result<Vec<Self>, DbError> {
                store.$list(query).await
            }
        }
    )*};
}

collection!(
    LoadBalancer => list_load_balancers,
    Listener => list_listeners,
    Pool => list_pools,
    HealthMonitor => list_health_monitors,
    L7Policy => list_l7policies,
);

impl Collection for Amphora {
    async fn load_page(store: &Store, query: &ListQuery) -> Result<Vec<Self>, DbError> {
        store.list_amphorae(query).await
    }
}

/// `impl Child` for a model type that names its parent in `$parent_id` and whose store
/// listing is `list_*(parent_id, query)`.
macro_rules! child {
    ($($model:ty => $parent:ty, $parent_id:ident, $list:ident);* $(;)?) => {$(
        impl Child for $model {
            type Parent = $parent;
            fn is_under(&self, parent: &$parent) -> bool {
                self.$parent_id == parent.id
            }
            async fn load_page(
                store: &Store,
                parent: &$parent,
                query: &ListQuery,
            ) -> Result<Vec<Self>, DbError> {
                store.$list(parent.id, query).await
            }
        }
    )*};
}

child!(
    Member => Pool, pool_id, list_members;
    L7Rule => L7Policy, l7policy_id, list_l7rules;
);

impl Measured for LoadBalancer {
    async fn load_stats(&self, store: &Store) -> Result<ListenerStatistics, DbError> {
        store.load_balancer_stats(self.id).await
    }
}

impl Measured for Listener {
    async fn load_stats(&self, store: &Store) -> Result<ListenerStatistics, DbError> {
        store.listener_stats(self.id).await
    }
}

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
    Member => delete_member,
    HealthMonitor => delete_health_monitor,
    L7Policy => delete_l7policy,
    L7Rule => delete_l7rule,
);
