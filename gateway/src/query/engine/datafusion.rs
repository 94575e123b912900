//! DataFusion, the embedded engine.
//!
//! Each query gets a session holding only its project's tables, each table
//! the Parquet files its manifest names at that moment (so a query sees
//! every batch committed before it started, and nothing of another
//! project even if a name slipped through), with the collection's newest
//! schema (older files read with nulls for later fields).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::catalog::MemoryCatalogProviderList;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use futures::StreamExt as _;
use sqlparser::ast::{Ident, ObjectName, Statement};

use super::memory::{QueryMemory, SharedMemory};
use super::{EngineError, QueryEngine, QueryOutput, guard};
use crate::batch::warehouse::{ENGINE_URL, Warehouse, arrow_schema};
use crate::metadata::MetadataStore;
use crate::query::Tables;
use crate::users::Users;

/// The user table's name in a query's session: no collection can have it.
const USERS_TABLE: &str = "$users";

/// What bounds a query's memory.
#[derive(Debug, Clone)]
pub struct MemorySettings {
    /// Bytes one query may hold.
    pub per_query: usize,
    /// Bytes all queries may hold together.
    pub total: usize,
    /// Where sorts and aggregations spill what does not fit.
    pub spill_dir: PathBuf,
}

impl MemorySettings {
    /// The configured limits, spilling under the data folder.
    pub fn from_config(query: &crate::config::QueryConfig, data_dir: &std::path::Path) -> Self {
        MemorySettings {
            per_query: query.max_memory_bytes,
            total: query.total_memory_bytes,
            spill_dir: data_dir.join("spill"),
        }
    }
}

pub struct DataFusionEngine {
    store: Arc<dyn MetadataStore>,
    warehouse: Warehouse,
    users: Arc<Users>,
    /// Built once: the configuration and the guarded functions every
    /// query's session starts from.
    template: SessionState,
    /// The runtime parts queries share (spill files, caches, object
    /// stores); each query gets its own memory pool over them.
    base: Arc<RuntimeEnv>,
    memory: Arc<SharedMemory>,
    per_query: usize,
}

impl DataFusionEngine {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        warehouse: Warehouse,
        users: Arc<Users>,
        memory: &MemorySettings,
    ) -> Result<Self, EngineError> {
        let failed = |e: datafusion::error::DataFusionError| EngineError::Query(e.to_string());
        std::fs::create_dir_all(&memory.spill_dir)
            .map_err(|e| EngineError::Storage(format!("spill folder {}: {e}", memory.spill_dir.display())))?;
        let disk =
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![memory.spill_dir.clone()]));
        let base = RuntimeEnvBuilder::new().with_disk_manager_builder(disk).build_arc().map_err(failed)?;
        // Queries read the warehouse where it is, through its own store.
        let url = ObjectStoreUrl::parse(ENGINE_URL).map_err(failed)?;
        base.register_object_store(url.as_ref(), warehouse.engine_store().clone());
        let config = SessionConfig::new().with_target_partitions(2).with_information_schema(false);
        let mut template = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(base.clone())
            .with_default_features()
            .build();
        guard::guard_functions(&mut template, memory.per_query).map_err(failed)?;
        Ok(DataFusionEngine {
            store,
            warehouse,
            users,
            template,
            base,
            memory: SharedMemory::new(memory.total),
            per_query: memory.per_query,
        })
    }

    async fn session(&self, project: &str, tables: &Tables) -> Result<SessionContext, EngineError> {
        let runtime = Arc::new(RuntimeEnv {
            memory_pool: Arc::new(QueryMemory::new(self.per_query, self.memory.clone())),
            disk_manager: self.base.disk_manager.clone(),
            cache_manager: self.base.cache_manager.clone(),
            object_store_registry: self.base.object_store_registry.clone(),
        });
        // A catalog of its own: the template's is shared by every clone.
        let config = self.template.config().clone().with_create_default_catalog_and_schema(true);
        let state = SessionStateBuilder::new_from_existing(self.template.clone())
            .with_config(config)
            .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
            .with_runtime_env(runtime)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let users = super::users_table::UserTable::new(self.users.clone(), project, tables.users.clone());
        ctx.register_table(datafusion::common::TableReference::bare(USERS_TABLE), Arc::new(users))
            .map_err(|e| EngineError::Query(e.to_string()))?;
        for (collection, fields) in &tables.collections {
            let files: Vec<String> =
                self.store.parquet_files(project, collection).await?.into_iter().map(|f| f.path).collect();
            let table = self.files_table(&ctx, &files, Some(fields)).await?;
            ctx.register_table(datafusion::common::TableReference::bare(collection.clone()), table)
                .map_err(|e| EngineError::Query(e.to_string()))?;
        }
        for (name, derived) in &tables.derived {
            let table: Arc<dyn datafusion::datasource::TableProvider> = match &derived.answer {
                Some((schema, batches)) => Arc::new(
                    MemTable::try_new(schema.clone(), vec![batches.clone()])
                        .map_err(|e| EngineError::Query(e.to_string()))?,
                ),
                None => self.files_table(&ctx, &derived.files, derived.fields.as_deref()).await?,
            };
            ctx.register_table(datafusion::common::TableReference::bare(name.clone()), table)
                .map_err(|e| EngineError::Query(e.to_string()))?;
        }
        Ok(ctx)
    }

    /// A table over exactly `files`, with `fields` as its columns (older
    /// files read with nulls for later fields), or the files' own columns.
    async fn files_table(
        &self,
        ctx: &SessionContext,
        files: &[String],
        fields: Option<&[crate::schema::types::Field]>,
    ) -> Result<Arc<dyn datafusion::datasource::TableProvider>, EngineError> {
        self.files_with_schema(ctx, files, fields.map(arrow_schema)).await
    }

    /// A table over exactly `files`, with `table_schema` or the files' own.
    async fn files_with_schema(
        &self,
        ctx: &SessionContext,
        files: &[String],
        table_schema: Option<datafusion::arrow::datatypes::SchemaRef>,
    ) -> Result<Arc<dyn datafusion::datasource::TableProvider>, EngineError> {
        let failed = |e: datafusion::error::DataFusionError| EngineError::Query(e.to_string());
        if files.is_empty() {
            let schema = table_schema.unwrap_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty()));
            return Ok(Arc::new(MemTable::try_new(schema, vec![vec![]]).map_err(failed)?));
        }
        let urls = files
            .iter()
            .map(|path| ListingTableUrl::parse(self.warehouse.engine_url(path)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Storage(e.to_string()))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options);
        let config = match table_schema {
            Some(schema) => config.with_schema(schema),
            None => config.infer_schema(&ctx.state()).await.map_err(|e| self.error(e))?,
        };
        Ok(Arc::new(ListingTable::try_new(config).map_err(failed)?))
    }

    /// The engine's words with the warehouse's place on this server left
    /// out (plans and errors name files).
    fn hide_paths(&self, text: &str) -> String {
        let mut text = text.replace(&format!("{ENGINE_URL}/"), "");
        let prefix = self.warehouse.engine_prefix();
        if !prefix.is_empty() {
            text = text.replace(prefix, "");
        }
        match self.warehouse.local_root() {
            Some(root) => {
                let root = root.display().to_string();
                text.replace(&format!("file://{root}/"), "").replace(&format!("{root}/"), "").replace(&root, "")
            }
            None => text,
        }
    }

    /// A plan's text without the warehouse's place.
    fn explained(&self, batch: &RecordBatch) -> datafusion::error::Result<RecordBatch> {
        let columns = batch
            .columns()
            .iter()
            .map(|column| match column.as_string_opt::<i32>() {
                Some(text) => {
                    Arc::new(text.iter().map(|v| v.map(|v| self.hide_paths(v))).collect::<StringArray>()) as ArrayRef
                }
                None => column.clone(),
            })
            .collect();
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }

    fn error(&self, e: datafusion::error::DataFusionError) -> EngineError {
        let message = self.hide_paths(&e.to_string());
        if message.contains(guard::PAST_DEADLINE) {
            EngineError::PastDeadline
        } else if message.contains(super::memory::QUERY_LIMIT) || message.contains(guard::VALUE_TOO_LARGE) {
            EngineError::TooMuchMemory(message)
        } else if message.contains(super::memory::GATEWAY_LIMIT) {
            EngineError::Busy(message)
        } else {
            EngineError::Query(message)
        }
    }
}

