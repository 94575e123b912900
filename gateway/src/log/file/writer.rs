//! The one writer thread of a file log: group commit.
//!
//! Appends queue on a channel; the thread takes every request waiting,
//! writes their records with one write per partition, makes every touched
//! file durable (the syncs run in parallel, so a group costs about one sync
//! however many topics it touches), and only then answers all of them. So
//! concurrent requests share one sync, and nothing is answered before it is
//! on disk. A failed write is cut back off the file; a failed sync stops the
//! log, since the kernel may have dropped the pages it failed to write.
//!
//! Segments are filled with zeros ahead of the write position, so that a
//! sync after an append overwrites allocated blocks instead of committing a
//! new file size to the filesystem journal every time.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;

use super::FileLogConfig;
use super::frame;
use super::partition::{self, INDEX_INTERVAL, PartitionShared, Segment};
use super::sync_pool::SyncPool;
use crate::log::{Error, Position, Result, TopicBatch, TopicInfo};

/// Zeros are written this far ahead of the write position.
const ZERO_FILL_BYTES: u64 = 4 << 20;

pub enum Command {
    Append { batches: Vec<TopicBatch>, reply: oneshot::Sender<Result<Vec<Vec<Position>>>> },
    Retain { reply: oneshot::Sender<Result<()>> },
    DeleteTopics { prefix: String, reply: oneshot::Sender<Result<()>> },
}

impl Command {
    fn bytes(&self) -> usize {
        match self {
            Command::Append { batches, .. } => {
                batches.iter().flat_map(|b| &b.records).map(|r| frame::framed_len(r.key.as_deref(), &r.value)).sum()
            }
            _ => 0,
        }
    }
}

/// A topic as readers see it.
#[derive(Debug)]
pub struct TopicShared {
    pub name: String,
    pub partitions: Vec<Arc<PartitionShared>>,
    round_robin: AtomicU32,
}

impl TopicShared {
    pub fn new(name: String, partitions: Vec<Arc<PartitionShared>>) -> Self {
        TopicShared { name, partitions, round_robin: AtomicU32::new(0) }
    }

    pub fn info(&self) -> TopicInfo {
        TopicInfo { name: self.name.clone(), partitions: self.partitions.len() as u32 }
    }

    /// Records with a key go where the key's hash says, so one key's records
    /// stay in order; the others are spread round robin.
    fn partition_for(&self, key: Option<&[u8]>) -> u32 {
        let n = self.partitions.len() as u32;
        match key {
            Some(k) => crc32c::crc32c(k) % n,
            None => self.round_robin.fetch_add(1, Ordering::Relaxed) % n,
        }
    }
}

/// The topics map readers look up; the writer is the only one to change it.
pub type Topics = std::sync::RwLock<HashMap<String, Arc<TopicShared>>>;

/// Counters of the writer's work.
#[derive(Debug, Default)]
pub struct Stats {
    /// Append requests answered.
    pub appends: AtomicU64,
    /// Group commits: each syncs every partition it wrote once.
    pub commits: AtomicU64,
}

/// The writer's own state of a partition.
struct PartitionWriter {
    shared: Arc<PartitionShared>,
    file: Arc<File>,
    segment: Arc<Segment>,
    /// Where the records end.
    len: u64,
    /// Where the zeros written ahead end (the file's length).
    filled: u64,
    next_offset: u64,
    last_indexed: u64,
    // Set while a group is being written:
    buf: Vec<u8>,
    group_start: Option<(u64, u64)>,
    dir_dirty: bool,
}

impl PartitionWriter {
    fn open(shared: Arc<PartitionShared>, active_len: u64) -> Result<Self> {
        let segment = shared.segments.read().unwrap_or_else(|e| e.into_inner()).last().cloned();
        let segment =
            segment.ok_or_else(|| Error::NoPartition { topic: shared.dir.display().to_string(), partition: 0 })?;
        let file = Arc::new(fs::OpenOptions::new().write(true).open(&segment.path).map_err(Error::io(&segment.path))?);
        let next_offset = shared.durable_end.load(Ordering::Acquire);
        let last_indexed = segment.index.lock().unwrap_or_else(|e| e.into_inner()).last().map_or(0, |(_, p)| *p);
        Ok(PartitionWriter {
            shared,
            file,
            segment,
            len: active_len,
            filled: active_len,
            next_offset,
            last_indexed,
            buf: Vec::new(),
            group_start: None,
            dir_dirty: false,
        })
    }

