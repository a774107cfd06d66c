//! Version document, providers, the admin amphora API and `/metrics`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use octavia_api_types::amphora::AmphoraStatisticsResponse;
use octavia_api_types::load_balancer::PROVIDERS;
use octavia_api_types::provider;
use octavia_model::{AmphoraId, ObjectKind};

use crate::app::{self, AppState, OriginalPath};
use crate::auth::{rule, Caller};
use crate::error::ApiError;

/// `GET /` (no auth).
pub async fn versions(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let base = s.collection_url(&headers, &OriginalPath("/".into()));
    Json(octavia_api_types::version::versions(&base)).into_response()
}

/// `GET /v2`, `/v2.0`, `/v2/lbaas`, `/v2/octavia`.
pub async fn v2() -> Response {
    Json("v2").into_response()
}

/// `GET /metrics`: Prometheus text, 404 when no renderer is installed.
pub async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    match &s.ctx.metrics_render {
        Some(render) => Ok((
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            render(),
        )
            .into_response()),
        None => Err(ApiError::NotFound("Metrics are not enabled.".to_string())),
    }
}

pub async fn providers(caller: Caller) -> Result<Response, ApiError> {
    caller.authorize_own(&rule("provider", "get_all"))?;
    Ok(Json(serde_json::json!({"providers": provider::enabled_providers()})).into_response())
}

fn known_provider(p: &str) -> Result<(), ApiError> {
    if PROVIDERS.contains(&p) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "Provider '{p}' is not enabled."
        )))
    }
}

pub async fn flavor_capabilities(
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize_own(&rule("provider-flavor", "get_all"))?;
    known_provider(&p)?;
    Ok(
        Json(serde_json::json!({"flavor_capabilities": provider::amphora_flavor_capabilities()}))
            .into_response(),
    )
}

pub async fn availability_zone_capabilities(
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize_own(&rule("provider-availability-zone", "get_all"))?;
    known_provider(&p)?;
    Ok(Json(serde_json::json!({
        "availability_zone_capabilities": provider::amphora_availability_zone_capabilities()
    }))
    .into_response())
}

/// `PUT /v2/octavia/amphorae/{id}/failover` (admin): replace the amphora. 202; 404 for an
/// unknown or DELETED amphora; 409 when its load balancer is not ACTIVE or ERROR. Works on a
/// FAILOVER_STOPPED amphora (the operator's way past the circuit breaker).
pub async fn failover_amphora(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize_own(&rule("amphora", "put_failover"))?;
    let aid: AmphoraId = app::parse_id(ObjectKind::Amphora, &id)?;
    let job = s
        .ctx
        .store
        .failover_amphora(aid, octavia_model::JobClass::Operator)
        .await?;
    tracing::info!(amphora_id = %aid, job_id = %job, "amphora failover requested");
    metrics::counter!("octavia_failovers_queued_total", "cause" => "operator").increment(1);
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `DELETE /v2/octavia/amphorae/{id}` (admin): remove an amphora in ERROR (204; 404 for an
/// unknown or DELETED amphora; 409 in any other status). The worker deletes its instance.
pub async fn delete_amphora(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize_own(&rule("amphora", "delete"))?;
    let aid: AmphoraId = app::parse_id(ObjectKind::Amphora, &id)?;
    let job = s.ctx.store.delete_amphora(aid).await?;
    tracing::info!(amphora_id = %aid, job_id = %job, "amphora delete requested");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /v2/octavia/amphorae/{id}/config` (admin): push the agent configuration regenerated
/// from the controller's current settings (heartbeat key, controllers, interval). 202; 404
/// for an unknown or DELETED amphora.
pub async fn update_amphora_config(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize_own(&rule("amphora", "put_config"))?;
    let aid: AmphoraId = app::parse_id(ObjectKind::Amphora, &id)?;
    let job = s.ctx.store.update_amphora_config(aid).await?;
    tracing::info!(amphora_id = %aid, job_id = %job, "amphora configuration update requested");
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /v2/octavia/amphorae/{id}/stats` (admin): the counters of each listener on the
/// amphora. As Octavia, 404 "Amphora stats for <id> not found." when there are none (an
/// unknown amphora, or one no heartbeat has brought statistics from).
pub async fn amphora_stats(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.authorize_own(&rule("amphora", "get_stats"))?;
    let aid: AmphoraId = app::parse_id(ObjectKind::Amphora, &id)?;
    let stats = s.ctx.store.amphora_stats(aid).await?;
    if stats.is_empty() {
        return Err(ApiError::NotFound(format!(
            "Amphora stats for {id} not found."
        )));
    }
    let items: Vec<AmphoraStatisticsResponse> = stats.iter().map(Into::into).collect();
    Ok(Json(serde_json::json!({ "amphora_stats": items })).into_response())
}

/// Fallback for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("The resource could not be found.".to_string())
}
