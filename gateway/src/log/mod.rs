//! The event log seam: topics per project and collection, each with numbered
//! partitions of records at increasing offsets.
//!
//! [`open`] is the one place that picks the implementation from the URL:
//! `file://` is the embedded segment-file log ([`file::FileLog`]),
//! `kafka://` the Kafka log ([`kafka::KafkaLog`]).

pub mod file;
pub mod kafka;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::metadata::MetadataStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported log URL {0:?}: use file://<folder> or kafka://<host:port>[,<host:port>]")]
    UnsupportedUrl(String),
    #[error("event log I/O on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the event log is in use by another process ({0})")]
    Locked(PathBuf),
    #[error("the event log stopped accepting writes after an I/O error and needs a restart: {0}")]
    Poisoned(String),
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
    #[error("event log configuration: {0}")]
    Config(String),
    #[error("the event log is shut down")]
    Closed,
    #[error("no topic {0:?}")]
    NoTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    NoPartition { topic: String, partition: u32 },
    #[error("corrupt record in {path} at byte {position}: {reason}")]
    Corrupt { path: PathBuf, position: u64, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// A record to append. Records with the same key go to the same partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Bytes,
}

/// Records for one topic.
#[derive(Debug, Clone)]
pub struct TopicBatch {
    pub topic: String,
    pub records: Vec<Record>,
}

/// Where each record of a [`TopicBatch`] was stored, in the batch's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: u64,
    /// Milliseconds since the epoch when the record was appended.
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Bytes,
}

/// The records read from one partition.
#[derive(Debug, Clone, Default)]
pub struct ReadBatch {
    pub records: Vec<StoredRecord>,
    /// The offset after the last durable record when the read was made: a
    /// reader that has reached it has read the whole partition. (The Kafka
    /// log does not read the watermarks, and reports where the read stopped.)
    pub end_offset: u64,
    /// Where the next read of the partition starts: after the last record
    /// returned, or after records the log skipped (appends it voided).
    pub resume_at: u64,
    /// Records from `resume_at` on were held back (their appends were not
    /// decided yet): worth reading again after [`EventLog::retry_delay`].
    pub held_back: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: u32,
}

/// Whether the log can take appends, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHealth {
    pub up: bool,
    pub detail: String,
}

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends every batch and returns once all of their records are
    /// durable, with each record's position. On error, none of the records
    /// may be taken as stored. Topics are created on first use.
    async fn append(&self, batches: Vec<TopicBatch>) -> Result<Vec<Vec<Position>>>;

    /// Reads durable records of a partition from offset `from` up to the
    /// partition's end, at most `max_records` of them.
    async fn read(&self, topic: &str, partition: u32, from: u64, max_records: usize) -> Result<ReadBatch>;

    /// Every topic with its partition count.
    async fn topics(&self) -> Result<Vec<TopicInfo>>;

    /// Tells the log that records of a partition below `offset` have been
    /// consumed, so that retention may delete them.
    async fn release(&self, topic: &str, partition: u32, offset: u64) -> Result<()>;

    /// Deletes every topic whose name starts with `prefix`.
    async fn delete_topics(&self, prefix: &str) -> Result<()>;

    /// Whether appends can succeed now.
    async fn health(&self) -> LogHealth {
        LogHealth { up: true, detail: "ok".to_owned() }
    }

    /// Where every partition ends now: (topic, partition, the offset its
    /// next record will take). Only a shared log needs to tell.
    async fn end_offsets(&self) -> Result<Vec<(String, u32, u64)>> {
        Ok(Vec::new())
    }

    /// Where each partition of a topic ends now: the offset its next record
    /// will take, where a follower that wants only new records starts.
    async fn ends(&self, topic: &str, partitions: u32) -> Result<Vec<u64>> {
        let mut ends = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            ends.push(self.read(topic, p, u64::MAX, 0).await?.end_offset);
        }
        Ok(ends)
    }

    /// Reads every partition of `from` (topic, partition, offset) from its
    /// offset, for a follower that wants records as soon as they are
    /// readable (the event stream) without waiting behind the batch loop's
    /// reads; waits up to `wait` for a first record. One batch per entry of
    /// `from`, in order.
    async fn follow(
        &self,
        from: &[(String, u32, u64)],
        max_records: usize,
        wait: std::time::Duration,
    ) -> Result<Vec<ReadBatch>> {
        let give_up = tokio::time::Instant::now() + wait;
        loop {
            let mut batches = Vec::with_capacity(from.len());
            for (topic, partition, offset) in from {
                batches.push(self.read(topic, *partition, *offset, max_records).await?);
            }
            let moved = batches.iter().zip(from).any(|(b, (_, _, offset))| b.resume_at > *offset);
            if moved || tokio::time::Instant::now() >= give_up {
                return Ok(batches);
            }
            tokio::time::sleep(FOLLOW_POLL.min(give_up.saturating_duration_since(tokio::time::Instant::now()))).await;
        }
    }

    /// Whether every gateway configured with it reads and writes the same
    /// log, so that any master can load what any gateway acknowledged.
    fn shared(&self) -> bool {
        false
    }

    /// The name a topic has for outside readers (Kafka consumers).
    fn broker_topic(&self, topic: &str) -> String {
        topic.to_owned()
    }

    /// The topic of a name outside readers use, if it is one of the log's.
    fn log_topic(&self, broker_topic: &str) -> Option<String> {
        Some(broker_topic.to_owned())
    }

    /// How long after its append a record may wait, at most, before reads
    /// return it.
    fn read_delay(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// When to read again a partition whose read held records back.
    fn retry_delay(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Waits for appends under way to finish, at shutdown.
    async fn close(&self) {}
}

/// How often [`EventLog::follow`] reads again a log that has nothing new,
/// unless the log knows better: each read that finds something becomes one
/// evaluation of every subscription, so shorter costs throughput.
pub const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(25);

/// The settings of every log implementation; the URL picks one.
#[derive(Debug, Clone, Copy)]
pub struct LogSettings<'a> {
    pub file: &'a file::FileLogConfig,
    pub kafka: &'a kafka::KafkaLogConfig,
}

/// Opens the event log named by `url`. The Kafka log records voided
/// appends in `store`.
pub async fn open(url: &str, settings: LogSettings<'_>, store: Arc<dyn MetadataStore>) -> Result<Arc<dyn EventLog>> {
    match url.split_once("://") {
        Some(("file", path)) if !path.is_empty() => {
            let log = file::FileLog::open(PathBuf::from(path), settings.file.clone()).await?;
            Ok(Arc::new(log))
        }
        Some(("kafka", brokers)) if !brokers.is_empty() => {
            Ok(Arc::new(kafka::KafkaLog::open(brokers, settings.kafka, store)?))
        }
        _ => Err(Error::UnsupportedUrl(url.to_owned())),
    }
}
