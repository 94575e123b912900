//! Appending: every record of an append is produced, and the append is
//! answered as stored only once every record has a successful delivery
//! report within the delivery timeout. Otherwise the append is voided in
//! the metadata store before it is answered as failed, so that records of
//! it the broker takes later are never loaded.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use super::header::{APPEND_HEADER, encode};
use super::topics::Topics;
use super::unavailable;
use crate::log::{Error, Position, Result, TopicBatch};
use crate::metadata::{AppendId, MetadataStore};

pub struct Appender {
    config: ClientConfig,
    /// Replaced when the idempotent producer reports a fatal error.
    producer: RwLock<Arc<FutureProducer>>,
    store: Arc<dyn MetadataStore>,
    writer: u64,
    next_seq: AtomicU64,
    /// Appends not decided yet (neither answered as stored nor voided).
    undecided: Mutex<BTreeSet<u64>>,
    delivery_timeout: Duration,
    settle: Duration,
}

impl Appender {
    pub fn new(
        config: ClientConfig,
        store: Arc<dyn MetadataStore>,
        delivery_timeout: Duration,
        settle: Duration,
    ) -> Result<Self> {
        let producer = config.create::<FutureProducer>().map_err(unavailable("create the producer"))?;
        Ok(Appender {
            config,
            producer: RwLock::new(Arc::new(producer)),
            store,
            writer: rand::random(),
            next_seq: AtomicU64::new(0),
            undecided: Mutex::new(BTreeSet::new()),
            delivery_timeout,
            settle,
        })
    }

    /// The writer's number, drawn at start.
    pub fn writer(&self) -> u64 {
        self.writer
    }

    /// Every append of this writer below the answer is decided.
    pub fn decided_below(&self) -> u64 {
        let undecided = self.undecided.lock().unwrap_or_else(|e| e.into_inner());
        undecided.first().copied().unwrap_or_else(|| self.next_seq.load(Ordering::Acquire))
    }

    /// A new append, undecided until the returned guard is dropped (after
    /// the append's answer is settled: stored, or voided).
    fn begin(&self) -> Undecided<'_> {
        let mut undecided = self.undecided.lock().unwrap_or_else(|e| e.into_inner());
        let seq = self.next_seq.fetch_add(1, Ordering::AcqRel);
        undecided.insert(seq);
        Undecided { set: &self.undecided, seq }
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub async fn append(&self, topics: &Topics, batches: Vec<TopicBatch>) -> Result<Vec<Vec<Position>>> {
        let names: Vec<String> = batches.iter().map(|b| topics.broker_name(&b.topic)).collect();
        topics.ensure(&names.iter().map(String::as_str).collect::<Vec<_>>()).await?;

        let undecided = self.begin();
        let id = AppendId { writer: self.writer, seq: undecided.seq };
        // The reader holds a record back until its timestamp plus the
        // delivery timeout and the settle time. The timestamp is taken after
        // the deadline's clock starts, so the deadline comes first.
        let deadline = tokio::time::Instant::now() + self.delivery_timeout;
        let timestamp = chrono::Utc::now().timestamp_millis();
        let header = encode(id);
        let producer = self.producer();
        let mut pending: Vec<Vec<DeliveryFuture>> = Vec::with_capacity(batches.len());
        let mut failure = None;
        'batches: for (batch, name) in batches.iter().zip(&names) {
            let mut futures = Vec::with_capacity(batch.records.len());
            for record in &batch.records {
                let headers =
                    OwnedHeaders::new_with_capacity(1).insert(Header { key: APPEND_HEADER, value: Some(&header[..]) });
                let mut message =
                    FutureRecord::to(name).payload(&record.value[..]).headers(headers).timestamp(timestamp);
                if let Some(key) = &record.key {
                    message = message.key(&key[..]);
                }
                match send(&producer, message, deadline).await {
                    Ok(future) => futures.push(future),
                    Err(e) => {
                        failure = Some(e);
                        pending.push(futures);
                        break 'batches;
                    }
                }
            }
            pending.push(futures);
        }
        let produced = pending.iter().any(|p| !p.is_empty());

