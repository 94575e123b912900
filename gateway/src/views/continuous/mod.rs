//! Continuous queries: an aggregate query whose answer the batch loop keeps
//! current, read as `continuous.<table_name>`.
//!
//! Each load's new rows are aggregated into partial states (DataFusion's
//! partial aggregation), written as a Parquet file and committed in the same
//! metadata transaction as the load's files and offsets, so the states
//! advance exactly once with storage, across crashes and restarts. A read
//! runs the final aggregation over the stored states. States are kept per
//! partition (the values of the query's partition keys), and the master
//! merges a partition's files into one now and then. History (with
//! `replay`) is the collection files committed before the query, marked at
//! its creation and folded in once; compaction keeps marked and unmarked
//! files apart.

mod answers;
pub mod definition;
mod fold;
mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use sqlparser::ast::{Ident, ObjectName};

pub use fold::Folder;
pub use plan::Split;

use crate::batch::warehouse::{self, Warehouse};
use crate::metadata::{self, ContinuousRecord, MetadataStore, StateFile};
use crate::query::engine::{DataFusionEngine, EngineError, Planned};
use crate::query::rewrite::{self, DerivedNames, Scope};
use crate::query::{DerivedTable, Tables};

#[derive(Debug, thiserror::Error)]
pub enum ContinuousError {
    /// The query cannot be a continuous query, and why.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Denied(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
    #[error("storage: {0}")]
    Storage(#[from] warehouse::Error),
    #[error("a newer master has claimed the fence: epoch {0} may no longer commit")]
    Deposed(i64),
    #[error("the continuous query's state moved meanwhile")]
    Conflict,
}

pub type Result<T, E = ContinuousError> = std::result::Result<T, E>;

/// A continuous query planned over chosen collection files.
pub struct PlannedQuery {
    pub split: Split,
    pub planned: Planned,
    /// The collections it reads.
    pub reads: BTreeSet<String>,
    /// For each partition key, its column in the states.
    pub keys: Vec<usize>,
}

/// What plans, folds and answers continuous queries: the embedded engine
/// whatever engine answers queries, since the states are its own.
pub struct Continuous {
    store: Arc<dyn MetadataStore>,
    engine: Arc<DataFusionEngine>,
    warehouse: Warehouse,
    answers: answers::Answers,
}

impl Continuous {
    pub fn new(store: Arc<dyn MetadataStore>, engine: Arc<DataFusionEngine>, warehouse: Warehouse) -> Arc<Self> {
        Arc::new(Continuous { store, engine, warehouse, answers: answers::Answers::default() })
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// Plans `sql` of `project` with each collection it reads as a table
    /// over `sources`' files of it (none when absent).
    pub async fn plan(
        &self,
        project: &str,
        sql: &str,
        partition_keys: &[String],
        sources: &BTreeMap<String, Vec<String>>,
    ) -> Result<PlannedQuery> {
        let collections: crate::query::Collections =
            self.store.latest_schemas(project).await?.into_iter().map(|s| (s.collection, s.fields)).collect();
        let (statement, reads) = {
            let reads = std::cell::RefCell::new(BTreeSet::new());
            let table_name = |collection: &str| {
                reads.borrow_mut().insert(collection.to_owned());
                ObjectName::from(vec![Ident::with_quote('"', source_table(collection))])
            };
            let users = ObjectName::from(vec![Ident::with_quote('"', "$users")]);
            let derived = DerivedNames::new();
            let scope = Scope {
                collections: &collections,
                table_name: &table_name,
                users_table: &users,
                catalog: None,
                derived: &derived,
            };
            let statement = rewrite::rewrite(sql, &scope).map_err(|e| match e {
                rewrite::RewriteError::Denied(reason) => ContinuousError::Denied(reason),
                other => ContinuousError::Invalid(other.to_string()),
            })?;
            (statement, reads.into_inner())
        };
        let mut uses_users = false;
        let _ = sqlparser::ast::visit_relations(&statement, |name| {
            uses_users |= name.to_string().contains("$users");
            std::ops::ControlFlow::<()>::Continue(())
        });
        if uses_users {
            // Users are no events: no load brings them.
            return Err(ContinuousError::Invalid("a continuous query reads collections, not users".to_owned()));
        }
        let mut tables = Tables::default();
        for collection in &reads {
            tables.derived.insert(
                source_table(collection),
                DerivedTable {
                    files: sources.get(collection).cloned().unwrap_or_default(),
                    fields: collections.get(collection).cloned(),
                    answer: None,
                },
            );
        }
        let planned = self.engine.plan(project, &tables, statement).await?;
        let split = Split::of(planned.physical.clone()).map_err(ContinuousError::Invalid)?;
        let keys = plan::key_columns(&planned.logical, partition_keys).map_err(ContinuousError::Invalid)?;
        Ok(PlannedQuery { split, planned, reads, keys })
    }

    /// The query's answer over its stored states.
    pub async fn answer(&self, query: &ContinuousRecord) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let mut files: Vec<String> =
            self.store.continuous_state(&query.project, &query.table_name).await?.into_iter().map(|f| f.path).collect();
        files.sort_unstable();
        let key = (query.project.clone(), query.table_name.clone());
        if let Some(kept) = self.answers.get(&key, &query.query, &files) {
            return Ok(kept);
        }
        let planned = self.plan(&query.project, &query.query, &[], &BTreeMap::new()).await?;
        let states = self.engine.scan(&planned.planned.ctx, &files, planned.split.state_schema()).await?;
        let plan =
            planned.split.finish(states, files.is_empty()).map_err(|e| ContinuousError::Invalid(e.to_string()))?;
        let schema = plan.schema();
        let batches = self.engine.collect(&planned.planned.ctx, plan).await?;
        self.answers.put(key, &query.query, files, &schema, &batches);
        Ok((schema, batches))
    }

