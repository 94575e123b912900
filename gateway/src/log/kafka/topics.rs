//! Topic names on the brokers, and creating and listing them.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::unavailable;
use crate::log::{Result, TopicInfo};

/// The gateway's topics on the brokers: `<prefix><topic>`.
pub struct Topics {
    prefix: String,
    partitions: u32,
    replication: u16,
    timeout: Duration,
    admin: AdminClient<DefaultClientContext>,
    /// A client for metadata requests.
    metadata: Arc<BaseConsumer>,
    /// Topics known to exist.
    known: RwLock<HashSet<String>>,
}

impl Topics {
    pub fn new(
        prefix: String,
        partitions: u32,
        replication: u16,
        timeout: Duration,
        admin: AdminClient<DefaultClientContext>,
        metadata: Arc<BaseConsumer>,
    ) -> Self {
        Topics { prefix, partitions, replication, timeout, admin, metadata, known: RwLock::new(HashSet::new()) }
    }

    /// The broker's name of a log topic.
    pub fn broker_name(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    /// The log topic of a broker's topic name, if it is one of the gateway's.
    pub fn log_name<'a>(&self, broker_name: &'a str) -> Option<&'a str> {
        broker_name.strip_prefix(&self.prefix).filter(|t| crate::schema::names::split_topic(t).is_some())
    }

    /// Creates whichever of these broker topics are not known to exist.
    pub async fn ensure(&self, broker_names: &[&str]) -> Result<()> {
        let missing: Vec<&str> = {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            broker_names.iter().copied().filter(|t| !known.contains(*t)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let partitions = i32::try_from(self.partitions).unwrap_or(i32::MAX);
        let replication = i32::from(self.replication);
        let new: Vec<NewTopic<'_>> =
            missing.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication))).collect();
        let options = AdminOptions::new().request_timeout(Some(self.timeout)).operation_timeout(Some(self.timeout));
        let results = self.admin.create_topics(&new, &options).await.map_err(unavailable("create topics"))?;
        let mut created = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Ok(name) | Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => created.push(name),
                Err((name, code)) => {
                    return Err(crate::log::Error::Unavailable(format!("cannot create topic {name}: {code}")));
                }
            }
        }
        self.known.write().unwrap_or_else(|e| e.into_inner()).extend(created);
        Ok(())
    }

    /// The gateway's topics with their partition counts, by log name.
    pub async fn list(&self) -> Result<Vec<TopicInfo>> {
        let metadata = self.metadata.clone();
        let timeout = self.timeout;
        let topics = tokio::task::spawn_blocking(move || {
            let m = metadata.fetch_metadata(None, timeout).map_err(unavailable("list topics"))?;
            Ok::<_, crate::log::Error>(
                m.topics()
                    .iter()
                    .filter(|t| t.error().is_none())
                    .map(|t| (t.name().to_owned(), t.partitions().len()))
                    .collect::<Vec<_>>(),
            )
        })
        .await
        .map_err(|e| crate::log::Error::Unavailable(e.to_string()))??;
        let mut out: Vec<TopicInfo> = topics
            .into_iter()
            .filter_map(|(name, partitions)| {
                let log_name = self.log_name(&name)?.to_owned();
                Some(TopicInfo { name: log_name, partitions: u32::try_from(partitions).ok()? })
            })
            .filter(|t| t.partitions > 0)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes the gateway's topics whose log names start with `prefix`.
    pub async fn delete(&self, prefix: &str) -> Result<()> {
        let doomed: Vec<String> = self
            .list()
            .await?
            .into_iter()
            .filter(|t| t.name.starts_with(prefix))
            .map(|t| self.broker_name(&t.name))
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = doomed.iter().map(String::as_str).collect();
        let options = AdminOptions::new().request_timeout(Some(self.timeout)).operation_timeout(Some(self.timeout));
        let results = self.admin.delete_topics(&names, &options).await.map_err(unavailable("delete topics"))?;
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        for result in results {
            match result {
                Ok(name) | Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                    known.remove(&name);
                }
                Err((name, code)) => {
                    return Err(crate::log::Error::Unavailable(format!("cannot delete topic {name}: {code}")));
                }
            }
        }
        Ok(())
    }
}