    /// Starts this partition's share of a group, rolling to a new segment
    /// first when the active one is full.
    fn begin_group(&mut self, segment_bytes: u64) -> Result<()> {
        if self.group_start.is_some() {
            return Ok(());
        }
        if self.len >= segment_bytes && self.next_offset > self.segment.base {
            // The closed segment loses its zero tail.
            self.file.set_len(self.len).map_err(Error::io(&self.segment.path))?;
            let file = partition::create_segment_file(&self.shared.dir, self.next_offset)?;
            let segment = Arc::new(Segment::new(&self.shared.dir, self.next_offset));
            self.shared.segments.write().unwrap_or_else(|e| e.into_inner()).push(segment.clone());
            self.file = Arc::new(file);
            self.segment = segment;
            self.len = 0;
            self.filled = 0;
            self.last_indexed = 0;
            self.dir_dirty = true;
        }
        self.group_start = Some((self.len, self.next_offset));
        Ok(())
    }

    fn push(&mut self, timestamp_ms: i64, key: Option<&[u8]>, value: &[u8]) -> u64 {
        let offset = self.next_offset;
        let pos = self.len + self.buf.len() as u64;
        if pos == 0 || pos - self.last_indexed >= INDEX_INTERVAL {
            self.segment.index.lock().unwrap_or_else(|e| e.into_inner()).push((offset, pos));
            self.last_indexed = pos;
        }
        frame::encode(&mut self.buf, offset, timestamp_ms, key, value);
        self.next_offset += 1;
        offset
    }

    /// Writes the group's bytes; on failure cuts them back off the file.
    fn write(&mut self) -> Result<()> {
        let Some((start_len, start_offset)) = self.group_start else { return Ok(()) };
        let end = self.len + self.buf.len() as u64;
        let result = self
            .fill_zeros(end)
            .and_then(|()| self.file.write_all_at(&self.buf, self.len).map_err(Error::io(&self.segment.path)));
        match result {
            Ok(()) => {
                self.len = end;
                Ok(())
            }
            Err(e) => {
                // Whatever part of the group reached the file is cut off
                // again, so the offsets can be handed out once more.
                let _ = self.file.set_len(start_len);
                self.filled = start_len;
                self.next_offset = start_offset;
                self.len = start_len;
                let mut index = self.segment.index.lock().unwrap_or_else(|e| e.into_inner());
                index.retain(|(o, _)| *o < start_offset);
                self.last_indexed = index.last().map_or(0, |(_, p)| *p);
                Err(e)
            }
        }
    }

    /// Makes sure zeros are on disk at least up to `end`.
    fn fill_zeros(&mut self, end: u64) -> Result<()> {
        if end <= self.filled {
            return Ok(());
        }
        let target = end + ZERO_FILL_BYTES;
        let zeros = vec![0u8; (target - self.filled).min(ZERO_FILL_BYTES) as usize];
        while self.filled < target {
            let n = (target - self.filled).min(zeros.len() as u64) as usize;
            self.file.write_all_at(&zeros[..n], self.filled).map_err(Error::io(&self.segment.path))?;
            self.filled += n as u64;
        }
        Ok(())
    }

