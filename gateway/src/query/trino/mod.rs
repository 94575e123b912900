//! The Trino client protocol, served: `POST /v1/statement` and the pages
//! behind its `nextUri`, so that Trino's and Presto's drivers and BI tools
//! query a project with the same rewrite, plugins and limits as
//! `/query/execute`.

pub mod command;
mod execute;
pub mod metadata;
mod page;
pub mod statements;
pub mod types;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::run::{QueryError, error_position};
pub use statements::{Session, Statements};

/// The Trino protocol (`[trino]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrinoConfig {
    /// A statement whose client has not asked for its next page for this
    /// many seconds is cancelled and forgotten.
    #[serde(default = "default_abandon_after_s")]
    pub abandon_after_s: u64,
    /// Bytes of JSON rows one page carries at most (at least one row).
    #[serde(default = "default_page_bytes")]
    pub page_bytes: usize,
    /// Statements of one project open at once (running, or with pages
    /// still to be read); more are refused with 429.
    #[serde(default = "default_max_open_per_project")]
    pub max_open_per_project: usize,
    /// Longest a page request waits for a running statement, in
    /// milliseconds, before it answers that the statement still runs.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
}

fn default_abandon_after_s() -> u64 {
    300
}
fn default_page_bytes() -> usize {
    1 << 20
}
fn default_max_open_per_project() -> usize {
    100
}
fn default_max_wait_ms() -> u64 {
    1_000
}

impl Default for TrinoConfig {
    fn default() -> Self {
        TrinoConfig {
            abandon_after_s: default_abandon_after_s(),
            page_bytes: default_page_bytes(),
            max_open_per_project: default_max_open_per_project(),
            max_wait_ms: default_max_wait_ms(),
        }
    }
}

/// An error as Trino answers it in a statement's `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrinoError {
    pub message: String,
    /// Trino's error name (`SYNTAX_ERROR`, `PERMISSION_DENIED`, …).
    pub name: &'static str,
    pub code: i64,
    /// `USER_ERROR`, `INTERNAL_ERROR` or `INSUFFICIENT_RESOURCES`.
    pub kind: &'static str,
    /// Line and column, where the SQL says.
    pub location: Option<(u64, u64)>,
}

const USER_ERROR: &str = "USER_ERROR";
const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
const INSUFFICIENT_RESOURCES: &str = "INSUFFICIENT_RESOURCES";

impl TrinoError {
    fn new(name: &'static str, code: i64, kind: &'static str, message: impl Into<String>) -> Self {
        TrinoError { message: message.into(), name, code, kind, location: None }
    }

    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new("SYNTAX_ERROR", 1, USER_ERROR, message)
    }
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new("NOT_SUPPORTED", 13, USER_ERROR, message)
    }
    pub fn invalid_parameters(message: impl Into<String>) -> Self {
        Self::new("INVALID_PARAMETER_USAGE", 60, USER_ERROR, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("NOT_FOUND", 5, USER_ERROR, message)
    }
    pub fn catalog_not_found(catalog: &str) -> Self {
        Self::new("CATALOG_NOT_FOUND", 44, USER_ERROR, format!("Catalog '{catalog}' not found"))
    }
    pub fn schema_not_found(schema: &str) -> Self {
        Self::new("SCHEMA_NOT_FOUND", 45, USER_ERROR, format!("Schema '{schema}' does not exist"))
    }
    pub fn table_not_found(table: &str) -> Self {
        Self::new("TABLE_NOT_FOUND", 46, USER_ERROR, format!("Table '{table}' does not exist"))
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("GENERIC_INTERNAL_ERROR", 65_536, INTERNAL_ERROR, message)
    }
    pub fn canceled() -> Self {
        Self::new("USER_CANCELED", 3, USER_ERROR, "Query was canceled")
    }
    pub fn abandoned(seconds: u64) -> Self {
        Self::new(
            "ABANDONED_QUERY",
            2,
            USER_ERROR,
            format!(
                "Query was abandoned: its client did not ask for its results for {seconds} s (trino.abandon_after_s)"
            ),
        )
    }

    /// The error's JSON, with a `failureInfo` as clients read it.
    pub fn to_json(&self) -> Json {
        let location = self.location.map(|(line, column)| json!({"lineNumber": line, "columnNumber": column}));
        let failure_type = match self.name {
            "SYNTAX_ERROR" => "io.trino.sql.parser.ParsingException",
            _ if self.kind == USER_ERROR => "io.trino.spi.TrinoException",
            _ => "java.lang.RuntimeException",
        };
        let mut failure = json!({
            "type": failure_type,
            "message": self.message,
            "suppressed": [],
            "stack": [],
        });
        let mut error = json!({
            "message": self.message,
            "errorCode": self.code,
            "errorName": self.name,
            "errorType": self.kind,
        });
        if let Some(location) = location {
            failure["errorLocation"] = location.clone();
            error["errorLocation"] = location;
        }
        error["failureInfo"] = failure;
        error
    }
}

impl From<QueryError> for TrinoError {
    fn from(e: QueryError) -> Self {
        let message = e.to_string();
        match e {
            QueryError::Syntax { .. } => {
                TrinoError { location: error_position(&message), ..TrinoError::syntax(message) }
            }
            QueryError::Invalid { .. } => {
                let kind = if message.contains("not found") && message.contains("table") {
                    "TABLE_NOT_FOUND"
                } else if message.contains("No field named") || message.contains("Schema error") {
                    "COLUMN_NOT_FOUND"
                } else {
                    "GENERIC_USER_ERROR"
                };
                let code = match kind {
                    "TABLE_NOT_FOUND" => 46,
                    "COLUMN_NOT_FOUND" => 47,
                    _ => 0,
                };
                TrinoError { location: error_position(&message), ..TrinoError::new(kind, code, USER_ERROR, message) }
            }
            // A name of this project that is no table of it.
            QueryError::Denied(reason) if reason.ends_with("is not a collection of this project") => {
                TrinoError::new("TABLE_NOT_FOUND", 46, USER_ERROR, message)
            }
            QueryError::NotFound(_) => TrinoError::new("TABLE_NOT_FOUND", 46, USER_ERROR, message),
            QueryError::Denied(_) | QueryError::Plugin(_) => {
                TrinoError::new("PERMISSION_DENIED", 4, USER_ERROR, message)
            }
            QueryError::TimedOut(_) => TrinoError::new("EXCEEDED_TIME_LIMIT", 131_075, INSUFFICIENT_RESOURCES, message),
            QueryError::TooLarge(_) => {
                TrinoError::new("EXCEEDED_LOCAL_MEMORY_LIMIT", 131_079, INSUFFICIENT_RESOURCES, message)
            }
            QueryError::Busy(_) => TrinoError::new("QUERY_QUEUE_FULL", 131_074, INSUFFICIENT_RESOURCES, message),
            QueryError::Unavailable(_) | QueryError::Failed(_) | QueryError::Metadata(_) | QueryError::Users(_) => {
                TrinoError::new("GENERIC_INTERNAL_ERROR", 65_536, INTERNAL_ERROR, message)
            }
        }
    }
}
