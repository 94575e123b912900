//! The embedded event log: append-only segment files on local disk.
//!
//! Layout: `<root>/<topic>/<partition>/<base offset>.log`, each record
//! framed with its length and CRC32C ([`frame`]). One writer thread does
//! group commit ([`writer`]); readers read files directly up to the durable
//! end. On open, a torn tail left by a crash is cut off.

mod frame;
mod partition;
mod sync_pool;
mod writer;

use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::oneshot;

pub use self::writer::Stats;
use self::writer::{Command, TopicShared, Topics, Writer};
use super::{Error, EventLog, Position, ReadBatch, Result, TopicBatch, TopicInfo};

/// Settings of the embedded file log (`[file_log]`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileLogConfig {
    /// A partition's active segment is closed and a new one started once it
    /// holds this many bytes.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Partitions of each new topic.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Closed segments whose records are all consumed are deleted once they
    /// are this old (milliseconds).
    #[serde(default = "default_retention_ms")]
    pub retention_ms: u64,
    /// How often retention runs (milliseconds).
    #[serde(default = "default_retention_check_ms")]
    pub retention_check_ms: u64,
    /// At most this many bytes of records are written in one group commit.
    #[serde(default = "default_max_group_bytes")]
    pub max_group_bytes: usize,
}

fn default_segment_bytes() -> u64 {
    64 << 20
}
fn default_partitions() -> u32 {
    1
}
fn default_retention_ms() -> u64 {
    24 * 3600 * 1000
}
fn default_retention_check_ms() -> u64 {
    60_000
}
fn default_max_group_bytes() -> usize {
    16 << 20
}

impl Default for FileLogConfig {
    fn default() -> Self {
        FileLogConfig {
            segment_bytes: default_segment_bytes(),
            partitions: default_partitions(),
            retention_ms: default_retention_ms(),
            retention_check_ms: default_retention_check_ms(),
            max_group_bytes: default_max_group_bytes(),
        }
    }
}

pub struct FileLog {
    inner: Arc<Inner>,
}

struct Inner {
    topics: Arc<Topics>,
    stats: Arc<Stats>,
    /// Dropped first on shutdown, which ends the writer thread.
    commands: Option<mpsc::Sender<Command>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Held for the log's lifetime: one process per log folder.
    _lock: File,
}

impl Drop for Inner {
    /// Waits for the writer to finish what it was given and close its files.
    fn drop(&mut self) {
        self.commands.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl FileLog {
    /// Opens (or creates) the log in `root`, recovering every partition.
    pub async fn open(root: PathBuf, config: FileLogConfig) -> Result<FileLog> {
        let every = Duration::from_millis(config.retention_check_ms.max(10));
        let inner = tokio::task::spawn_blocking(move || Inner::open(root, config))
            .await
            .map_err(|e| Error::Poisoned(e.to_string()))??;
        let inner = Arc::new(inner);
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                if let Err(e) = inner.call(|reply| Command::Retain { reply }).await {
                    tracing::warn!(error = %e, "event log retention failed");
                }
            }
        });
        Ok(FileLog { inner })
    }

    /// Counters of the writer's work.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Runs retention now (it also runs on its own every `retention_check_ms`).
    pub async fn run_retention(&self) -> Result<()> {
        self.inner.call(|reply| Command::Retain { reply }).await
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<partition::PartitionShared>> {
        let topics = self.inner.topics.read().unwrap_or_else(|e| e.into_inner());
        let t = topics.get(topic).ok_or_else(|| Error::NoTopic(topic.to_owned()))?;
        t.partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| Error::NoPartition { topic: topic.to_owned(), partition })
    }
}

impl Inner {
    fn open(root: PathBuf, config: FileLogConfig) -> Result<Inner> {
        fs::create_dir_all(&root).map_err(Error::io(&root))?;
        let lock_path = root.join(".lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(Error::Locked(root));
        }
        let mut topics = std::collections::HashMap::new();
        let mut recovered = Vec::new();
        for entry in fs::read_dir(&root).map_err(Error::io(&root))? {
            let entry = entry.map_err(Error::io(&root))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            let mut numbers: Vec<u32> = fs::read_dir(entry.path())
                .map_err(Error::io(entry.path()))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse().ok())
                .collect();
            numbers.sort_unstable();
            if numbers.is_empty() || numbers.iter().enumerate().any(|(i, n)| *n as usize != i) {
                tracing::warn!(topic = %name, "skipping a topic folder without partitions 0..n");
                continue;
            }
            let mut shared = Vec::new();
            for p in numbers {
                let r = partition::recover(&entry.path().join(p.to_string()))?;
                shared.push(r.shared.clone());
                recovered.push((name.clone(), p, r));
            }
            topics.insert(name.clone(), Arc::new(TopicShared::new(name, shared)));
        }
        let topics = Arc::new(std::sync::RwLock::new(topics));
        let stats = Arc::new(Stats::default());
        let writer = Writer::new(root, config, topics.clone(), recovered, stats.clone())?;
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("weir-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Poisoned(e.to_string()))?;
        Ok(Inner { topics, stats, commands: Some(tx), writer: Some(writer), _lock: lock })
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.commands.as_ref().ok_or(Error::Closed)?.send(make(reply)).map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

#[async_trait]
impl EventLog for FileLog {
    async fn append(&self, batches: Vec<TopicBatch>) -> Result<Vec<Vec<Position>>> {
        if batches.iter().all(|b| b.records.is_empty()) {
            return Ok(batches.iter().map(|_| Vec::new()).collect());
        }
        self.inner.call(|reply| Command::Append { batches, reply }).await
    }

    async fn read(&self, topic: &str, partition: u32, from: u64, max_records: usize) -> Result<ReadBatch> {
        let shared = self.partition(topic, partition)?;
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || shared.read(&topic, partition, from, max_records))
            .await
            .map_err(|e| Error::Poisoned(e.to_string()))?
    }

    async fn topics(&self) -> Result<Vec<TopicInfo>> {
        let topics = self.inner.topics.read().unwrap_or_else(|e| e.into_inner());
        let mut infos: Vec<TopicInfo> = topics.values().map(|t| t.info()).collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    async fn release(&self, topic: &str, partition: u32, offset: u64) -> Result<()> {
        let shared = self.partition(topic, partition)?;
        shared.released.fetch_max(offset, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    async fn delete_topics(&self, prefix: &str) -> Result<()> {
        let prefix = prefix.to_owned();
        self.inner.call(|reply| Command::DeleteTopics { prefix, reply }).await
    }
}
