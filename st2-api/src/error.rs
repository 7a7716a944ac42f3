//! The API error: every failure becomes StackStorm's `{"faultstring": ...}` with a status code.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use st2_core::services::ServiceError;
use st2_core::store::StoreError;

/// An HTTP error with StackStorm's body shape.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Status code.
    pub status: StatusCode,
    /// The `faultstring`.
    pub message: String,
    /// For a 409: the id of the object the request collides with (StackStorm's `conflict-id`).
    pub conflict_id: Option<String>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            conflict_id: None,
        }
    }

    /// 409: saving would give `kind` a second object with the unique `key_ref`; `existing_id`
    /// is the object that has it (the body's `conflict-id`).
    pub fn duplicate(kind: &str, key_ref: &str, existing_id: &str) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: format!(
                "Tried to save duplicate unique keys: a {kind} with ref \"{key_ref}\" already exists (id {existing_id})"
            ),
            conflict_id: Some(existing_id.to_string()),
        }
    }

    /// 401 with StackStorm's message.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized - One of Token or API key required.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.conflict_id {
            Some(id) => json!({"faultstring": self.message, "conflict-id": id}),
            None => json!({"faultstring": self.message}),
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }
}

impl From<st2_core::Error> for ApiError {
    fn from(e: st2_core::Error) -> Self {
        match e {
            st2_core::Error::Service(s) => s.into(),
            st2_core::Error::Store(s) => s.into(),
            other => Self::new(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            ServiceError::Store(s) => s.into(),
            ServiceError::Bus(b) => {
                tracing::error!(error = %b, "bus failure");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
            ServiceError::Conflict { ref id, .. } => Self {
                conflict_id: Some(id.clone()),
                ..Self::new(StatusCode::CONFLICT, e.to_string())
            },
            ServiceError::Busy(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            other => Self::new(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

/// Longest rejection text turned into a `faultstring` (axum's messages are short).
const MAX_REJECTION_TEXT: usize = 64 * 1024;

/// Middleware: an error answer that is not JSON (axum's extractor rejections: malformed JSON,
/// bad query or path, body over the limit) becomes `{"faultstring": <its text>}` with the same
/// status, so every error has StackStorm's shape.
pub async fn faultstring_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REJECTION_TEXT).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_string(),
        _ => parts
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .to_string(),
    };
    let mut out = ApiError::new(parts.status, text).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
