//! The janitor: deletes warehouse files that no manifest names, once no
//! query can be reading them. Two kinds: files compaction retired (deleted
//! a grace period after they left the manifest) and leftovers of a crash or
//! of a deposed master's refused commit (deleted a grace period after they
//! were written). A query reads only files the manifest named when it
//! started, and runs at most the query timeout, which the grace period
//! exceeds.
//!
//! Deletes run while holding the master's fence (no newer master can claim
//! it meanwhile, so none can commit a file of the same name) and this
//! process's loader (so its own loads cannot either).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::batch::loader::Loader;
use crate::batch::warehouse::{self, Warehouse};
use crate::metadata::{self, MetadataStore};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
    #[error(transparent)]
    Columnar(#[from] warehouse::Error),
    #[error("a newer master has claimed the fence: epoch {0} may no longer delete")]
    Deposed(i64),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// At most this many files are deleted under one hold of the fence.
const DELETES_PER_HOLD: usize = 100;

pub struct Janitor {
    store: Arc<dyn MetadataStore>,
    warehouse: Warehouse,
    loader: Arc<Loader>,
    grace: Duration,
}

impl Janitor {
    /// `grace` should exceed the longest a query can run.
    pub fn new(store: Arc<dyn MetadataStore>, loader: Arc<Loader>, grace: Duration) -> Self {
        let warehouse = loader.warehouse().clone();
        Janitor { store, warehouse, loader, grace }
    }

    /// Deletes what is due under the master's `epoch`; how many files.
    pub async fn run_once(&self, epoch: i64, now_ms: i64) -> Result<usize> {
        let due_before = now_ms - self.grace.as_millis() as i64;
        let named = self.named().await?;
        let retired: HashMap<String, i64> = self.store.retired_files().await?.into_iter().collect();
        let due: Vec<String> = self
            .warehouse
            .list_all()
            .await?
            .into_iter()
            .filter(|(path, written)| {
                is_ours(path) && !named.contains(path) && retired.get(path).copied().unwrap_or(*written) < due_before
            })
            .map(|(path, _)| path)
            .collect();
        // Retired files already gone (deleted before a restart lost the record).
        let listed: HashSet<&String> = due.iter().collect();
        let gone: Vec<String> =
            retired.keys().filter(|p| !listed.contains(p) && !named.contains(*p)).cloned().collect();
        let mut deleted = 0;
        for chunk in due.chunks(DELETES_PER_HOLD) {
            let mut failures = Vec::new();
            let work = async {
                let _no_loads = self.loader.exclusive().await;
                // The manifest again, now that nothing can commit.
                let named = match self.named().await {
                    Ok(named) => named,
                    Err(e) => return failures.push(e.to_string()),
                };
                for path in chunk.iter().filter(|p| !named.contains(*p)) {
                    match self.warehouse.delete(path).await {
                        Ok(()) => deleted += 1,
                        Err(e) => failures.push(format!("{path}: {e}")),
                    }
                }
            };
            if !self.store.while_fenced(epoch, Box::pin(work)).await? {
                return Err(Error::Deposed(epoch));
            }
            for failure in failures {
                tracing::warn!(failure, "the janitor could not delete a file");
            }
        }
        let forget: Vec<String> = due.into_iter().filter(|p| retired.contains_key(p)).chain(gone).collect();
        if !forget.is_empty() {
            self.store.forget_retired(&forget).await?;
        }
        Ok(deleted)
    }

    /// Every file a manifest names: collections' and views' snapshots'.
    async fn named(&self) -> Result<HashSet<String>> {
        let mut named: HashSet<String> = self.store.manifest().await?.into_iter().map(|f| f.path).collect();
        named.extend(self.store.derived_files().await?);
        Ok(named)
    }

    /// Runs every `interval` while `epoch` leads; returns once it finds it
    /// deposed.
    pub async fn run(self: Arc<Self>, epoch: i64, interval: Duration) -> Error {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            match self.run_once(epoch, chrono::Utc::now().timestamp_millis()).await {
                Ok(0) => {}
                Ok(files) => tracing::info!(files, "the janitor deleted files no manifest names"),
                Err(e @ Error::Deposed(_)) => return e,
                Err(e) => tracing::error!(error = %e, "the janitor failed; it will try again"),
            }
        }
    }
}

/// Whether a file is one Weir writes: a Parquet file, or a local
/// warehouse's temporary file of one (`….parquet#<n>`). Anything else under
/// the warehouse is left alone.
fn is_ours(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".parquet") || name.rsplit_once('#').is_some_and(|(file, _)| file.ends_with(".parquet"))
}
