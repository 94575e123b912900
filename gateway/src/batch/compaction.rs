//! Compaction: a day's small Parquet files of a collection become one.
//!
//! The merged file is written and made durable first; then one metadata
//! transaction takes the small files out of the manifest and puts the
//! merged one in. A query reads the manifest once, when it starts, so it
//! sees either every small file or the merged one: never a row twice, never
//! a row missing. The swap is fenced on the master's epoch and records the
//! small files as retired; the janitor deletes them after a grace period,
//! once queries that started before the swap are done with them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, new_null_array};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::batch::warehouse::{self, Warehouse, arrow_schema};
use crate::metadata::{self, Commit, MetadataStore, ParquetFile};
use crate::schema::types::Field;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
    #[error(transparent)]
    Columnar(#[from] warehouse::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("a newer master has claimed the fence: epoch {0} may no longer commit")]
    Deposed(i64),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Files at least this large are left alone.
const SMALL_FILE_BYTES: u64 = 32 << 20;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactStats {
    /// Small files taken out of manifests.
    pub merged: usize,
    /// Files put in their place.
    pub written: usize,
}

pub struct Compactor {
    store: Arc<dyn MetadataStore>,
    warehouse: Warehouse,
    /// A day is compacted once it has this many small files.
    min_files: usize,
    listener: Option<Arc<dyn super::FilesChanged>>,
}

impl Compactor {
    pub fn new(store: Arc<dyn MetadataStore>, warehouse: Warehouse, min_files: usize) -> Self {
        Compactor { store, warehouse, min_files: min_files.max(2), listener: None }
    }

    /// Tells `listener` of every swap.
    pub fn with_listener(mut self, listener: Arc<dyn super::FilesChanged>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Compacts every day of every collection that has enough small files,
    /// committing under the master's `epoch`.
    pub async fn run_once(&self, epoch: i64, now_ms: i64) -> Result<CompactStats> {
        let mut stats = CompactStats::default();
        for project in self.store.projects().await? {
            let marks = self.store.source_marks(&project).await?;
            for schema in self.store.latest_schemas(&project).await? {
                let files = self.store.parquet_files(&project, &schema.collection).await?;
                // Files are merged only with files the same materialized
                // views have read: a view's rows must stay apart from
                // rows it has not read.
                let mut days: BTreeMap<(String, BTreeSet<String>), Vec<ParquetFile>> = BTreeMap::new();
                for f in files.into_iter().filter(|f| f.bytes < SMALL_FILE_BYTES) {
                    let read_by = marks.get(&f.path).cloned().unwrap_or_default();
                    days.entry((f.day.clone(), read_by)).or_default().push(f);
                }
                for (_, group) in days.into_iter().filter(|(_, g)| g.len() >= self.min_files) {
                    if self.compact(epoch, &schema.fields, &group, now_ms).await? {
                        stats.merged += group.len();
                        stats.written += 1;
                    }
                }
            }
        }
        Ok(stats)
    }

    /// Merges one day's files; `false` when the manifest changed meanwhile.
    async fn compact(&self, epoch: i64, fields: &[Field], group: &[ParquetFile], now_ms: i64) -> Result<bool> {
        let schema = arrow_schema(fields);
        let mut batches = Vec::new();
        for file in group {
            let bytes = self.warehouse.get(&file.path).await?;
            for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
                let batch = batch?;
                // Older files lack the fields added since: nulls.
                let columns: Vec<ArrayRef> = schema
                    .fields()
                    .iter()
                    .map(|f| {
                        batch
                            .column_by_name(f.name())
                            .cloned()
                            .unwrap_or_else(|| new_null_array(f.data_type(), batch.num_rows()))
                    })
                    .collect();
                batches.push(RecordBatch::try_new(schema.clone(), columns)?);
            }
        }
        let merged = arrow::compute::concat_batches(&schema, &batches)?;
        let bytes = warehouse::parquet_bytes(&merged)?;
        let first = &group[0];
        let (low, high) = group.iter().fold((u64::MAX, 0), |(l, h), f| (l.min(f.first_offset), h.max(f.last_offset)));
        let path = format!(
            "{}/{}/_day={}/compacted-{low:020}-{high:020}-{}.parquet",
            first.project,
            first.collection,
            first.day,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let new = ParquetFile {
            path: path.clone(),
            rows: merged.num_rows() as u64,
            bytes: bytes.len() as u64,
            first_offset: low,
            last_offset: high,
            partition: group.iter().map(|f| f.partition).min().unwrap_or(0),
            ..first.clone()
        };
        self.warehouse.put_durable(&path, bytes).await?;
        let old: Vec<String> = group.iter().map(|f| f.path.clone()).collect();
        match self.store.replace_files(epoch, &old, &new, now_ms).await? {
            Commit::Done => {
                if let Some(listener) = &self.listener {
                    listener.changed(&first.project, &first.collection).await;
                }
                Ok(true)
            }
            outcome => {
                self.warehouse.delete(&path).await?;
                match outcome {
                    Commit::Fenced => Err(Error::Deposed(epoch)),
                    _ => Ok(false),
                }
            }
        }
    }

    /// Runs compaction every `interval` while `epoch` leads; returns once a
    /// commit finds it deposed.
    pub async fn run(self: Arc<Self>, epoch: i64, interval: Duration) -> Error {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match self.run_once(epoch, chrono::Utc::now().timestamp_millis()).await {
                Ok(_) => {}
                Err(e @ Error::Deposed(_)) => return e,
                Err(e) => tracing::error!(error = %e, "compaction failed; it will try again"),
            }
        }
    }
}
