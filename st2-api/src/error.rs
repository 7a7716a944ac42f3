//! The API error: every failure becomes StackStorm's `{"faultstring": ...}` with a status code.

use axum::http::StatusCode;
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
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
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
        (self.status, Json(json!({"faultstring": self.message}))).into_response()
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
            ServiceError::Conflict { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
            ServiceError::Busy(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            other => Self::new(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}