        let mut stale_producer = false;
        let delivered = match failure {
            Some(e) => Err(e),
            None => match tokio::time::timeout_at(deadline, join_all(pending.into_iter().map(join_all))).await {
                Ok(reports) => positions(reports, &mut stale_producer),
                Err(_) => Err(Error::Unavailable(format!(
                    "the brokers did not confirm the records within {} ms",
                    self.delivery_timeout.as_millis()
                ))),
            },
        };
        match delivered {
            Ok(positions) => Ok(positions),
            Err(e) => {
                if stale_producer || producer.client().fatal_error().is_some() {
                    self.renew(&producer, &e);
                }
                if produced {
                    self.void(id, timestamp).await?;
                }
                Err(e)
            }
        }
    }

    /// Records the append as void before it is answered as failed.
    async fn void(&self, id: AppendId, timestamp: i64) -> Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        self.store.void_appends(&[id], now).await.map_err(|e| {
            tracing::error!(error = %e, "an append that failed could not be voided; its records may be loaded");
            Error::Unavailable(format!("the events could not be stored, nor the failure recorded: {e}"))
        })?;
        let loadable_from = timestamp + millis(self.delivery_timeout) + millis(self.settle);
        if now >= loadable_from {
            tracing::error!("an append was voided after the batch loop may have loaded it; raise kafka.settle_ms");
        }
        Ok(())
    }

    /// A producer whose id or epoch the brokers refuse (fenced, a fatal
    /// error of the idempotent producer) refuses every later record too:
    /// start a new one, with a new producer id.
    fn renew(&self, failed: &Arc<FutureProducer>, cause: &Error) {
        tracing::warn!(error = %cause, "the brokers refuse the producer; starting a new one");
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                let mut slot = self.producer.write().unwrap_or_else(|e| e.into_inner());
                if Arc::ptr_eq(&slot, failed) {
                    *slot = Arc::new(fresh);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot start a new producer"),
        }
    }

    /// Waits until every record handed to the producer is delivered or
    /// failed (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer().flush(timeout) {
            tracing::warn!(error = %e, "records were still waiting for delivery at shutdown");
        }
    }
}

/// An append in progress; decided when dropped. (A request dropped half way
/// got no answer, so either outcome is right for it.)
struct Undecided<'a> {
    set: &'a Mutex<BTreeSet<u64>>,
    seq: u64,
}

impl Drop for Undecided<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.seq);
    }
}

/// Hands a record to the producer, waiting while its queue is full.
async fn send<'a>(
    producer: &FutureProducer,
    mut message: FutureRecord<'a, [u8], [u8]>,
    deadline: tokio::time::Instant,
) -> Result<DeliveryFuture> {
    loop {
        match producer.send_result(message) {
            Ok(future) => return Ok(future),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::Unavailable("the producer queue stayed full".to_owned()));
                }
                message = back;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err((e, _)) => return Err(Error::Unavailable(format!("cannot produce: {e}"))),
        }
    }
}

type Report =
    std::result::Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>;

/// Whether a delivery error means the brokers no longer take this
/// producer's id or epoch.
fn refuses_producer(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::InvalidProducerIdMapping
        )
    )
}

/// Every record's position, or the first failure; `stale_producer` is set
/// when a failure calls for a new producer.
fn positions(reports: Vec<Vec<Report>>, stale_producer: &mut bool) -> Result<Vec<Vec<Position>>> {
    reports
        .into_iter()
        .map(|batch| {
            batch
                .into_iter()
                .map(|report| match report {
                    Ok(Ok(delivery)) => Ok(Position {
                        partition: u32::try_from(delivery.partition)
                            .map_err(|_| Error::Unavailable("negative partition".to_owned()))?,
                        offset: u64::try_from(delivery.offset)
                            .map_err(|_| Error::Unavailable("negative offset".to_owned()))?,
                    }),
                    Ok(Err((e, _))) => {
                        *stale_producer |= refuses_producer(&e);
                        Err(Error::Unavailable(format!("a record was not delivered: {e}")))
                    }
                    Err(_) => Err(Error::Unavailable("the producer went away".to_owned())),
                })
                .collect()
        })
        .collect()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
