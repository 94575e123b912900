//! Master work: the batch loop, compaction and the janitor, run only while
//! this node leads and stopped as soon as it may not. A commit refused by
//! the fence stops them too, and this node steps down.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::election::{Election, Role};
use crate::batch::compaction::Compactor;
use crate::batch::janitor::Janitor;
use crate::batch::loader::Loader;
use crate::log::EventLog;
use crate::metadata::MetadataStore;

/// How often each part of master work runs.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub batch: Duration,
    pub compaction: Duration,
    pub janitor: Duration,
}

pub struct MasterWork {
    election: Arc<dyn Election>,
    log: Arc<dyn EventLog>,
    store: Arc<dyn MetadataStore>,
    loader: Arc<Loader>,
    compactor: Arc<Compactor>,
    janitor: Arc<Janitor>,
    intervals: Intervals,
    /// The epoch master work runs under on this node, if it runs here.
    running: watch::Sender<Option<i64>>,
}

impl MasterWork {
    pub fn new(
        election: Arc<dyn Election>,
        log: Arc<dyn EventLog>,
        store: Arc<dyn MetadataStore>,
        loader: Arc<Loader>,
        compactor: Arc<Compactor>,
        janitor: Arc<Janitor>,
        intervals: Intervals,
    ) -> Self {
        MasterWork { election, log, store, loader, compactor, janitor, intervals, running: watch::Sender::new(None) }
    }

    pub fn election(&self) -> &Arc<dyn Election> {
        &self.election
    }

    /// The epoch master work runs under on this node, if it runs here.
    pub fn epoch(&self) -> Option<i64> {
        *self.running.borrow()
    }

    /// Returns once everything in the log now is in storage: loaded here
    /// when this node leads; on a shared log, loaded by the master within
    /// `wait` otherwise.
    pub async fn commit(&self, now_ms: i64, wait: Duration) -> Result<(), String> {
        if let Some(epoch) = self.epoch() {
            return self.loader.run_once(epoch, now_ms).await.map(drop).map_err(|e| e.to_string());
        }
        if !self.log.shared() {
            return Err("this gateway does not lead now".to_owned());
        }
        let ends = self.log.end_offsets().await.map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(epoch) = self.epoch() {
                return self.loader.run_once(epoch, now_ms).await.map(drop).map_err(|e| e.to_string());
            }
            let committed = self.store.committed_offsets().await.map_err(|e| e.to_string())?;
            let behind = ends
                .iter()
                .filter(|(topic, partition, end)| {
                    *end > 0 && committed.get(&(topic.clone(), *partition)).copied().unwrap_or(0) < *end
                })
                .count();
            if behind == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the master has not loaded {behind} partitions within {} s (election role: {})",
                    wait.as_secs(),
                    self.election.role().borrow().name()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Follows the election until the process ends.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.follow().await })
    }

    async fn follow(&self) {
        let mut role = self.election.role();
        loop {
            let Role::Master { epoch } = *role.borrow_and_update() else {
                if role.changed().await.is_err() {
                    return;
                }
                continue;
            };
            tracing::info!(epoch, "master work starts");
            let mut work = JoinSet::new();
            let Intervals { batch, compaction, janitor } = self.intervals;
            let (loader, compactor, cleaner) = (self.loader.clone(), self.compactor.clone(), self.janitor.clone());
            work.spawn(async move { loader.run(epoch, batch).await.to_string() });
            work.spawn(async move { compactor.run(epoch, compaction).await.to_string() });
            work.spawn(async move { cleaner.run(epoch, janitor).await.to_string() });
            self.running.send_replace(Some(epoch));
            let ended = tokio::select! {
                changed = role.changed() => changed.is_err(),
                Some(stopped) = work.join_next() => {
                    let reason = stopped.unwrap_or_else(|e| format!("master work failed: {e}"));
                    tracing::error!(epoch, reason, "master work stops: this node steps down");
                    self.election.step_down(epoch).await;
                    false
                }
            };
            self.running.send_replace(None);
            work.shutdown().await;
            tracing::info!(epoch, "master work stopped");
            if ended {
                return;
            }
        }
    }
}
