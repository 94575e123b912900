//! Reading a partition for the batch loop: assign and seek to an offset
//! (no consumer group), read to the partition's end as the broker reports it
//! (partition EOF, not the watermarks), stop at the first record whose
//! append is not decided yet, and leave out records of voided appends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::header::{APPEND_HEADER, decode};
use super::unavailable;
use crate::log::{Error, ReadBatch, Result, StoredRecord};
use crate::metadata::{AppendId, MetadataStore};

/// Partition EOF is how a read learns it reached the end; librdkafka also
/// reports it as a client error, which is not one.
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_)) {
            tracing::warn!(%error, reason, "Kafka reader");
        }
    }
}

impl ConsumerContext for ReaderContext {}

pub struct Reader {
    consumer: Arc<BaseConsumer<ReaderContext>>,
    /// One read at a time: a read owns the consumer's assignment.
    reading: Arc<tokio::sync::Mutex<()>>,
    store: Arc<dyn MetadataStore>,
    /// A record its writer has not marked decided is read once this long
    /// has passed since its timestamp: the delivery timeout plus the settle
    /// time.
    hold: Duration,
    timeout: Duration,
}

/// A record read, with the append it belongs to.
struct Read {
    record: StoredRecord,
    append: Option<AppendId>,
}

impl Reader {
    pub fn new(
        consumer: BaseConsumer<ReaderContext>,
        store: Arc<dyn MetadataStore>,
        hold: Duration,
        timeout: Duration,
    ) -> Self {
        Reader { consumer: Arc::new(consumer), reading: Arc::new(tokio::sync::Mutex::new(())), store, hold, timeout }
    }

    /// Waits until no read runs and a fetch the last one left in flight
    /// has been answered (within `fetch_wait`, plus a margin for the round
    /// trip); no read starts while the guard is held.
    pub async fn idle(&self, fetch_wait: Duration) -> tokio::sync::OwnedMutexGuard<()> {
        let guard = self.reading.clone().lock_owned().await;
        tokio::time::sleep(fetch_wait + Duration::from_secs(1)).await;
        guard
    }

    /// How long after its timestamp a record is held back.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// The offset the next record of each partition will take.
    pub async fn end_offsets(&self, broker_topic: &str, partitions: u32) -> Result<Vec<u64>> {
        let consumer = self.consumer.clone();
        let (topic, timeout) = (broker_topic.to_owned(), self.timeout);
        tokio::task::spawn_blocking(move || {
            (0..partitions)
                .map(|p| {
                    let p = i32::try_from(p).map_err(|_| Error::Unavailable(format!("partition {p}")))?;
                    let (_, high) = consumer.fetch_watermarks(&topic, p, timeout).map_err(unavailable("watermarks"))?;
                    Ok(u64::try_from(high).unwrap_or(0))
                })
                .collect()
        })
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?
    }

    pub async fn read(&self, broker_topic: &str, partition: u32, from: u64, max_records: usize) -> Result<ReadBatch> {
        let consumer = self.consumer.clone();
        let one = self.reading.clone().lock_owned().await;
        let (topic, timeout) = (broker_topic.to_owned(), self.timeout);
        let (reads, end) = tokio::task::spawn_blocking(move || {
            let _one = one;
            read_blocking(&consumer, &topic, partition, from, max_records, timeout)
        })
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))??;

        self.settle(reads, end, None).await
    }

    /// The records of a read that may be taken: up to the first whose
    /// append is not decided yet, without those of voided appends.
    /// `local` is this gateway's own writer and how far it has decided, known
    /// here before it is published.
    async fn settle(&self, reads: Vec<Read>, end: u64, local: Option<(u64, u64)>) -> Result<ReadBatch> {
        let writers: Vec<u64> =
            reads.iter().filter_map(|r| r.append.map(|a| a.writer)).collect::<HashSet<_>>().into_iter().collect();
        let (voided, marks) = if writers.is_empty() {
            (HashSet::new(), HashMap::new())
        } else {
            let unavailable = |e: crate::metadata::Error| Error::Unavailable(e.to_string());
            // Marks first: a void is written before the mark passes it.
            let mut marks = self.store.decided_marks(&writers).await.map_err(unavailable)?;
            if let Some((writer, below)) = local {
                let mark = marks.entry(writer).or_insert(below);
                *mark = (*mark).max(below);
            }
            (self.store.voided_appends(&writers).await.map_err(unavailable)?, marks)
        };
        let loadable_before = chrono::Utc::now().timestamp_millis() - millis(self.hold);
        let decided = |r: &Read| match r.append {
            None => true,
            Some(a) => r.record.timestamp_ms <= loadable_before || marks.get(&a.writer).is_some_and(|b| a.seq < *b),
        };
        let mut records = Vec::with_capacity(reads.len());
        let (mut resume_at, mut held_back) = (end, false);
        for r in reads {
            if !decided(&r) {
                // Its writer may still void it: it and everything after it
                // wait for a later read.
                (resume_at, held_back) = (r.record.offset, true);
                break;
            }
            if r.append.is_none_or(|a| !voided.contains(&a)) {
                records.push(r.record);
            }
        }
        Ok(ReadBatch { records, end_offset: resume_at, resume_at, held_back })
    }

    /// Reads every partition of `from` (broker topic, partition, offset)
    /// at once, waiting up to `wait` for a first record; a partition with
    /// nothing new is an empty batch here, not an error. `local` as in
    /// [`Reader::settle`].
    pub async fn follow(
        &self,
        from: &[(String, u32, u64)],
        max_records: usize,
        wait: Duration,
        local: Option<(u64, u64)>,
    ) -> Result<Vec<ReadBatch>> {
        let consumer = self.consumer.clone();
        let one = self.reading.clone().lock_owned().await;
        let owned = from.to_vec();
        let reads = tokio::task::spawn_blocking(move || {
            let _one = one;
            follow_blocking(&consumer, &owned, max_records, wait)
        })
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))??;
        let mut batches = Vec::with_capacity(from.len());
        for ((_, _, offset), reads) in from.iter().zip(reads) {
            let end = reads.last().map_or(*offset, |r| r.record.offset + 1);
            batches.push(self.settle(reads, end, local).await?);
        }
        Ok(batches)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The records of a partition from `from`, and where the next read starts.
