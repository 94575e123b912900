//! The event stream (`GET /stream/subscribe`): each subscriber gets the
//! project's new events, as its query makes them, as soon as they are
//! readable in the log, from whichever gateway took them.
//!
//! A subscription is one query per collection (`SELECT <columns> FROM
//! <collection> WHERE <filter>`, after the project's rewriters and the
//! built-in rewrite). Per project, one [`hub::Hub`] follows the log for all
//! of this gateway's subscribers and evaluates each distinct query once per
//! batch; each [`subscriber::Subscriber`] takes the results from where it
//! is, writes them as SSE messages whose id is its position in the log,
//! and can resume from such an id.

mod decode;
pub mod feed;
mod hub;
pub mod position;
mod subscriber;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use feed::FeedQuery;
use hub::Hub;
pub use position::Positions;
use subscriber::Subscriber;
pub use subscriber::error_event;

use crate::log::EventLog;
use crate::schema::SchemaRegistry;
use crate::schema::names;

/// The event stream's settings (`[stream]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Subscribers one project may have on this gateway at once.
    #[serde(default = "default_per_project")]
    pub max_per_project: usize,
    /// Subscribers this gateway serves at once, over every project.
    #[serde(default = "default_total")]
    pub max_subscribers: usize,
    /// Messages a subscriber may have waiting to be sent; one that falls
    /// further behind is told so and closed.
    #[serde(default = "default_buffer")]
    pub buffer_messages: usize,
    /// Bytes of messages a subscriber may have waiting to be sent (one
    /// message larger than this still goes to a subscriber with nothing
    /// waiting); one that falls further behind is told so and closed.
    #[serde(default = "default_buffer_bytes")]
    pub buffer_bytes: usize,
    /// Batches of new events a project's stream keeps for subscribers still
    /// busy with earlier ones; one that falls further behind is closed.
    #[serde(default = "default_backlog")]
    pub backlog_batches: usize,
    /// Milliseconds between heartbeat comments on an idle subscription.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// Records one read of a partition takes at most.
    #[serde(default = "default_read_records")]
    pub read_records: usize,
    /// Bytes of stored events one batch of a project's stream takes at
    /// most (at least one event), which bounds a message's size.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,
}

