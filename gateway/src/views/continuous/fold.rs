//! Folding rows into continuous queries' states: each load's new files
//! (committed with the load), a query's history once (its replay), and a
//! partition's many state files into one (the master's merge).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;

use super::{Continuous, ContinuousError, Result};
use crate::batch::FoldLoads;
use crate::metadata::{Commit, ContinuousRecord, Folded, ParquetFile, StateFile, StateSwap};

/// A partition's state files are merged once it has this many.
const MERGE_AT: usize = 8;

/// The loader's fold: each load's records into every continuous query of
/// the project that reads the collection.
pub struct Folder(pub Arc<Continuous>);

#[async_trait]
impl FoldLoads for Folder {
    async fn fold(&self, project: &str, collection: &str, files: &[ParquetFile]) -> Result<Folded, String> {
        let c = &self.0;
        let generation = c.store.continuous_generation().await.map_err(|e| e.to_string())?;
        let mut folded = Folded { generation, project: project.to_owned(), states: Vec::new() };
        if files.is_empty() {
            return Ok(folded);
        }
        let sources = BTreeMap::from([(collection.to_owned(), files.iter().map(|f| f.path.clone()).collect())]);
        for query in c.store.continuous_queries(Some(project)).await.map_err(|e| e.to_string())? {
            let written = async {
                let planned = c.plan(project, &query.query, &query.partition_keys, &sources).await?;
                if !planned.reads.contains(collection) {
                    return Ok(Vec::new());
                }
                c.write_states(&query, &planned, planned.split.partial.clone()).await
            };
            match written.await {
                Ok(states) => folded.states.extend(states),
                Err(e) => {
                    c.discard(&folded.states).await;
                    return Err(format!("continuous query {}: {e}", query.table_name));
                }
            }
        }
        Ok(folded)
    }

    async fn discard(&self, folded: &Folded) {
        self.0.discard(&folded.states).await;
    }
}

impl Continuous {
    /// Folds in the query's history (the collection files marked at its
    /// creation, as compaction has carried the marks), once.
    pub async fn replay(&self, query: &ContinuousRecord, epoch: Option<i64>, now_ms: i64) -> Result<()> {
        let (project, table) = (query.project.as_str(), query.table_name.as_str());
        let history = self.store.continuous_history(project, table).await?;
        let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let collections = self.store.latest_schemas(project).await?;
        for schema in &collections {
            let marked: Vec<String> = self
                .store
                .parquet_files(project, &schema.collection)
                .await?
                .into_iter()
                .map(|f| f.path)
                .filter(|p| history.contains(p))
                .collect();
            sources.insert(schema.collection.clone(), marked);
        }
        let planned = self.plan(project, &query.query, &query.partition_keys, &sources).await?;
        let states = if history.is_empty() {
            Vec::new()
        } else {
            self.write_states(query, &planned, planned.split.partial.clone()).await?
        };
        self.commit(query, epoch, &[], &states, Some(&history), now_ms).await
    }

    /// Merges each partition's state files once it has [`MERGE_AT`] of
    /// them (master work, fenced on `epoch`).
    pub async fn merge(&self, query: &ContinuousRecord, epoch: i64, now_ms: i64) -> Result<()> {
        let files = self.store.continuous_state(&query.project, &query.table_name).await?;
        let mut partitions: HashMap<&str, Vec<&StateFile>> = HashMap::new();
        for f in &files {
            partitions.entry(f.partition.as_str()).or_default().push(f);
        }
        for group in partitions.into_values().filter(|g| g.len() >= MERGE_AT) {
            let planned = self.plan(&query.project, &query.query, &query.partition_keys, &BTreeMap::new()).await?;
            let old: Vec<String> = group.iter().map(|f| f.path.clone()).collect();
            let states = self.engine.scan(&planned.planned.ctx, &old, planned.split.state_schema()).await?;
            let reduced = planned.split.reduce(states).map_err(|e| ContinuousError::Invalid(e.to_string()))?;
            let merged = self.write_states(query, &planned, reduced).await?;
            self.commit(query, Some(epoch), &old, &merged, None, now_ms).await?;
        }
        Ok(())
    }

    async fn commit(
        &self,
        query: &ContinuousRecord,
        epoch: Option<i64>,
        old: &[String],
        new: &[StateFile],
        history: Option<&[String]>,
        now_ms: i64,
    ) -> Result<()> {
        let swap = StateSwap { project: &query.project, table_name: &query.table_name, old, new, history };
        let outcome = self.store.replace_state(epoch, swap, now_ms).await;
        if !matches!(outcome, Ok(Commit::Done)) {
            self.discard(new).await;
        }
        match outcome? {
            Commit::Done => Ok(()),
            Commit::Conflict => Err(ContinuousError::Conflict),
            Commit::Fenced => Err(ContinuousError::Deposed(epoch.unwrap_or_default())),
        }
    }
}
