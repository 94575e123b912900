//! Settings of the Kafka event log (`[kafka]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The Kafka event log. The brokers come from the log URL
/// (`kafka://host:port[,host:port]`); these are the rest.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaLogConfig {
    /// Put in front of every topic name: `<prefix><project>.<collection>`.
    /// Letters, digits, `.`, `_` and `-`, at most 40 characters; topics
    /// without it are not the gateway's and are left alone.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Partitions of each topic the gateway creates.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Replication factor of each topic the gateway creates.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: u16,
    /// Milliseconds a request waits for the delivery reports of its records;
    /// past it the request is answered 503 and its records are voided.
    #[serde(default = "default_delivery_timeout_ms")]
    pub delivery_timeout_ms: u64,
    /// Milliseconds past a record's delivery deadline before the batch loop
    /// loads it, so that a gateway that gave up on it has recorded the void.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Milliseconds a broker request of the gateway's own (topic creation,
    /// topic list, health probe, a read) may take.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Milliseconds between publications of how far this gateway has
    /// decided its appends; the batch loop reads a record once its writer
    /// has, without waiting out the delivery deadline and settle time.
    #[serde(default = "default_mark_interval_ms")]
    pub mark_interval_ms: u64,
    /// Milliseconds the broker may hold the batch loop's fetch waiting for
    /// records (`fetch.wait.max.ms`): a read of a partition with nothing
    /// new takes this long to learn so. A broker that answers a fetch only
    /// with what it found within this time needs more (tansu's in-memory
    /// storage, once it holds hundreds of thousands of records).
    #[serde(default = "default_fetch_wait_ms")]
    pub fetch_wait_ms: u64,
    /// Milliseconds between health probes of the brokers.
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u64,
    /// Hours a voided append is remembered; longer than the topics'
    /// retention, so that no voided record is read after its void is gone.
    #[serde(default = "default_void_retention_hours")]
    pub void_retention_hours: u64,
    /// More librdkafka producer properties (`linger.ms`,
    /// `compression.type`, `security.protocol`, ...). `enable.idempotence`
    /// and `acks` are fixed.
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
    /// More librdkafka consumer properties for the batch loop's reads.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
}

fn default_topic_prefix() -> String {
    "weir.".to_owned()
}

fn default_partitions() -> u32 {
    3
}

fn default_replication_factor() -> u16 {
    1
}

fn default_delivery_timeout_ms() -> u64 {
    5_000
}

fn default_settle_ms() -> u64 {
    2_000
}

fn default_request_timeout_ms() -> u64 {
    5_000
}

fn default_mark_interval_ms() -> u64 {
    200
}

fn default_fetch_wait_ms() -> u64 {
    20
}

fn default_probe_interval_ms() -> u64 {
    1_000
}

fn default_void_retention_hours() -> u64 {
    24 * 8
}

impl Default for KafkaLogConfig {
    fn default() -> Self {
        KafkaLogConfig {
            topic_prefix: default_topic_prefix(),
            partitions: default_partitions(),
            replication_factor: default_replication_factor(),
            delivery_timeout_ms: default_delivery_timeout_ms(),
            settle_ms: default_settle_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            mark_interval_ms: default_mark_interval_ms(),
            fetch_wait_ms: default_fetch_wait_ms(),
            probe_interval_ms: default_probe_interval_ms(),
            void_retention_hours: default_void_retention_hours(),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
        }
    }
}

/// Producer properties the log's guarantees rest on.
pub(super) const FIXED_PRODUCER_PROPERTIES: [&str; 4] =
    ["enable.idempotence", "acks", "message.timeout.ms", "bootstrap.servers"];

impl KafkaLogConfig {
    /// Checks the settings; the reason when they cannot work.
    pub fn validate(&self) -> Result<(), String> {
        let prefix_ok = self.topic_prefix.len() <= 40
            && self.topic_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !prefix_ok {
            return Err("kafka.topic_prefix may only hold letters, digits, '.', '_' and '-', at most 40".to_owned());
        }
        if self.partitions == 0 || self.partitions > 10_000 {
            return Err("kafka.partitions must be between 1 and 10000".to_owned());
        }
        if self.replication_factor == 0 {
            return Err("kafka.replication_factor must be at least 1".to_owned());
        }
        if self.delivery_timeout_ms < 100 {
            return Err("kafka.delivery_timeout_ms must be at least 100".to_owned());
        }
        if self.request_timeout_ms < 100 || self.probe_interval_ms < 10 || self.mark_interval_ms < 10 {
            return Err(
                "kafka.request_timeout_ms must be at least 100, probe_interval_ms and mark_interval_ms at least 10"
                    .to_owned(),
            );
        }
        if self.fetch_wait_ms >= self.request_timeout_ms {
            // Every read of a partition with nothing new would time out.
            return Err("kafka.fetch_wait_ms must be below kafka.request_timeout_ms".to_owned());
        }
        if let Some(fixed) = self.producer.keys().find(|k| FIXED_PRODUCER_PROPERTIES.contains(&k.as_str())) {
            return Err(format!("kafka.producer.{fixed} is set by the gateway and cannot be changed"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::KafkaLogConfig;

    #[test]
    fn a_fetch_wait_as_long_as_a_read_is_refused() {
        let config = KafkaLogConfig { fetch_wait_ms: 5_000, request_timeout_ms: 5_000, ..KafkaLogConfig::default() };
        assert_eq!(config.validate(), Err("kafka.fetch_wait_ms must be below kafka.request_timeout_ms".to_owned()));
        assert_eq!(KafkaLogConfig { fetch_wait_ms: 200, ..config }.validate(), Ok(()));
    }
}
