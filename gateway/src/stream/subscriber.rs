//! One subscriber: catches up from a `Last-Event-ID` by reading the log,
//! then takes the hub's deliveries, and writes SSE messages into a bounded
//! buffer. A subscriber whose buffer is full, or who fell behind the hub,
//! is told why (`event: error`) and closed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value as Json, json};
use tokio::sync::{broadcast, mpsc};

use super::decode::decode_records;
use super::feed::{FeedQuery, evaluate, fields_read};
use super::hub::Delivery;
use super::position::Positions;
use crate::log::EventLog;
use crate::schema::SchemaRegistry;
use crate::schema::names;

/// Why a subscription ended, sent as its last message.
pub type Farewell = Arc<Mutex<Option<Bytes>>>;

pub struct Subscriber {
    pub project: String,
    pub queries: Vec<FeedQuery>,
    pub log: Arc<dyn EventLog>,
    pub registry: Arc<SchemaRegistry>,
    pub positions: Positions,
    pub deliveries: broadcast::Receiver<Arc<Delivery>>,
    pub out: mpsc::Sender<Bytes>,
    /// Bytes in `out`, and how many there may be.
    pub queued: Arc<AtomicUsize>,
    pub max_queued: usize,
    pub farewell: Farewell,
    pub heartbeat: Duration,
    pub read_records: usize,
}

/// An SSE error event in Rakam's error shape.
pub fn error_event(status: u16, message: &str) -> Bytes {
    Bytes::from(format!("event: error\ndata: {}\n\n", json!({"error": message, "error_code": status})))
}

enum Ended {
    /// The client went away.
    Gone,
    /// Told to the client, then closed.
    Error(u16, String),
}

impl Subscriber {
    /// Catches up from `resume` to the hub's positions, then follows the
    /// hub until the client leaves or the subscription fails.
    pub async fn run(mut self, resume: Option<Positions>) {
        let ended = match self.catch_up(resume).await {
            Ok(()) => self.follow().await,
            Err(ended) => ended,
        };
        if let Ended::Error(status, message) = ended {
            *self.farewell.lock().unwrap_or_else(|e| e.into_inner()) = Some(error_event(status, &message));
        }
    }

    fn query(&self, collection: &str) -> Option<&FeedQuery> {
        self.queries.iter().find(|q| q.collection == collection)
    }

    async fn catch_up(&mut self, resume: Option<Positions>) -> Result<(), Ended> {
        let Some(resume) = resume else { return Ok(()) };
        let hub = std::mem::take(&mut self.positions);
        let resumed: Vec<String> = resume.0.keys().map(|(c, _)| c.clone()).collect();
        for ((collection, partition), target) in &hub.0 {
            if self.query(collection).is_none() {
                continue;
            }
            // A partition the id does not name, of a collection it names,
            // is one made since: from its start.
            let from =
                resume.get(collection, *partition).unwrap_or(if resumed.contains(collection) { 0 } else { *target });
            self.positions.set(collection, *partition, from);
            self.read_range(collection, *partition, *target).await?;
        }
        for (key, offset) in resume.0 {
            self.positions.0.entry(key).or_insert(offset);
        }
        for (key, offset) in hub.0 {
            self.positions.0.entry(key).or_insert(offset);
        }
        Ok(())
    }

    /// Reads a partition from this subscriber's position up to `to` and
    /// sends what its query makes of it.
    async fn read_range(&mut self, collection: &str, partition: u32, to: u64) -> Result<(), Ended> {
        let topic = names::topic_name(&self.project, collection);
        let mut from = self.positions.get(collection, partition).unwrap_or(0);
        while from < to {
            let batch = self.log.read(&topic, partition, from, self.read_records).await.map_err(|e| match e {
                crate::log::Error::Corrupt { reason, .. } if reason.contains("retention") => Ended::Error(
                    410,
                    format!("the log no longer holds {collection} partition {partition} from offset {from}"),
                ),
                e => Ended::Error(503, format!("the event log cannot be read: {e}")),
            })?;
            let records: Vec<_> = batch.records.into_iter().filter(|r| r.offset < to).collect();
            let next = batch.resume_at.min(to).max(records.last().map_or(from, |r| r.offset + 1));
            if next <= from {
                // Held back or not readable yet: the hub's deliveries
                // carry on from here.
                break;
            }
            let objects = self.own_objects(collection, &records).await?;
            self.positions.set(collection, partition, next);
            self.send(collection, objects)?;
            from = next;
        }
        Ok(())
    }