    /// The final values per the group keys at `keep`, over the states whose
    /// first group key lies in `[low, high)` (see [`Split::regroup`]).
    pub async fn regrouped(
        &self,
        query: &ContinuousRecord,
        keep: &[usize],
        low: i64,
        high: i64,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let planned = self.plan(&query.project, &query.query, &[], &BTreeMap::new()).await?;
        let files: Vec<String> =
            self.store.continuous_state(&query.project, &query.table_name).await?.into_iter().map(|f| f.path).collect();
        let states = self.engine.scan(&planned.planned.ctx, &files, planned.split.state_schema()).await?;
        let plan = planned
            .split
            .regroup(states, keep, Some((0, low, high)))
            .map_err(|e| ContinuousError::Invalid(e.to_string()))?;
        let schema = plan.schema();
        let batches = self.engine.collect(&planned.planned.ctx, plan).await?;
        Ok((schema, batches))
    }

    /// Runs `plan` (partial or reduced states) and writes its rows, one
    /// file per partition.
    async fn write_states(
        &self,
        query: &ContinuousRecord,
        planned: &PlannedQuery,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    ) -> Result<Vec<StateFile>> {
        let schema = plan.schema();
        let batches = self.engine.collect(&planned.planned.ctx, plan).await?;
        let failed = |e: datafusion::arrow::error::ArrowError| ContinuousError::Storage(warehouse::Error::Arrow(e));
        let batch = datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(failed)?;
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let mut files = Vec::new();
        for (partition, rows) in by_partition(&batch, &planned.keys).map_err(failed)? {
            let bytes = warehouse::parquet_bytes(&rows)?;
            let path =
                format!("{}/$continuous/{}/{}.parquet", query.project, query.table_name, uuid::Uuid::new_v4().simple());
            let size = bytes.len() as u64;
            self.warehouse.put_durable(&path, bytes).await?;
            files.push(StateFile {
                path,
                table_name: query.table_name.clone(),
                partition,
                rows: rows.num_rows() as u64,
                bytes: size,
            });
        }
        Ok(files)
    }

    /// Deletes state files whose commit was refused.
    pub async fn discard(&self, files: &[StateFile]) {
        for f in files {
            if let Err(e) = self.warehouse.delete(&f.path).await {
                tracing::warn!(path = f.path, error = %e, "could not delete refused state");
            }
        }
    }
}

/// The engine's name of a collection's chosen files in a continuous
/// query's session.
fn source_table(collection: &str) -> String {
    format!("$source:{collection}")
}

/// The rows of `batch` by the values of its `keys` columns.
fn by_partition(
    batch: &RecordBatch,
    keys: &[usize],
) -> Result<Vec<(String, RecordBatch)>, datafusion::arrow::error::ArrowError> {
    if keys.is_empty() {
        return Ok(vec![(String::new(), batch.clone())]);
    }
    let options = FormatOptions::default().with_null("\u{0}");
    let formatters: Vec<ArrayFormatter<'_>> =
        keys.iter().map(|&k| ArrayFormatter::try_new(batch.column(k).as_ref(), &options)).collect::<Result<_, _>>()?;
    let mut rows: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for row in 0..batch.num_rows() {
        let label: Vec<String> = formatters.iter().map(|f| f.value(row).to_string()).collect();
        rows.entry(label.join("\u{1f}")).or_default().push(row as u32);
    }
    rows.into_iter()
        .map(|(label, indices)| {
            let taken = datafusion::arrow::compute::take_record_batch(batch, &UInt32Array::from(indices))?;
            Ok((label, taken))
        })
        .collect()
}
