//! Shared state of the handlers and the helpers that shape responses.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use octavia_api_types::ValidationSettings;
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::listing::{self, ListRequest};
use crate::ApiContext;

/// State handed to every handler.
#[derive(Clone)]
pub struct AppState {
    pub ctx: Arc<ApiContext>,
    pub validation: Arc<ValidationSettings>,
    /// How requests are authenticated.
    pub auth: Arc<crate::auth::Authenticator>,
    /// The policy every handler asks (through its [`crate::auth::Caller`]).
    pub policy: Arc<crate::auth::PolicyEngine>,
}

/// The path as the client sent it (before `.json`/`/lbaas`/`/v2.0` normalisation),
/// used to build links.
#[derive(Debug, Clone)]
pub struct OriginalPath(pub String);

impl AppState {
    /// Base URL of the collection a request addressed (`https://host/v2/lbaas/pools`).
    pub fn collection_url(&self, headers: &HeaderMap, path: &OriginalPath) -> String {
        let path = path.0.strip_suffix(".json").unwrap_or(&path.0);
        let path = path.trim_end_matches('/');
        match &self.ctx.settings.api_base_uri {
            Some(base) => format!("{}{}", base.trim_end_matches('/'), path),
            None => {
                let host = headers
                    .get(axum::http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                let scheme = headers
                    .get("x-forwarded-proto")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("http");
                format!("{scheme}://{host}{path}")
            }
        }
    }
}

/// Serialize a response object into a JSON value.
pub fn to_value<T: Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(format!("serialize response: {e}")))
}

/// `{"<key>": obj}` with the given status.
pub fn single<T: Serialize>(status: StatusCode, key: &str, obj: &T) -> Result<Response, ApiError> {
    single_fields(status, key, obj, &[])
}

/// `{"<key>": obj}` restricted to `fields`.
pub fn single_fields<T: Serialize>(
    status: StatusCode,
    key: &str,
    obj: &T,
    fields: &[String],
) -> Result<Response, ApiError> {
    if fields.is_empty() {
        // The common case: straight to bytes, without building a JSON tree first.
        return json_bytes(status, &Object((key, obj), None::<(&str, &())>));
    }
    let v = listing::select_fields(to_value(obj)?, fields);
    Ok((status, Json(serde_json::json!({ key: v }))).into_response())
}

/// A JSON object of one or two `(key, value)` entries, serialized in order.
struct Object<'a, A, B>((&'a str, &'a A), Option<(&'a str, &'a B)>);

impl<A: Serialize, B: Serialize> Serialize for Object<'_, A, B> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1 + usize::from(self.1.is_some())))?;
        m.serialize_entry(self.0 .0, self.0 .1)?;
        if let Some((k, v)) = self.1 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// `body` as an `application/json` response.
fn json_bytes<T: Serialize>(status: StatusCode, body: &T) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::Internal(format!("serialize response: {e}")))?;
    Ok((
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}

/// `{"<plural>": [...], "<links_key>": [...]}` for one page.
pub fn page<T: Serialize>(
    plural: &str,
    links_key: &str,
    items: &[T],
    ids: &[String],
    req: &ListRequest,
    base: &str,
) -> Result<Response, ApiError> {
    let links = Value::Array(listing::links(req, base, ids));
    if req.fields.is_empty() {
        return json_bytes(
            StatusCode::OK,
            &Object((plural, &items), Some((links_key, &links))),
        );
    }
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        out.push(listing::select_fields(to_value(i)?, &req.fields));
    }
    Ok(Json(serde_json::json!({ plural: out, links_key: links })).into_response())
}

/// `fields=` of a single-object GET.
pub fn fields_of(raw_query: Option<&str>) -> Vec<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw_query.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether the query sets `flag` to true (`?cascade=true`, any case).
pub fn query_flag(raw_query: Option<&str>, flag: &str) -> bool {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw_query.unwrap_or(""))
        .unwrap_or_default()
        .iter()
        .any(|(k, v)| k == flag && v.eq_ignore_ascii_case("true"))
}

/// Parse a path id; anything that is not a UUID cannot exist → 404.
pub fn parse_id<T: std::str::FromStr>(
    kind: octavia_model::ObjectKind,
    raw: &str,
) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(kind, raw))
}

/// 204 No Content.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