    async fn own_objects(&self, collection: &str, records: &[crate::log::StoredRecord]) -> Result<Vec<Json>, Ended> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let Some(query) = self.query(collection) else { return Ok(Vec::new()) };
        let read = fields_read([&query.statement]);
        let (fields, rows) = decode_records(&self.registry, &self.project, collection, records, read.as_ref())
            .await
            .map_err(|e| Ended::Error(500, format!("events of {collection} cannot be decoded: {e}")))?;
        let mut out = evaluate(collection, &fields, &rows, &[&query.statement]).await;
        out.pop()
            .unwrap_or_else(|| Ok(Vec::new()))
            .map_err(|e| Ended::Error(400, format!("the subscription's query of {collection} failed: {e}")))
    }

    /// Queues a message; a full buffer ends the subscription.
    fn send(&self, _collection: &str, objects: Vec<Json>) -> Result<(), Ended> {
        if objects.is_empty() {
            return Ok(());
        }
        let data = Json::Array(objects).to_string();
        let message = Bytes::from(format!("id: {}\nevent: data\ndata: {data}\n\n", self.positions.to_id()));
        self.queue(message)
    }

    fn queue(&self, message: Bytes) -> Result<(), Ended> {
        let len = message.len();
        let waiting = self.queued.load(Ordering::Acquire);
        if waiting > 0 && waiting + len > self.max_queued {
            return Err(Ended::Error(
                429,
                format!(
                    "the subscriber did not keep up: {waiting} bytes were waiting to be read (stream.buffer_bytes)"
                ),
            ));
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        match self.out.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Ended::Gone),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Ended::Error(
                429,
                format!(
                    "the subscriber did not keep up: {} messages were waiting to be read (stream.buffer_messages)",
                    self.out.max_capacity()
                ),
            )),
        }
    }

    async fn follow(&mut self) -> Ended {
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.tick().await;
        loop {
            let delivery = tokio::select! {
                () = self.out.closed() => return Ended::Gone,
                _ = heartbeat.tick() => {
                    if let Err(ended) = self.queue(Bytes::from_static(b": heartbeat\n\n")) {
                        return ended;
                    }
                    continue;
                }
                received = self.deliveries.recv() => received,
            };
            let delivery = match delivery {
                Ok(d) => d,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Ended::Error(
                        429,
                        format!("the subscriber fell {n} batches behind the stream (stream.backlog_batches)"),
                    );
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Ended::Error(503, "the stream of this project was stopped".to_owned());
                }
            };
            if let Err(ended) = self.take(&delivery).await {
                return ended;
            }
        }
    }

    /// Takes a delivery: the hub's result when it starts where this
    /// subscriber is, else a read of its own of what it has not seen.
    async fn take(&mut self, d: &Delivery) -> Result<(), Ended> {
        let Some(query) = self.query(&d.collection) else { return Ok(()) };
        let key = query.key().to_owned();
        let collection = d.collection.clone();
        let position = |p: u32, from: u64| self.positions.get(&collection, p).unwrap_or(from);
        if d.ranges.iter().all(|(p, (_, to))| position(*p, *to) >= *to) {
            return Ok(());
        }
        let aligned = d.ranges.iter().all(|(p, (from, _))| position(*p, *from) == *from);
        if aligned {
            let objects = match d.results.get(&key).map(|r| r.as_ref()) {
                None => Vec::new(),
                Some(Ok(objects)) => objects.clone(),
                Some(Err(e)) => {
                    return Err(Ended::Error(400, format!("the subscription's query of {collection} failed: {e}")));
                }
            };
            for (p, (_, to)) in &d.ranges {
                self.positions.set(&collection, *p, *to);
            }
            return self.send(&collection, objects);
        }
        let targets: BTreeMap<u32, u64> = d.ranges.iter().map(|(p, (_, to))| (*p, *to)).collect();
        for (p, to) in targets {
            if self.positions.get(&collection, p).is_none() {
                let from = d.ranges[&p].0;
                self.positions.set(&collection, p, from);
            }
            self.read_range(&collection, p, to).await?;
        }
        Ok(())
    }
}
