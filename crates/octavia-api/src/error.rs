//! The one place where errors become HTTP responses (Octavia's WSME fault body).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use octavia_api_types::TypesError;
use octavia_db::DbError;
use octavia_model::ObjectKind;

/// Everything a handler can fail with; each variant has one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed or invalid request.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid token (Keystone auth).
    #[error("{0}")]
    Unauthorized(String),
    /// 403: policy denied or quota met.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown object or path.
    #[error("{0}")]
    NotFound(String),
    /// 409: conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413: body larger than `max_request_body_size`.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: body with a Content-Type other than JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 501: valid but not implemented here (yet) or unsupported by the provider.
    #[error("{0}")]
    NotImplemented(String),
    /// 503: transient database trouble; retry.
    #[error("{0}")]
    Unavailable(String),
    /// 500: our fault.
    #[error("{0}")]
    Internal(String),
    /// The settings cannot be served (refused when building the router).
    #[error("invalid api settings: {0}")]
    Config(String),
}

/// The standard policy-denied fault.
pub fn policy_denied() -> ApiError {
    ApiError::Forbidden("Policy does not allow this request to be performed.".to_string())
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) | Self::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Octavia's `ProviderUnsupportedOptionError` (501) when `verdict` (a rule of
    /// `octavia_render::support`, what the amphora data plane serves) refuses the request:
    /// nothing the renderer would refuse is accepted and then left in ERROR.
    pub fn provider_supports(
        provider: Option<&str>,
        verdict: Result<(), String>,
    ) -> Result<(), Self> {
        verdict.map_err(|reason| {
            Self::NotImplemented(format!(
                "Provider '{}' does not support a requested option: {reason}",
                provider.unwrap_or("amphora")
            ))
        })
    }

    /// `<Resource> <id> not found.` as Octavia words it.
    pub fn not_found(kind: ObjectKind, id: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("{} {id} not found.", kind.display_name()))
    }
}

impl From<TypesError> for ApiError {
    fn from(e: TypesError) -> Self {
        match e {
            TypesError::Invalid { .. } => Self::BadRequest(e.to_string()),
            TypesError::NotImplemented { .. } => Self::NotImplemented(e.to_string()),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound { kind, id } => Self::NotFound(format!("{kind} {id} not found.")),
            DbError::Conflict(m) => Self::Conflict(m),
            DbError::QuotaExceeded(m) => {
                Self::Forbidden(format!("Quota has been met for resources: {m}"))
            }
            DbError::Invalid(m) => Self::BadRequest(m),
            e @ DbError::Retryable(_) => Self::Unavailable(e.to_string()),
            e @ (DbError::Other(_) | DbError::Internal(_)) => Self::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let faultcode = if status.is_server_error() {
            "Server"
        } else {
            "Client"
        };
        if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
            tracing::error!(status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request refused");
        }
        let body = serde_json::json!({
            "faultcode": faultcode,
            "faultstring": self.to_string(),
            "debuginfo": null,
        });
        (status, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use octavia_db::{DriverError, RecordKind};
    use octavia_model::ObjectKind;

    use super::*;

    #[test]
    fn db_errors_map_to_octavia_codes() {
        let cases: Vec<(DbError, u16)> = vec![
            (
                DbError::NotFound {
                    kind: ObjectKind::Pool.into(),
                    id: "x".into(),
                },
                404,
            ),
            (DbError::Conflict("c".into()), 409),
            (DbError::QuotaExceeded("pool".into()), 403),
            (DbError::Invalid("bad marker".into()), 400),
            (DbError::Retryable(DriverError::PoolTimedOut), 503),
            (DbError::Other(DriverError::RowNotFound), 500),
            (DbError::Internal("x".into()), 500),
        ];
        for (e, code) in cases {
            assert_eq!(ApiError::from(e).status().as_u16(), code);
        }
        for (kind, message) in [
            (
                ObjectKind::LoadBalancer.into(),
                "Load Balancer abc not found.",
            ),
            (ObjectKind::L7Policy.into(), "L7 Policy abc not found."),
            (
                ObjectKind::HealthMonitor.into(),
                "Health Monitor abc not found.",
            ),
            (ObjectKind::Amphora.into(), "Amphora abc not found."),
            (RecordKind::Quota, "Quota abc not found."),
        ] {
            let e = DbError::NotFound {
                kind,
                id: "abc".into(),
            };
            assert_eq!(ApiError::from(e).to_string(), message);
        }
    }
}
