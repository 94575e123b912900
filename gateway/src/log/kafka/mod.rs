//! The Kafka event log: one topic per project and collection
//! (`<prefix><project>.<collection>`, created on first use), records in
//! Confluent's wire format as the ingest path encodes them, produced by an
//! idempotent producer with `acks=all`, and read back by the batch loop by
//! assign and seek from the offsets in the metadata store.
//!
//! A Kafka append that times out may still reach the log later: the broker
//! may have taken the records before it stopped answering. Such an append
//! is voided in the metadata store before the request is answered 503, and
//! the reader leaves voided records out. A record is read only once its
//! append is decided, so that the void, if any, is recorded before the
//! batch loop sees the record: either its writer has published that every
//! append of its below this one is decided (every `mark_interval_ms`), or
//! the writer's delivery deadline and a settle time have passed (a writer
//! that stopped publishing, such as a crashed gateway).

mod config;
mod header;
mod health;
mod produce;
mod read;
mod topics;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::consumer::BaseConsumer;

pub use config::KafkaLogConfig;

use self::health::Health;
use self::produce::Appender;
use self::read::Reader;
use self::topics::Topics;
use super::{Error, EventLog, LogHealth, Position, ReadBatch, Result, TopicBatch, TopicInfo};
use crate::metadata::MetadataStore;

/// A broker failure as the log's error.
fn unavailable(what: &'static str) -> impl Fn(rdkafka::error::KafkaError) -> Error {
    move |e| Error::Unavailable(format!("{what}: {e}"))
}

pub struct KafkaLog {
    topics: Topics,
    appender: Arc<Appender>,
    reader: Reader,
    /// The event stream's reader: a consumer of its own, so that following
    /// partitions never waits behind the batch loop's reads.
    follower: Reader,
    health: Arc<Health>,
    probe: tokio::task::JoinHandle<()>,
    marker: tokio::task::JoinHandle<()>,
    mark_interval: Duration,
    /// The reader's `fetch.wait.max.ms`: how long a fetch may stay in
    /// flight after a read ends.
    fetch_wait: Duration,
    store: Arc<dyn MetadataStore>,
    void_retention_ms: i64,
    /// When voids were last pruned (ms since the epoch).
    pruned_at: std::sync::atomic::AtomicI64,
}

impl KafkaLog {
    /// Connects to `brokers` (`host:port[,host:port]`). Succeeds while the
    /// brokers are down: appends fail until they answer.
    pub fn open(brokers: &str, config: &KafkaLogConfig, store: Arc<dyn MetadataStore>) -> Result<Self> {
        config.validate().map_err(Error::Config)?;
        if brokers.split(',').any(|b| b.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()))
        {
            return Err(Error::UnsupportedUrl(format!("kafka://{brokers}")));
        }
        let request_timeout = Duration::from_millis(config.request_timeout_ms);
        let delivery_timeout = Duration::from_millis(config.delivery_timeout_ms);
        let mut common = ClientConfig::new();
        common.set("bootstrap.servers", brokers).set("client.id", "weir");

        let mut producer = common.clone();
        producer
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", config.delivery_timeout_ms.to_string())
            // A request waits for its delivery reports: lingering to grow
            // batches only adds to every request's time (records still
            // batch up while earlier ones are in flight). Measured with the
            // Kafka benchmark: 2 ms gave 119k events/s, 0 ms 190k.
            .set("linger.ms", "0");
        for (k, v) in &config.producer {
            producer.set(k, v);
        }
        let mut consumer = common.clone();
        consumer
            .set("group.id", "weir-batch-loop")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "error")
            .set("fetch.wait.max.ms", config.fetch_wait_ms.to_string());
        for (k, v) in &config.consumer {
            consumer.set(k, v);
        }
        let fetch_wait = Duration::from_millis(
            consumer.get("fetch.wait.max.ms").and_then(|ms| ms.parse().ok()).unwrap_or(config.fetch_wait_ms),
        );

        let metadata: Arc<BaseConsumer> = Arc::new(common.create().map_err(unavailable("create a client"))?);
        let admin = common.create().map_err(unavailable("create an admin client"))?;
        let topics = Topics::new(
            config.topic_prefix.clone(),
            config.partitions,
            config.replication_factor,
            request_timeout,
            admin,
            metadata.clone(),
        );
        let settle = Duration::from_millis(config.settle_ms);
        let appender = Arc::new(Appender::new(producer, store.clone(), delivery_timeout, settle)?);
        let mark_interval = Duration::from_millis(config.mark_interval_ms);
        let marker = spawn_marker(appender.clone(), store.clone(), mark_interval);
        let reader = Reader::new(
            consumer.create_with_context(read::ReaderContext).map_err(unavailable("create the reader"))?,
            store.clone(),
            delivery_timeout + settle,
            request_timeout,
        );
        consumer.set("group.id", "weir-stream");
        let follower = Reader::new(
            consumer.create_with_context(read::ReaderContext).map_err(unavailable("create the follower"))?,
            store.clone(),
            delivery_timeout + settle,
            request_timeout,
        );
        let health = Health::new();
        let probe = health.spawn_probe(metadata, Duration::from_millis(config.probe_interval_ms), request_timeout);
        Ok(KafkaLog {
            topics,
            appender,
            reader,
            follower,
            health,
            probe,
            marker,
            mark_interval,
            fetch_wait,
            store,
            void_retention_ms: i64::try_from(config.void_retention_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX),
            pruned_at: std::sync::atomic::AtomicI64::new(0),
        })
    }
}

