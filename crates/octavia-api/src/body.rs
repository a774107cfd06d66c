//! Reading request bodies: Content-Type, size limit, JSON decoding naming the field.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Media types WSME decodes as JSON.
fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        mime.as_str(),
        "application/json" | "text/javascript" | "application/javascript"
    )
}

/// Read and decode a JSON body. Like WSME: a non-JSON Content-Type → 415
/// ("Unknown mimetype"); a missing one is taken as JSON. Larger than `limit` → 413.
pub async fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("<binary>");
        if !is_json(ct) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Unknown mimetype: {ct}"
            )));
        }
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(limit))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "Invalid input for field/attribute body. Missing request body".to_string(),
        ));
    }
    Ok(octavia_api_types::decode_body(&bytes)?)
}

/// The 413 error.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "Request is too large: the body exceeds {limit} bytes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=UTF-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
