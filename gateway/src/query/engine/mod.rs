//! The engine seam: what runs a rewritten query over a project's tables.

mod datafusion;
mod guard;
mod memory;
pub mod presto;
mod users_table;

use async_trait::async_trait;
use sqlparser::ast::{ObjectName, Statement};

pub use self::datafusion::{DataFusionEngine, MemorySettings, Planned};
pub use self::presto::{PrestoConfig, PrestoEngine, TableSync};
use super::Tables;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Query(String),
    #[error("the query was stopped at its deadline")]
    PastDeadline,
    /// Over the query's own memory limit.
    #[error("{0}")]
    TooMuchMemory(String),
    /// Over what the gateway's queries may hold together, for now.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::Error),
    #[error("storage: {0}")]
    Storage(String),
}

/// The result of a query, as record batches.
pub struct QueryOutput {
    pub batches: Vec<::datafusion::arrow::array::RecordBatch>,
    pub schema: ::datafusion::arrow::datatypes::SchemaRef,
    /// The materialized views the query read, with when each was last
    /// refreshed (milliseconds; 0 for never).
    pub views: std::collections::BTreeMap<String, i64>,
}

#[async_trait]
pub trait QueryEngine: Send + Sync + 'static {
    /// The name a rewritten query uses for a collection's table.
    fn table_name(&self, project: &str, collection: &str) -> ObjectName;
    /// The name a rewritten query uses for the project's user table.
    fn users_table_name(&self, project: &str) -> ObjectName;
    /// The name a rewritten query uses for one of [`Tables::derived`].
    fn derived_table_name(&self, project: &str, name: &str) -> ObjectName;
    /// Runs a rewritten statement over the project's tables, as of the
    /// `tables` the statement was rewritten with. The caller bounds its
    /// time (see [`crate::query::lanes`]).
    async fn run(&self, project: &str, tables: &Tables, statement: Statement) -> Result<QueryOutput, EngineError>;
}