impl Drop for KafkaLog {
    fn drop(&mut self) {
        self.probe.abort();
        self.marker.abort();
    }
}

/// Publishes how far the appender has decided its appends, whenever that
/// moved, every `interval`.
fn spawn_marker(
    appender: Arc<Appender>,
    store: Arc<dyn MetadataStore>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut published = 0;
        loop {
            tokio::time::sleep(interval).await;
            let below = appender.decided_below();
            if below == published {
                continue;
            }
            match store.mark_decided(appender.writer(), below, chrono::Utc::now().timestamp_millis()).await {
                Ok(()) => published = below,
                Err(e) => tracing::warn!(error = %e, "cannot publish how far appends are decided"),
            }
        }
    })
}

#[async_trait]
impl EventLog for KafkaLog {
    async fn append(&self, batches: Vec<TopicBatch>) -> Result<Vec<Vec<Position>>> {
        if !self.health.is_up() {
            return Err(Error::Unavailable(format!(
                "the Kafka brokers do not answer: {}",
                self.health.report().detail
            )));
        }
        self.appender.append(&self.topics, batches).await
    }

    async fn read(&self, topic: &str, partition: u32, from: u64, max_records: usize) -> Result<ReadBatch> {
        self.reader.read(&self.topics.broker_name(topic), partition, from, max_records).await
    }

    async fn topics(&self) -> Result<Vec<TopicInfo>> {
        self.topics.list().await
    }

    /// The watermarks, then a read to the partition's end: a broker may
    /// report a high watermark short of the last records (tansu does).
    async fn ends(&self, topic: &str, partitions: u32) -> Result<Vec<u64>> {
        let broker_topic = self.topics.broker_name(topic);
        let highs = self.reader.end_offsets(&broker_topic, partitions).await?;
        let mut ends = Vec::with_capacity(highs.len());
        for (p, high) in highs.into_iter().enumerate() {
            let mut end = high;
            loop {
                let batch = self.reader.read(&broker_topic, p as u32, end, 10_000).await?;
                if batch.resume_at <= end {
                    break;
                }
                end = batch.resume_at;
            }
            ends.push(end);
        }
        Ok(ends)
    }

    async fn follow(&self, from: &[(String, u32, u64)], max_records: usize, wait: Duration) -> Result<Vec<ReadBatch>> {
        let from: Vec<(String, u32, u64)> = from.iter().map(|(t, p, o)| (self.topics.broker_name(t), *p, *o)).collect();
        let local = Some((self.appender.writer(), self.appender.decided_below()));
        self.follower.follow(&from, max_records, wait, local).await
    }

    fn shared(&self) -> bool {
        true
    }

    async fn end_offsets(&self) -> Result<Vec<(String, u32, u64)>> {
        let mut ends = Vec::new();
        for topic in self.topics.list().await? {
            let offsets = self.reader.end_offsets(&self.topics.broker_name(&topic.name), topic.partitions).await?;
            ends.extend(offsets.into_iter().enumerate().map(|(p, end)| (topic.name.clone(), p as u32, end)));
        }
        Ok(ends)
    }

    /// Retention is the brokers' (the topics' `retention.ms`); releases
    /// only forget, at most hourly, voids old enough that their records are
    /// gone.
    async fn release(&self, _topic: &str, _partition: u32, _offset: u64) -> Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let last = self.pruned_at.load(std::sync::atomic::Ordering::Relaxed);
        if now - last < 3_600_000
            || self
                .pruned_at
                .compare_exchange(last, now, std::sync::atomic::Ordering::AcqRel, std::sync::atomic::Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        if let Err(e) = self.store.prune_voided_appends(now.saturating_sub(self.void_retention_ms)).await {
            tracing::warn!(error = %e, "cannot forget old voided appends");
        }
        Ok(())
    }

    /// Not while the reader may still fetch from them: librdkafka (2.12)
    /// crashes on a fetch answer about a topic being deleted (one without
    /// topic ids).
    async fn delete_topics(&self, prefix: &str) -> Result<()> {
        let _no_reads = self.reader.idle(self.fetch_wait).await;
        let _no_follows = self.follower.idle(self.fetch_wait).await;
        self.topics.delete(prefix).await
    }

    async fn health(&self) -> LogHealth {
        self.health.report()
    }

    fn broker_topic(&self, topic: &str) -> String {
        self.topics.broker_name(topic)
    }

    fn log_topic(&self, broker_topic: &str) -> Option<String> {
        self.topics.log_name(broker_topic).map(str::to_owned)
    }

    fn read_delay(&self) -> Duration {
        self.reader.hold()
    }

    /// A live writer's mark moves past a record within a mark interval.
    fn retry_delay(&self) -> Duration {
        self.mark_interval
    }

    async fn close(&self) {
        self.appender.flush(Duration::from_secs(5));
    }
}
