//! The batch loop: moves the event log into columnar storage, exactly once.
//!
//! For each partition of each topic: read from the committed offset to the
//! partition's end, decode every record with its writer schema and resolve
//! it to the newest schema of the collection, write one Parquet file per
//! day of `_time`, make the files durable, then record the files and the new
//! offset in one metadata transaction. A crash before that commit leaves
//! files no manifest names; the next run writes the same range again, under
//! the same names when the range is the same. The commit is fenced twice:
//! on the master's epoch (a deposed master commits nothing) and on the
//! offset it started from (two loaders cannot both move a partition).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::batch::dedup::{self, Dedup, ID_FIELD};
use crate::batch::warehouse::{self, Warehouse};
use crate::log::{self, EventLog, StoredRecord};
use crate::metadata::{self, Commit, LoadedIds, MetadataStore, OffsetAdvance, ParquetFile, SchemaVersion};
use crate::schema::avro;
use crate::schema::names::split_topic;
use crate::schema::timefmt::format_date;
use crate::schema::types::Field;
use crate::schema::value::{Scalar, Value};
use crate::schema::{SchemaRegistry, TIME_FIELD};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] log::Error),
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
    #[error(transparent)]
    Columnar(#[from] warehouse::Error),
    #[error("record {topic}/{partition}@{offset} cannot be decoded: {reason}")]
    Decode { topic: String, partition: u32, offset: u64, reason: String },
    #[error("no schema with id {0}")]
    UnknownSchema(u32),
    #[error("{topic}/{partition}: its records could not be folded into continuous queries: {reason}")]
    Fold { topic: String, partition: u32, reason: String },
    #[error("{topic}/{partition} was moved by another loader, or continuous queries came or went")]
    Moved { topic: String, partition: u32 },
    #[error("a newer master has claimed the fence: epoch {0} may no longer commit")]
    Deposed(i64),
    #[error("encoding task failed: {0}")]
    Task(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What one run moved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadStats {
    pub files: usize,
    pub rows: u64,
    /// Log offsets moved past (records stored, left out as re-sent, or
    /// voided).
    pub offsets: u64,
}

/// Files written for one partition's range, not yet committed.
#[derive(Debug, Clone)]
pub struct Staged {
    pub files: Vec<ParquetFile>,
    pub advance: OffsetAdvance,
    /// The ids of the stored events, when they had any.
    pub ids: Option<LoadedIds>,
}

/// Records appended since the loop last ran: once `threshold` are waiting,
/// the loop runs without waiting for its next tick.
pub struct Backlog {
    waiting: AtomicU64,
    threshold: u64,
    wake: tokio::sync::Notify,
}

impl Backlog {
    pub fn new(threshold: u64) -> Self {
        Backlog { waiting: AtomicU64::new(0), threshold: threshold.max(1), wake: tokio::sync::Notify::new() }
    }

    /// Counts records appended to the log.
    pub fn added(&self, records: u64) {
        if self.waiting.fetch_add(records, Ordering::Relaxed) + records >= self.threshold {
            self.wake.notify_one();
        }
    }
}

pub struct Loader {
    backlog: Arc<Backlog>,
    log: Arc<dyn EventLog>,
    store: Arc<dyn MetadataStore>,
    registry: Arc<SchemaRegistry>,
    warehouse: Warehouse,
    max_records: usize,
    /// One run at a time in this process.
    running: tokio::sync::Mutex<()>,
    /// A read since the loop last ran held records back.
    held_back: AtomicBool,
    listener: Option<Arc<dyn super::FilesChanged>>,
    fold: Option<Arc<dyn super::FoldLoads>>,
    dedup: Arc<Dedup>,
}

impl Loader {
    pub fn new(
        log: Arc<dyn EventLog>,
        store: Arc<dyn MetadataStore>,
        registry: Arc<SchemaRegistry>,
        warehouse: Warehouse,
        max_records: usize,
    ) -> Self {
        Loader {
            backlog: Arc::new(Backlog::new(max_records as u64)),
            log,
            store,
            registry,
            warehouse,
            max_records: max_records.max(1),
            running: tokio::sync::Mutex::new(()),
            held_back: AtomicBool::new(false),
            listener: None,
            fold: None,
            dedup: Arc::new(Dedup::new(0)),
        }
    }

    /// Stores each event with an id once within `window_ms` (0: as sent).
    pub fn with_dedup_window(mut self, window_ms: u64) -> Self {
        self.dedup = Arc::new(Dedup::new(window_ms));
        self
    }

    /// Tells `listener` of every commit.
    pub fn with_listener(mut self, listener: Arc<dyn super::FilesChanged>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Folds every load into `fold` before it commits.
    pub fn with_fold(mut self, fold: Arc<dyn super::FoldLoads>) -> Self {
        self.fold = Some(fold);
        self
    }

    /// What the ingest path reports appended records to.
    pub fn backlog(&self) -> Arc<Backlog> {
        self.backlog.clone()
    }

    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// Holds off this process's loads (the janitor deletes under it).
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.running.lock().await
    }

    /// Moves everything waiting in the log into storage, committing under
    /// the master's `epoch`.
    pub async fn run_once(&self, epoch: i64, now_ms: i64) -> Result<LoadStats> {
        let _one_at_a_time = self.running.lock().await;
        self.dedup.prepare(self.store.as_ref(), epoch, now_ms).await?;
        let mut stats = LoadStats::default();
        loop {
            let moved = self.pass(epoch, now_ms).await?;
            if moved.offsets == 0 {
                return Ok(stats);
            }
            stats.files += moved.files;
            stats.rows += moved.rows;
            stats.offsets += moved.offsets;
        }
    }

    /// One read of up to `max_records` per partition. A partition that
    /// fails does not hold up the others; the first failure is returned
    /// once every partition had its turn.
    async fn pass(&self, epoch: i64, now_ms: i64) -> Result<LoadStats> {
        let offsets = self.store.committed_offsets().await?;
        let mut stats = LoadStats::default();
        let mut failure = None;
        for topic in self.log.topics().await? {
            for partition in 0..topic.partitions {
                let from = offsets.get(&(topic.name.clone(), partition)).copied().unwrap_or(0);
                match self.move_partition(epoch, &topic.name, partition, from, now_ms).await {
                    Ok(moved) => {
                        stats.files += moved.files;
                        stats.rows += moved.rows;
                        stats.offsets += moved.offsets;
                    }
                    Err(e @ Error::Deposed(_)) => return Err(e),
                    Err(e) => {
                        tracing::warn!(topic = topic.name, partition, error = %e, "cannot load a partition");
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        match failure {
            Some(e) if stats.offsets == 0 => Err(e),
            _ => Ok(stats),
        }
    }

    /// Loads and commits one read of a partition.
    async fn move_partition(
        &self,
        epoch: i64,
        topic: &str,
        partition: u32,
        from: u64,
        now_ms: i64,
    ) -> Result<LoadStats> {
        let Some(staged) = self.write_partition(topic, partition, from).await? else { return Ok(LoadStats::default()) };
        let folded = match (&self.fold, split_topic(topic)) {
            (Some(fold), Some((project, collection))) => {
                Some(fold.fold(project, &collection, &staged.files).await.map_err(|reason| Error::Fold {
                    topic: topic.to_owned(),
                    partition,
                    reason,
                })?)
            }
            _ => None,
        };
        let advances = std::slice::from_ref(&staged.advance);
        let ids = staged.ids.as_ref();
        let committed =
            self.store.commit_load_folded(epoch, &staged.files, advances, folded.as_ref(), ids, now_ms).await;
        if let (Some(fold), Some(folded)) = (&self.fold, &folded)
            && !matches!(committed, Ok(Commit::Done))
        {
            fold.discard(folded).await;
        }
        match (&committed, ids) {
            (Ok(Commit::Done), Some(ids)) => {
                let keys: Vec<dedup::Key> = dedup::decode_keys(&ids.keys).collect();
                self.dedup.remember(&ids.project, &keys, now_ms);
            }
            (Ok(Commit::Done), None) => {}
            (_, Some(_)) => self.dedup.forget(),
            (_, None) => {}
        }
        match committed? {
            Commit::Done => {}
            Commit::Conflict => return Err(Error::Moved { topic: topic.to_owned(), partition }),
            Commit::Fenced => return Err(Error::Deposed(epoch)),
        }
        self.log.release(topic, partition, staged.advance.to).await?;
        if let (Some(listener), Some((project, collection))) = (&self.listener, split_topic(topic))
            && !staged.files.is_empty()
        {
            listener.changed(project, &collection).await;
        }
        Ok(LoadStats {
            files: staged.files.len(),
            rows: staged.files.iter().map(|f| f.rows).sum(),
            offsets: staged.advance.to - staged.advance.from,
        })
    }

    /// Reads a partition from `from`, and writes its records as durable
    /// Parquet files; commits nothing. `None` when nothing is waiting.
    pub async fn write_partition(&self, topic: &str, partition: u32, from: u64) -> Result<Option<Staged>> {
        let Some((project, collection)) = split_topic(topic) else { return Ok(None) };
        let batch = self.log.read(topic, partition, from, self.max_records).await?;
        if batch.held_back {
            self.held_back.store(true, Ordering::Relaxed);
        }
        let resume_at = batch.resume_at;
        let (Some(first), Some(last)) = (batch.records.first(), batch.records.last()) else {
            // Only records the log left out (voided appends): move past them.
            return Ok((resume_at > from).then(|| Staged {
                files: Vec::new(),
                advance: OffsetAdvance { topic: topic.to_owned(), partition, from, to: resume_at },
                ids: None,
            }));
        };
        let (first, last) = (first.offset, last.offset);

        // Read every record with the newest schema: the collection's, or a
        // writer's that is newer still (schemas only grow).
        let mut reader: Vec<Field> =
            self.registry.current(project, &collection).await?.map(|s| s.fields.clone()).unwrap_or_default();
        let mut writers: HashMap<u32, Arc<SchemaVersion>> = HashMap::new();
        for record in &batch.records {
            let (id, _) = avro::split_header(&record.value).map_err(|e| decode_error(topic, partition, record, e))?;
            if let std::collections::hash_map::Entry::Vacant(slot) = writers.entry(id) {
                let v = self.registry.by_id(i64::from(id)).await?.ok_or(Error::UnknownSchema(id))?;
                if v.fields.len() > reader.len() {
                    reader = v.fields.clone();
                }
                slot.insert(v);
            }
        }

        let (topic_owned, records) = (topic.to_owned(), batch.records);
        let encode_reader = reader.clone();
        let dedup = self.dedup.enabled().then(|| (self.dedup.clone(), project.to_owned(), collection.clone()));
        let (days, keys) = tokio::task::spawn_blocking(move || {
            let dedup = dedup.as_ref().map(|(d, p, c)| (d.as_ref(), p.as_str(), c.as_str()));
            encode_days(&topic_owned, partition, &records, &writers, &encode_reader, dedup)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        let ids = (!keys.is_empty()).then(|| LoadedIds {
            project: project.to_owned(),
            topic: topic.to_owned(),
            partition,
            first_offset: first,
            keys: dedup::encode_keys(&keys),
        });

        let mut files = Vec::with_capacity(days.len());
        for (day, rows, bytes) in days {
            let day = format_date(day);
            let path = format!("{project}/{collection}/_day={day}/{partition:05}-{first:020}-{last:020}.parquet");
            let size = bytes.len() as u64;
            self.warehouse.put_durable(&path, bytes).await?;
            files.push(ParquetFile {
                path,
                project: project.to_owned(),
                collection: collection.clone(),
                day,
                topic: topic.to_owned(),
                partition,
                first_offset: first,
                last_offset: last,
                rows,
                bytes: size,
            });
        }
        let advance = OffsetAdvance { topic: topic.to_owned(), partition, from, to: resume_at.max(last + 1) };
        Ok(Some(Staged { files, advance, ids }))
    }

    /// Runs the loop every `interval`, or as soon as `max_records` records
    /// were appended, while `epoch` leads; returns once a commit finds it
    /// deposed.
    pub async fn run(self: Arc<Self>, epoch: i64, interval: Duration) -> Error {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let held_back = self.held_back.swap(false, Ordering::Relaxed);
            tokio::select! {
                _ = ticks.tick() => {}
                () = self.backlog.wake.notified() => {}
                // Records the log held back are read again soon.
                () = retry_after(held_back, self.log.retry_delay()) => {}
            }
            self.backlog.waiting.store(0, Ordering::Relaxed);
            let now = chrono::Utc::now().timestamp_millis();
            match self.run_once(epoch, now).await {
                Ok(stats) if stats.files > 0 => {
                    tracing::debug!(files = stats.files, rows = stats.rows, "loaded into columnar storage");
                }
                Ok(_) => {}
                Err(e @ Error::Deposed(_)) => return e,
                Err(e) => tracing::error!(error = %e, "the batch loop failed; it will try again"),
            }
        }
    }
}

async fn retry_after(held_back: bool, delay: Duration) {
    if held_back {
        tokio::time::sleep(delay).await;
    } else {
        std::future::pending::<()>().await;
    }
}

fn decode_error(topic: &str, partition: u32, record: &StoredRecord, e: impl std::fmt::Display) -> Error {
    Error::Decode { topic: topic.to_owned(), partition, offset: record.offset, reason: e.to_string() }
}

/// A record's id: its `_id` as text.
fn record_id<'v>(values: &'v [Option<Value<'_>>], id: usize) -> Option<std::borrow::Cow<'v, str>> {
    match values.get(id)? {
        Some(Value::Scalar(Scalar::String(s))) => Some(std::borrow::Cow::Borrowed(s.as_ref())),
        Some(Value::Scalar(Scalar::Long(v))) => Some(std::borrow::Cow::Owned(v.to_string())),
        _ => None,
    }
}

/// A day's Parquet file: (day, rows, bytes).
type DayFile = (i32, u64, Vec<u8>);

/// A load's (project, collection), for leaving out re-sent events.
type DedupScope<'a> = Option<(&'a Dedup, &'a str, &'a str)>;

/// Decodes the records and encodes one Parquet file per day of `_time`:
/// (day, rows, bytes), by day; with `dedup`, records whose id was stored
/// before are left out, and the keys of the stored ids returned.
fn encode_days(
    topic: &str,
    partition: u32,
    records: &[StoredRecord],
    writers: &HashMap<u32, Arc<SchemaVersion>>,
    reader: &[Field],
    dedup: DedupScope<'_>,
) -> Result<(Vec<DayFile>, Vec<dedup::Key>)> {
    let time = reader.iter().position(|f| f.name == TIME_FIELD);
    let mut decoded: Vec<(i32, Vec<Option<Value<'_>>>)> = Vec::with_capacity(records.len());
    for record in records {
        let (id, body) = avro::split_header(&record.value).map_err(|e| decode_error(topic, partition, record, e))?;
        let writer = writers.get(&id).ok_or(Error::UnknownSchema(id))?;
        let values =
            avro::decode(body, &writer.fields, reader).map_err(|e| decode_error(topic, partition, record, e))?;
        let day = match time.and_then(|t| values[t].as_ref()) {
            Some(Value::Scalar(Scalar::Timestamp(micros))) => micros.div_euclid(86_400_000_000) as i32,
            _ => 0,
        };
        decoded.push((day, values));
    }
    let id = reader.iter().position(|f| f.name == ID_FIELD);
    let (keep, new_keys) = match (dedup, id) {
        (Some((dedup, project, collection)), Some(id)) => {
            let keys: Vec<Option<dedup::Key>> = decoded
                .iter()
                .map(|(_, values)| record_id(values, id).map(|text| dedup::key(collection, &text)))
                .collect();
            dedup.select(project, &keys)
        }
        _ => (vec![true; decoded.len()], Vec::new()),
    };
    let mut days: BTreeMap<i32, Vec<Vec<Option<Value<'_>>>>> = BTreeMap::new();
    for ((day, values), keep) in decoded.into_iter().zip(keep) {
        if keep {
            days.entry(day).or_default().push(values);
        }
    }
    let files = days
        .into_iter()
        .map(|(day, rows)| {
            let batch = warehouse::record_batch(reader, &rows)?;
            Ok((day, rows.len() as u64, warehouse::parquet_bytes(&batch)?))
        })
        .collect::<Result<_>>()?;
    Ok((files, new_keys))
}