fn default_per_project() -> usize {
    200
}
fn default_total() -> usize {
    2_000
}
fn default_buffer() -> usize {
    256
}
fn default_buffer_bytes() -> usize {
    8 << 20
}
fn default_backlog() -> usize {
    1_024
}
fn default_heartbeat_ms() -> u64 {
    15_000
}
fn default_read_records() -> usize {
    10_000
}
fn default_batch_bytes() -> usize {
    1 << 20
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_per_project: default_per_project(),
            max_subscribers: default_total(),
            buffer_messages: default_buffer(),
            buffer_bytes: default_buffer_bytes(),
            backlog_batches: default_backlog(),
            heartbeat_ms: default_heartbeat_ms(),
            read_records: default_read_records(),
            batch_bytes: default_batch_bytes(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Over a subscriber limit (429).
    #[error("{0}")]
    TooMany(String),
    #[error("the event log: {0}")]
    Log(#[from] crate::log::Error),
}

struct Running {
    hub: Arc<Hub>,
    task: tokio::task::JoinHandle<()>,
    subscribers: usize,
}

pub struct Streams {
    log: Arc<dyn EventLog>,
    registry: Arc<SchemaRegistry>,
    config: StreamConfig,
    hubs: Mutex<HashMap<String, Running>>,
}

impl Streams {
    pub fn new(log: Arc<dyn EventLog>, registry: Arc<SchemaRegistry>, config: StreamConfig) -> Arc<Streams> {
        Arc::new(Streams { log, registry, config, hubs: Mutex::new(HashMap::new()) })
    }

    fn hubs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.hubs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the partitions of these collections end now.
    async fn ends(&self, project: &str, queries: &[FeedQuery]) -> Result<Positions, StreamError> {
        let mut positions = Positions::default();
        let topics = self.log.topics().await?;
        for q in queries {
            let name = names::topic_name(project, &q.collection);
            if let Some(topic) = topics.iter().find(|t| t.name == name) {
                for (p, end) in self.log.ends(&name, topic.partitions).await?.into_iter().enumerate() {
                    positions.set(&q.collection, p as u32, end);
                }
            }
        }
        Ok(positions)
    }

    /// Starts a subscription: new events from now, or from `resume` (an id
    /// of an earlier message). The SSE body.
    pub async fn subscribe(
        self: &Arc<Self>,
        project: &str,
        queries: Vec<FeedQuery>,
        resume: Option<Positions>,
    ) -> Result<impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static, StreamError> {
        let ends = self.ends(project, &queries).await?;
        let (hub, receiver, positions) = {
            let mut hubs = self.hubs();
            let total: usize = hubs.values().map(|r| r.subscribers).sum();
            if total >= self.config.max_subscribers {
                return Err(StreamError::TooMany(format!(
                    "this gateway serves {total} subscribers, its limit (stream.max_subscribers)"
                )));
            }
            let running = hubs.entry(project.to_owned()).or_insert_with(|| {
                let hub = Hub::new(
                    project,
                    self.log.clone(),
                    self.registry.clone(),
                    self.config.backlog_batches,
                    self.config.read_records,
                    self.config.batch_bytes,
                );
                let task = tokio::spawn(hub.clone().run());
                Running { hub, task, subscribers: 0 }
            });
            if running.subscribers >= self.config.max_per_project {
                return Err(StreamError::TooMany(format!(
                    "project {project} has {} subscribers on this gateway, its limit (stream.max_per_project)",
                    running.subscribers
                )));
            }
            running.subscribers += 1;
            let (receiver, positions) = running.hub.join(&queries, &ends);
            (running.hub.clone(), receiver, positions)
        };
        let (out, body) = mpsc::channel(self.config.buffer_messages.max(1));
        let farewell = subscriber::Farewell::default();
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let subscriber = Subscriber {
            project: project.to_owned(),
            queries: queries.clone(),
            log: self.log.clone(),
            registry: self.registry.clone(),
            positions,
            deliveries: receiver,
            out,
            queued: queued.clone(),
            max_queued: self.config.buffer_bytes,
            farewell: farewell.clone(),
            heartbeat: Duration::from_millis(self.config.heartbeat_ms.max(1)),
            read_records: self.config.read_records.max(1),
        };
        let streams = self.clone();
        let project = project.to_owned();
        tokio::spawn(async move {
            subscriber.run(resume).await;
            streams.leave(&project, &hub, &queries);
        });
        Ok(sse_body(body, queued, farewell))
    }

    fn leave(&self, project: &str, hub: &Arc<Hub>, queries: &[FeedQuery]) {
        let empty = hub.leave(queries);
        let mut hubs = self.hubs();
        // Not a hub that replaced this one (the project deleted and made again).
        if let Some(running) = hubs.get_mut(project).filter(|r| Arc::ptr_eq(&r.hub, hub)) {
            running.subscribers = running.subscribers.saturating_sub(1);
            if empty && running.subscribers == 0 {
                running.task.abort();
                hubs.remove(project);
            }
        }
    }

    /// Stops a deleted project's stream: its subscribers are told so.
    pub fn stop_project(&self, project: &str) {
        if let Some(running) = self.hubs().remove(project) {
            running.task.abort();
            running.hub.close();
        }
    }
}

/// The messages as they are queued, then the subscription's last word.
fn sse_body(
    body: mpsc::Receiver<Bytes>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    farewell: subscriber::Farewell,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::unfold((body, Some(farewell)), move |(mut body, farewell)| {
        let queued = queued.clone();
        async move {
            match body.recv().await {
                Some(message) => {
                    queued.fetch_sub(message.len(), std::sync::atomic::Ordering::AcqRel);
                    Some((Ok(message), (body, farewell)))
                }
                None => {
                    let last = farewell?.lock().unwrap_or_else(|e| e.into_inner()).take()?;
                    Some((Ok(last), (body, None)))
                }
            }
        }
    })
}
