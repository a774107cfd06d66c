//! The little of Neutron and Keystone that unmodified clients ask this endpoint for.
//!
//! `openstack loadbalancer create --vip-subnet-id X` resolves X through the network
//! service (`GET <endpoint>/v2/subnets?id=X`), and `--project NAME` through the identity
//! service. With `OS_AUTH_TYPE=none` every service is this endpoint, so:
//! * subnets are answered from the network lookup (read-only; the `noop` driver knows
//!   every subnet id, as Octavia's noop driver does);
//! * identity lookups are refused with 403, which makes the client use the project
//!   name as its id (the noauth model: project ids are whatever callers say).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::error::ApiError;

/// Query parameters the network client sends when it resolves a subnet.
#[derive(Debug, Deserialize)]
pub struct SubnetQuery {
    id: Option<String>,
    name: Option<String>,
}

async fn lookup(s: &AppState, id: &str) -> Result<Option<Value>, ApiError> {
    let Some(network) = &s.ctx.network else {
        return Err(ApiError::NotFound(
            "No network driver is configured for subnet lookups.".to_string(),
        ));
    };
    match network.find_subnet(id).await {
        Ok(Some(subnet)) => Ok(Some(json!({
            "id": subnet.id,
            "name": "",
            "network_id": subnet.network_id,
            "cidr": subnet.cidr,
            "gateway_ip": subnet.gateway_ip,
            "ip_version": if subnet.cidr.contains(':') { 6 } else { 4 },
        }))),
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::debug!(subnet_id = %id, error = %e, "subnet lookup failed");
            Ok(None)
        }
    }
}

/// `GET /v2/subnets?id=X` (also `?name=`): `{"subnets": [...]}`.
pub async fn list_subnets(
    State(s): State<AppState>,
    Query(q): Query<SubnetQuery>,
) -> Result<Response, ApiError> {
    // Subnets have no names here; a name lookup finds nothing.
    let found = match (&q.id, &q.name) {
        (Some(id), _) => lookup(&s, id).await?.into_iter().collect(),
        _ => Vec::new(),
    };
    Ok(Json(json!({ "subnets": found })).into_response())
}

/// `GET /v2/subnets/{id}`: `{"subnet": {...}}` or 404.
pub async fn get_subnet(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match lookup(&s, &id).await? {
        Some(subnet) => Ok(Json(json!({ "subnet": subnet })).into_response()),
        None => Err(ApiError::NotFound(format!(
            "Subnet {id} could not be found."
        ))),
    }
}

/// `/projects...`, `/v3/projects...`: this endpoint is not an identity service.
pub async fn identity_refused() -> ApiError {
    ApiError::Forbidden(
        "This endpoint does not serve the identity API; under noauth a project id is the \
         name the caller gives."
            .to_string(),
    )
}
