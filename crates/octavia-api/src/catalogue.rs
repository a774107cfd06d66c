//! The operator's catalogue — flavors, availability zones and their profiles — written once:
//! the handlers of `GET` (a page, one record), `POST`, `PUT` and `DELETE` over the small
//! [`Catalogued`] trait each kind implements (`flavor.rs`, `availability_zone.rs`).
//!
//! They differ from the tenant collections of `resource.rs` in three ways: a record belongs
//! to no project (no ownership check, lists are not scoped), a write is stored at once (no
//! job, nothing to build; `PUT` answers 200 and `DELETE` 204 when done), and an availability
//! zone is keyed by its name. The order of the checks is that of the other objects of no
//! project: the body's JSON (400), the policy for the caller's own project (403, before any
//! record is read, as Octavia's controllers do), the record the path names (404), then what
//! the kind judges of the body (400, 501) and the store's verdict (409).

use std::fmt::Display;
use std::future::Future;
use std::str::FromStr;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use octavia_db::{DbError, ListQuery, RecordKind, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::{self, AppState, OriginalPath};
use crate::auth::{rule, Caller};
use crate::body::json_body;
use crate::error::ApiError;
use crate::listing;

/// One kind of record of the catalogue, as the shared handlers see it.
pub trait Catalogued: Sized + Send + Sync + 'static {
    /// What the path names it by: an id (a segment that does not parse is a 404), or the
    /// name of an availability zone.
    type Key: FromStr + Display + Send + Sync;
    /// Its wire form.
    type Response: Serialize + for<'a> From<&'a Self>;
    /// The body of `POST` (`{"<ONE>": {...}}`).
    type PostBody: DeserializeOwned + Send;
    /// The body of `PUT` (`{"<ONE>": {...}}`).
    type PutBody: DeserializeOwned + Send;
    /// Its kind (listing columns, not-found messages).
    const KIND: RecordKind;
    /// Its policy name: `os_load-balancer_api:<RULE>:<action>`.
    const RULE: &'static str;
    /// The envelope key of one record, of a list, and of a list's links.
    const ONE: &'static str;
    const MANY: &'static str;
    const LINKS: &'static str;

    /// Its key as text (paging links, logs).
    fn key(&self) -> String;
    /// Read one (`None`: there is none).
    fn load(
        store: &Store,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Option<Self>, DbError>> + Send;
    /// Read one page.
    fn load_page(
        store: &Store,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Vec<Self>, DbError>> + Send;
    /// Store the record the body describes: Octavia's validation (400, 501), then the
    /// store's checks (409).
    fn create(
        s: &AppState,
        body: Self::PostBody,
    ) -> impl Future<Output = Result<Self, ApiError>> + Send;
    /// Store `old` changed as the body asks.
    fn update(
        s: &AppState,
        old: Self,
        body: Self::PutBody,
    ) -> impl Future<Output = Result<Self, ApiError>> + Send;
    /// Remove the record `key` (409 while something uses it).
    fn remove(store: &Store, key: &Self::Key) -> impl Future<Output = Result<(), DbError>> + Send;
}

fn not_found<R: Catalogued>(raw: &str) -> ApiError {
    ApiError::NotFound(format!("{} {raw} not found.", R::KIND))
}

fn parse_key<R: Catalogued>(raw: &str) -> Result<R::Key, ApiError> {
    raw.parse().map_err(|_| not_found::<R>(raw))
}

/// The record the path names (404 if there is none).
pub async fn fetch<R: Catalogued>(s: &AppState, raw: &str) -> Result<R, ApiError> {
    let key = parse_key::<R>(raw)?;
    R::load(&s.ctx.store, &key)
        .await?
        .ok_or_else(|| not_found::<R>(raw))
}

/// `GET /v2/lbaas/<catalogue>`.
pub async fn list<R: Catalogued>(
    State(s): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Extension(path): Extension<OriginalPath>,
) -> Result<Response, ApiError> {
    caller.authorize_own(&rule(R::RULE, "get_all"))?;
    let req = listing::parse_unscoped(R::KIND, q.as_deref(), &s.ctx.settings)?;
    let items = R::load_page(&s.ctx.store, &req.query).await?;
    let keys: Vec<String> = items.iter().map(R::key).collect();
    let resp: Vec<R::Response> = items.iter().map(Into::into).collect();
    let base = s.collection_url(&headers, &path);
    app::page(R::MANY, R::LINKS, &resp, &keys, &req, &base)
}

/// `GET /v2/lbaas/<catalogue>/{key}`.
pub async fn get<R: Catalogued>(
    State(s): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    caller.authorize_own(&rule(R::RULE, "get_one"))?;
    let record: R = fetch(&s, &key).await?;
    app::single_fields(
        StatusCode::OK,
        R::ONE,
        &R::Response::from(&record),
        &app::fields_of(q.as_deref()),
    )
}

/// `POST /v2/lbaas/<catalogue>`: 201 with the record as stored.
pub async fn create<R: Catalogued>(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body: R::PostBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    caller.authorize_own(&rule(R::RULE, "post"))?;
    let record = R::create(&s, body).await?;
    tracing::info!(kind = %R::KIND, key = %record.key(), "created");
    app::single(StatusCode::CREATED, R::ONE, &R::Response::from(&record))
}

/// `PUT /v2/lbaas/<catalogue>/{key}`: 200 with the record as stored.
pub async fn update<R: Catalogued>(
    State(s): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body: R::PutBody = json_body(&headers, body, s.ctx.settings.max_request_body_size).await?;
    caller.authorize_own(&rule(R::RULE, "put"))?;
    let old: R = fetch(&s, &key).await?;
    let record = R::update(&s, old, body).await?;
    tracing::info!(kind = %R::KIND, key = %record.key(), "updated");
    app::single(StatusCode::OK, R::ONE, &R::Response::from(&record))
}

/// `DELETE /v2/lbaas/<catalogue>/{key}`: 204 once removed.
pub async fn delete<R: Catalogued>(
    State(s): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize_own(&rule(R::RULE, "delete"))?;
    let parsed = parse_key::<R>(&key)?;
    R::remove(&s.ctx.store, &parsed).await?;
    tracing::info!(kind = %R::KIND, key = %key, "deleted");
    Ok(app::no_content())
}
