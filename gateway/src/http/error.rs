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
    /// Where in a query the error is (line, column), for Rakam's query
    /// error shape.
    pub query_position: Option<(u64, u64)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), retry_after: None, query_position: None }
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

    /// An error in a query, answered in Rakam's query error shape:
    /// `{"error": {"message", "sqlState", "errorCode", "errorLine",
    /// "charPositionInLine"}, "error_code": status}`.
    /// Without a position in the message, the error is placed at the end
    /// of `sql` (where a parser that ran out of input stopped).
    pub fn query(status: StatusCode, message: impl Into<String>, sql: &str) -> Self {
        let message = message.into();
        let end = || {
            let line = sql.lines().count().max(1) as u64;
            let column = sql.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
            (line, column)
        };
        let position = crate::query::run::error_position(&message).unwrap_or_else(end);
        ApiError { query_position: Some(position), ..Self::new(status, message) }
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
        let body = match self.query_position {
            None => error_body(self.status, &self.message),
            Some((line, column)) => serde_json::json!({
                "error": {
                    "message": self.message,
                    "sqlState": serde_json::Value::Null,
                    "errorCode": self.status.as_u16(),
                    "errorLine": line,
                    "charPositionInLine": column,
                },
                "error_code": self.status.as_u16(),
            })
            .to_string(),
        };
        let mut response = (self.status, body).into_response();
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
            IngestError::Refused(r) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, r.to_string()),
            e @ IngestError::TooManyFields { .. } => ApiError::bad_request(e.to_string()),
        }
    }
}

impl From<crate::ingest::sdk::DeliverError> for ApiError {
    fn from(e: crate::ingest::sdk::DeliverError) -> Self {
        match e {
            crate::ingest::sdk::DeliverError::Ingest(e) => e.into(),
            crate::ingest::sdk::DeliverError::Users(e) => e.into(),
        }
    }
}

impl From<crate::users::Error> for ApiError {
    fn from(e: crate::users::Error) -> Self {
        use crate::users::Error;
        match e {
            Error::Invalid(message) => ApiError::bad_request(message),
            Error::Metadata(e) => e.into(),
            e => {
                tracing::error!(error = %e, "user database failed");
                ApiError::unavailable(format!("the user database is unavailable: {e}"))
            }
        }
    }
}