    fn sync_dir_if_needed(&mut self) -> Result<()> {
        if self.dir_dirty {
            partition::sync_dir(&self.shared.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    fn end_group(&mut self, durable: bool) {
        if durable {
            self.shared.durable_end.store(self.next_offset, Ordering::Release);
        }
        self.buf.clear();
        if self.buf.capacity() > 4 << 20 {
            self.buf.shrink_to(1 << 20);
        }
        self.group_start = None;
    }
}

pub struct Writer {
    pub stats: Arc<Stats>,
    pub root: PathBuf,
    pub config: FileLogConfig,
    pub topics: Arc<Topics>,
    /// Each topic's partitions, by partition number.
    writers: HashMap<String, Vec<PartitionWriter>>,
    syncs: SyncPool,
    poisoned: Option<String>,
}

type Reply = oneshot::Sender<Result<Vec<Vec<Position>>>>;
/// A request's positions and the (topic, partition) pairs it wrote to.
type Staged = Result<(Vec<Vec<Position>>, Vec<(String, u32)>)>;

impl Writer {
    pub fn new(
        root: PathBuf,
        config: FileLogConfig,
        topics: Arc<Topics>,
        recovered: Vec<(String, u32, partition::Recovered)>,
        stats: Arc<Stats>,
    ) -> Result<Self> {
        let mut writers: HashMap<String, Vec<PartitionWriter>> = HashMap::new();
        for (topic, p, r) in recovered {
            let partitions = writers.entry(topic).or_default();
            debug_assert_eq!(partitions.len(), p as usize, "partitions are recovered in order");
            partitions.push(PartitionWriter::open(r.shared, r.active_len)?);
        }
        let syncs = SyncPool::new(3).map_err(Error::io(&root))?;
        Ok(Writer { stats, root, config, topics, writers, syncs, poisoned: None })
    }

    /// Serves commands until every sender is gone.
    pub fn run(mut self, rx: mpsc::Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut bytes = first.bytes();
            let mut group = vec![first];
            while bytes < self.config.max_group_bytes {
                match rx.try_recv() {
                    Ok(next) => {
                        bytes += next.bytes();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.serve(group);
        }
        // A clean stop leaves no zeros behind the records.
        for writer in self.writers.values().flatten() {
            if writer.filled > writer.len {
                let _ = writer.file.set_len(writer.len).and_then(|()| writer.file.sync_all());
            }
        }
    }

    fn serve(&mut self, group: Vec<Command>) {
        let mut appends = Vec::new();
        for command in group {
            match command {
                Command::Append { batches, reply } => appends.push((batches, reply)),
                Command::Retain { reply } => {
                    self.commit(std::mem::take(&mut appends));
                    let _ = reply.send(self.retain());
                }
                Command::DeleteTopics { prefix, reply } => {
                    self.commit(std::mem::take(&mut appends));
                    let _ = reply.send(self.delete_topics(&prefix));
                }
            }
        }
        self.commit(appends);
    }

    /// Writes and syncs a group of appends, then answers them.
    fn commit(&mut self, appends: Vec<(Vec<TopicBatch>, Reply)>) {
        if appends.is_empty() {
            return;
        }
        if let Some(reason) = &self.poisoned {
            for (_, reply) in appends {
                let _ = reply.send(Err(Error::Poisoned(reason.clone())));
            }
            return;
        }
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats.appends.fetch_add(appends.len() as u64, Ordering::Relaxed);
        let now = now_ms();
        let staged: Vec<(Staged, Reply)> =
            appends.into_iter().map(|(batches, reply)| (self.stage(&batches, now), reply)).collect();

        let mut failed: HashMap<(String, u32), String> = HashMap::new();
        let mut to_sync = Vec::new();
        let mut keys = Vec::new();
        for (topic, partitions) in self.writers.iter_mut() {
            for (p, writer) in partitions.iter_mut().enumerate() {
                if writer.group_start.is_none() {
                    continue;
                }
                match writer.write().and_then(|()| writer.sync_dir_if_needed()) {
                    Ok(()) => {
                        to_sync.push((writer.file.clone(), writer.segment.path.clone()));
                        keys.push((topic.clone(), p as u32));
                    }
                    Err(e) => {
                        failed.insert((topic.clone(), p as u32), e.to_string());
                    }
                }
            }
        }
        let results = self.syncs.sync_all(&to_sync);
        let sync_failures: Vec<((String, u32), Error)> =
            keys.into_iter().zip(results).filter_map(|(key, r)| r.err().map(|e| (key, e))).collect();
        for (key, e) in sync_failures {
            // The bytes were written but not synced: the page cache can no
            // longer be trusted to hold them.
            self.poisoned.get_or_insert_with(|| e.to_string());
            failed.insert(key, e.to_string());
        }
        if let Some(reason) = &self.poisoned {
            tracing::error!(%reason, "event log sync failed; refusing further writes");
        }
        let all_good = self.poisoned.is_none();
        for (topic, partitions) in self.writers.iter_mut() {
            for (p, writer) in partitions.iter_mut().enumerate() {
                if writer.group_start.is_some() {
                    let ok = all_good && !failed.contains_key(&(topic.clone(), p as u32));
                    writer.end_group(ok);
                }
            }
        }
        for (positions, reply) in staged {
            let result = positions.and_then(|(positions, touched)| {
                if let Some(reason) = touched.iter().find_map(|k| failed.get(k)).or(self.poisoned.as_ref()) {
                    return Err(Error::Poisoned(reason.clone()));
                }
                Ok(positions)
            });
            let _ = reply.send(result);
        }
    }

    /// Buffers one request's records and hands out their offsets.
    fn stage(&mut self, batches: &[TopicBatch], now: i64) -> Staged {
        let mut all = Vec::with_capacity(batches.len());
        let mut touched = Vec::new();
        for batch in batches {
            let topic = self.topic(&batch.topic)?;
            let writers = self.writers.get_mut(&batch.topic).ok_or_else(|| Error::NoTopic(batch.topic.clone()))?;
            let mut used = vec![false; writers.len()];
            let mut positions = Vec::with_capacity(batch.records.len());
            for record in &batch.records {
                let partition = topic.partition_for(record.key.as_deref());
                let writer = writers
                    .get_mut(partition as usize)
                    .ok_or_else(|| Error::NoPartition { topic: topic.name.clone(), partition })?;
                writer.begin_group(self.config.segment_bytes)?;
                let offset = writer.push(now, record.key.as_deref(), &record.value);
                positions.push(Position { partition, offset });
                used[partition as usize] = true;
            }
            touched.extend(used.iter().enumerate().filter(|(_, u)| **u).map(|(p, _)| (batch.topic.clone(), p as u32)));
            all.push(positions);
        }
        Ok((all, touched))
    }

    /// The topic, created with its partition folders on first use.
    fn topic(&mut self, name: &str) -> Result<Arc<TopicShared>> {
        if let Some(t) = self.topics.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(t.clone());
        }
        let dir = self.root.join(name);
        let mut shared = Vec::new();
        let mut writers = Vec::new();
        for p in 0..self.config.partitions.max(1) {
            let pdir = dir.join(p.to_string());
            fs::create_dir_all(&pdir).map_err(Error::io(&pdir))?;
            let recovered = partition::recover(&pdir)?;
            shared.push(recovered.shared.clone());
            writers.push(PartitionWriter::open(recovered.shared, recovered.active_len)?);
        }
        partition::sync_dir(&dir)?;
        partition::sync_dir(&self.root)?;
        self.writers.insert(name.to_owned(), writers);
        let topic = Arc::new(TopicShared::new(name.to_owned(), shared));
        self.topics.write().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), topic.clone());
        Ok(topic)
    }

    /// Deletes closed segments whose records are all consumed and older than
    /// the retention time.
    fn retain(&mut self) -> Result<()> {
        let keep_after = SystemTime::now() - Duration::from_millis(self.config.retention_ms);
        for writer in self.writers.values().flatten() {
            let released = writer.shared.released.load(Ordering::Acquire);
            let mut segments = writer.shared.segments.write().unwrap_or_else(|e| e.into_inner());
            let mut deleted = 0;
            while segments.len() > 1 + deleted {
                let (segment, next) = (&segments[deleted], &segments[deleted + 1]);
                let old_enough = fs::metadata(&segment.path)
                    .and_then(|m| m.modified())
                    .map(|t| t <= keep_after)
                    .map_err(Error::io(&segment.path))?;
                if next.base > released || !old_enough {
                    break;
                }
                fs::remove_file(&segment.path).map_err(Error::io(&segment.path))?;
                deleted += 1;
            }
            if deleted > 0 {
                segments.drain(..deleted);
                drop(segments);
                partition::sync_dir(&writer.shared.dir)?;
            }
        }
        Ok(())
    }

    fn delete_topics(&mut self, prefix: &str) -> Result<()> {
        let doomed: Vec<String> = self.writers.keys().filter(|t| t.starts_with(prefix)).cloned().collect();
        for name in doomed {
            self.topics.write().unwrap_or_else(|e| e.into_inner()).remove(&name);
            self.writers.remove(&name);
            let dir = self.root.join(&name);
            fs::remove_dir_all(&dir).map_err(Error::io(&dir))?;
        }
        partition::sync_dir(&self.root)
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
