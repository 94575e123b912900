//! The engine seam: what runs a rewritten query over a project's tables.

mod datafusion;

use async_trait::async_trait;
use sqlparser::ast::{ObjectName, Statement};

pub use self::datafusion::DataFusionEngine;
use super::Collections;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Query(String),
    #[error("the query ran longer than {0} s")]
    Timeout(u64),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::Error),
    #[error("storage: {0}")]
    Storage(String),
}

/// The result of a query, as record batches.
pub struct QueryOutput {
    pub batches: Vec<::datafusion::arrow::array::RecordBatch>,
    pub schema: ::datafusion::arrow::datatypes::SchemaRef,
}

#[async_trait]
pub trait QueryEngine: Send + Sync + 'static {
    /// The name a rewritten query uses for a collection's table.
    fn table_name(&self, project: &str, collection: &str) -> ObjectName;
    /// Runs a rewritten statement over the project's tables, as of the
    /// `collections` the statement was rewritten with.
    async fn run(
        &self,
        project: &str,
        collections: &Collections,
        statement: Statement,
        timeout_s: u64,
    ) -> Result<QueryOutput, EngineError>;
}