/// A rewritten query planned in a session of its own.
pub struct Planned {
    pub logical: datafusion::logical_expr::LogicalPlan,
    pub physical: Arc<dyn ExecutionPlan>,
    /// The session it was planned in, which runs it.
    pub ctx: SessionContext,
}

impl DataFusionEngine {
    /// Plans a rewritten query over `tables` (queries only: no DDL, DML or
    /// statements).
    pub async fn plan(&self, project: &str, tables: &Tables, statement: Statement) -> Result<Planned, EngineError> {
        let ctx = self.session(project, tables).await?;
        let state = ctx.state();
        let logical = state
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(statement)))
            .await
            .map_err(|e| self.error(e))?;
        let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        options.verify_plan(&logical).map_err(|e| self.error(e))?;
        let physical = state.create_physical_plan(&logical).await.map_err(|e| self.error(e))?;
        Ok(Planned { logical, physical, ctx })
    }

    /// Runs a plan in the session it was planned in, within the query's
    /// memory (which its answer counts against too).
    pub async fn collect(
        &self,
        ctx: &SessionContext,
        plan: Arc<dyn ExecutionPlan>,
    ) -> Result<Vec<RecordBatch>, EngineError> {
        let plan = cooperative(plan).map_err(|e| self.error(e))?;
        let task = ctx.task_ctx();
        let held = MemoryConsumer::new("the result").register(task.memory_pool());
        let mut stream = datafusion::physical_plan::execute_stream(plan, task).map_err(|e| self.error(e))?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| self.error(e))?;
            held.try_grow(guard::array_bytes(batch.columns())).map_err(|e| self.error(e))?;
            batches.push(batch);
        }
        Ok(batches)
    }

    /// A scan of exactly `files`, read as `schema`.
    pub async fn scan(
        &self,
        ctx: &SessionContext,
        files: &[String],
        schema: datafusion::arrow::datatypes::SchemaRef,
    ) -> Result<Arc<dyn ExecutionPlan>, EngineError> {
        let table = self.files_with_schema(ctx, files, Some(schema)).await?;
        table.scan(&ctx.state(), None, &[], None).await.map_err(|e| self.error(e))
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

    fn users_table_name(&self, _project: &str) -> ObjectName {
        ObjectName::from(vec![Ident::with_quote('"', USERS_TABLE)])
    }

    fn derived_table_name(&self, _project: &str, name: &str) -> ObjectName {
        ObjectName::from(vec![Ident::with_quote('"', name)])
    }

    async fn run(&self, project: &str, tables: &Tables, statement: Statement) -> Result<QueryOutput, EngineError> {
        let explain = matches!(statement, Statement::Explain { .. });
        let planned = self.plan(project, tables, statement).await?;
        let schema = planned.physical.schema();
        let mut batches = self.collect(&planned.ctx, planned.physical).await?;
        if explain {
            batches = batches.iter().map(|b| self.explained(b)).collect::<Result<_, _>>().map_err(|e| self.error(e))?;
        }
        Ok(QueryOutput { batches, schema, views: Default::default() })
    }
}