fn read_blocking(
    consumer: &BaseConsumer<ReaderContext>,
    topic: &str,
    partition: u32,
    from: u64,
    max_records: usize,
    timeout: Duration,
) -> Result<(Vec<Read>, u64)> {
    let p = i32::try_from(partition).map_err(|_| Error::NoPartition { topic: topic.to_owned(), partition })?;
    let start = i64::try_from(from).map_err(|_| Error::Unavailable(format!("offset {from} is out of range")))?;
    // Whatever an earlier read's fetches left queued (its records, or the
    // end of its partition) says nothing about this read.
    while consumer.poll(Duration::ZERO).is_some() {}
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, p, Offset::Offset(start)).map_err(unavailable("seek"))?;
    consumer.assign(&assignment).map_err(unavailable("assign"))?;
    let result = poll_until_end(consumer, topic, p, from, max_records, timeout);
    if let Err(e) = consumer.unassign() {
        tracing::warn!(error = %e, "cannot drop the reader's assignment");
    }
    result
}

/// The records of several partitions from their offsets: what arrives
/// within `wait`, and once something has, what follows it at once.
fn follow_blocking(
    consumer: &BaseConsumer<ReaderContext>,
    from: &[(String, u32, u64)],
    max_records: usize,
    wait: Duration,
) -> Result<Vec<Vec<Read>>> {
    while consumer.poll(Duration::ZERO).is_some() {}
    let mut assignment = TopicPartitionList::new();
    for (topic, partition, offset) in from {
        let p = i32::try_from(*partition)
            .map_err(|_| Error::NoPartition { topic: topic.clone(), partition: *partition })?;
        let start =
            i64::try_from(*offset).map_err(|_| Error::Unavailable(format!("offset {offset} is out of range")))?;
        assignment.add_partition_offset(topic, p, Offset::Offset(start)).map_err(unavailable("seek"))?;
    }
    consumer.assign(&assignment).map_err(unavailable("assign"))?;
    let mut reads: Vec<Vec<Read>> = from.iter().map(|_| Vec::new()).collect();
    let mut next: Vec<u64> = from.iter().map(|(_, _, o)| *o).collect();
    let give_up = Instant::now() + wait;
    let mut taken = 0;
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        // Once something came, only what is already here joins it.
        let poll_for = if taken > 0 { Duration::ZERO } else { left.min(Duration::from_millis(100)) };
        match consumer.poll(poll_for) {
            None if taken > 0 || left.is_zero() => break,
            None | Some(Err(_)) => {}
            Some(Ok(m)) => {
                let Ok(offset) = u64::try_from(m.offset()) else { continue };
                let Some(i) = from
                    .iter()
                    .position(|(t, p, _)| t == m.topic() && i32::try_from(*p).is_ok_and(|p| p == m.partition()))
                else {
                    continue;
                };
                if offset != next[i] {
                    continue;
                }
                reads[i].push(read_of(&m, offset));
                next[i] = offset + 1;
                taken += 1;
                if taken >= max_records {
                    break;
                }
            }
        }
    }
    if let Err(e) = consumer.unassign() {
        tracing::warn!(error = %e, "cannot drop the follower's assignment");
    }
    Ok(reads)
}

fn read_of(m: &rdkafka::message::BorrowedMessage<'_>, offset: u64) -> Read {
    let append =
        m.headers().and_then(|h| h.iter().find(|h| h.key == APPEND_HEADER).and_then(|h| h.value.and_then(decode)));
    Read {
        record: StoredRecord {
            offset,
            timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
            key: m.key().map(Bytes::copy_from_slice),
            value: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
        },
        append,
    }
}

fn poll_until_end(
    consumer: &BaseConsumer<ReaderContext>,
    topic: &str,
    partition: i32,
    from: u64,
    max_records: usize,
    timeout: Duration,
) -> Result<(Vec<Read>, u64)> {
    let give_up = Instant::now() + timeout;
    let mut reads = Vec::new();
    let mut next = from;
    let mut last_error: Option<KafkaError> = None;
    let mut ahead = false;
    while reads.len() < max_records {
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Nothing more came in time: what was read stands. Nothing at
            // all is a failure, not an empty partition (whose end the
            // broker reports at once).
            if !reads.is_empty() {
                return Ok((reads, next));
            }
            let why = match last_error {
                Some(e) => e.to_string(),
                None if ahead => format!("offset {next} never came, later ones did"),
                None => format!("neither a record nor its end within {} ms", timeout.as_millis()),
            };
            return Err(Error::Unavailable(format!("cannot read {topic}/{partition}: {why}")));
        }
        match consumer.poll(left.min(Duration::from_millis(100))) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => return Ok((reads, next)),
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => last_error = Some(e),
            Some(Ok(m)) => {
                let Ok(offset) = u64::try_from(m.offset()) else { continue };
                // Only the next offset: a message past it comes from an
                // earlier read's fetch (taking it would skip the records
                // between); the log's topics have no gaps.
                if m.topic() != topic || m.partition() != partition || offset != next {
                    if offset > next {
                        ahead = true;
                    }
                    continue;
                }
                reads.push(read_of(&m, offset));
                next = offset + 1;
            }
        }
    }
    Ok((reads, next))
}
