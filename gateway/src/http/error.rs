//! Rakam's JSON error shape, `{"error": message, "error_code": status}`, for
//! every failure the HTTP API answers.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::ingest::IngestError;
use crate::{log, metadata};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u32>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message) }
    }
}

/// The JSON body of an error.
pub fn error_body(status: StatusCode, message: &str) -> String {
    serde_json::json!({"error": message, "error_code": status.as_u16()}).to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, error_body(self.status, &self.message)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<metadata::Error> for ApiError {
    fn from(e: metadata::Error) -> Self {
        tracing::error!(error = %e, "metadata store failed");
        ApiError::unavailable(format!("the metadata store is unavailable: {e}"))
    }
}

impl From<log::Error> for ApiError {
    fn from(e: log::Error) -> Self {
        tracing::error!(error = %e, "event log failed");
        ApiError::unavailable(format!("the event log could not store the events: {e}"))
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Metadata(e) => e.into(),
            IngestError::Log(e) => e.into(),
        }
    }
}
