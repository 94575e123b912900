//! DataFusion, the embedded engine.
//!
//! Each query gets a session holding only its project's tables, each table
//! the Parquet files its manifest names at that moment (so a query sees
//! every batch committed before it started, and nothing of another
//! project even if a name slipped through), with the collection's newest
//! schema (older files read with nulls for later fields).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use sqlparser::ast::{Ident, ObjectName, Statement};

use super::{EngineError, QueryEngine, QueryOutput};
use crate::batch::warehouse::{Warehouse, arrow_schema};
use crate::metadata::MetadataStore;
use crate::query::Collections;

pub struct DataFusionEngine {
    store: Arc<dyn MetadataStore>,
    warehouse: Warehouse,
    /// Queries run here, apart from the HTTP workers: CPU-bound plans do
    /// not starve requests, and a query past its time is aborted from
    /// outside.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for DataFusionEngine {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl DataFusionEngine {
    pub fn new(store: Arc<dyn MetadataStore>, warehouse: Warehouse) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weir-query")
            .enable_all()
            .build()
            .ok();
        DataFusionEngine { store, warehouse, runtime }
    }

    async fn session(&self, project: &str, collections: &Collections) -> Result<SessionContext, EngineError> {
        let config = SessionConfig::new().with_target_partitions(2).with_information_schema(false);
        let ctx = SessionContext::new_with_config(config);
        let root = self.warehouse.local_root().ok_or_else(|| EngineError::Storage("not a local warehouse".into()))?;
        for (collection, fields) in collections {
            let table_schema = arrow_schema(fields);
            let files = self.store.parquet_files(project, collection).await?;
            let table: Arc<dyn datafusion::datasource::TableProvider> = if files.is_empty() {
                Arc::new(MemTable::try_new(table_schema, vec![vec![]]).map_err(|e| EngineError::Query(e.to_string()))?)
            } else {
                let urls = files
                    .iter()
                    .map(|f| ListingTableUrl::parse(format!("file://{}", root.join(&f.path).display())))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| EngineError::Storage(e.to_string()))?;
                let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
                let config = ListingTableConfig::new_with_multi_paths(urls)
                    .with_listing_options(options)
                    .with_schema(table_schema);
                Arc::new(ListingTable::try_new(config).map_err(|e| EngineError::Query(e.to_string()))?)
            };
            ctx.register_table(datafusion::common::TableReference::bare(collection.clone()), table)
                .map_err(|e| EngineError::Query(e.to_string()))?;
        }
        Ok(ctx)
    }
}

/// Puts a `CooperativeExec` on every input of every operator, so that each
/// batch passed between operators spends tokio's task budget. Without it a
/// plan that multiplies rows (a cross join) runs without ever yielding, and
/// a query past its time could not be stopped.
fn cooperative(plan: Arc<dyn ExecutionPlan>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    let children = plan.children();
    if children.is_empty() {
        return Ok(plan);
    }
    let wrapped = children
        .into_iter()
        .map(|child| cooperative(child.clone()).map(|c| Arc::new(CooperativeExec::new(c)) as Arc<dyn ExecutionPlan>))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    datafusion::physical_plan::execution_plan::replace_children_if_necessary(plan, wrapped)
}

#[async_trait]
impl QueryEngine for DataFusionEngine {
    fn table_name(&self, _project: &str, collection: &str) -> ObjectName {
        ObjectName::from(vec![Ident::with_quote('"', collection)])
    }

    async fn run(
        &self,
        project: &str,
        collections: &Collections,
        statement: Statement,
        timeout_s: u64,
    ) -> Result<QueryOutput, EngineError> {
        let ctx = self.session(project, collections).await?;
        let work = async move {
            let state = ctx.state();
            let plan = state
                .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(statement)))
                .await
                .map_err(|e| EngineError::Query(e.to_string()))?;
            let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
            options.verify_plan(&plan).map_err(|e| EngineError::Query(e.to_string()))?;
            let physical = state.create_physical_plan(&plan).await.map_err(|e| EngineError::Query(e.to_string()))?;
            let physical = cooperative(physical).map_err(|e| EngineError::Query(e.to_string()))?;
            let schema = physical.schema();
            let batches = datafusion::physical_plan::collect(physical, ctx.task_ctx())
                .await
                .map_err(|e| EngineError::Query(e.to_string()))?;
            Ok(QueryOutput { batches, schema })
        };
        let runtime = self.runtime.as_ref().ok_or_else(|| EngineError::Query("the query runtime is gone".into()))?;
        let task = runtime.spawn(work);
        let abort = task.abort_handle();
        match tokio::time::timeout(std::time::Duration::from_secs(timeout_s), task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(EngineError::Query(format!("the query failed: {e}"))),
            Err(_) => {
                abort.abort();
                Err(EngineError::Timeout(timeout_s))
            }
        }
    }
}
