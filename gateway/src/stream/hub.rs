//! A project's hub: one follower of the log for every subscriber of the
//! project on this gateway. It reads the partitions of the collections
//! subscribed to as records become readable, evaluates each distinct query
//! once per batch, and broadcasts the batch's [`Delivery`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tokio::sync::broadcast;

use super::decode::decode_records;
use super::feed::{FeedQuery, evaluate, fields_read};
use super::position::Positions;
use crate::log::EventLog;
use crate::schema::SchemaRegistry;
use crate::schema::names;

/// How often the hub looks for topics of the collections it follows.
const TOPIC_REFRESH: Duration = Duration::from_secs(1);
/// How long one read of the log may wait for a first record.
const FOLLOW_WAIT: Duration = Duration::from_millis(250);
/// The shortest time between two reads that found records: under steady
/// ingest each read would otherwise find a few records, and each would
/// cost an evaluation of every feed and a wake-up of every subscriber.
const STEP_EVERY: Duration = crate::log::FOLLOW_POLL;

/// What one batch of a collection's new records gave each feed.
#[derive(Debug)]
pub struct Delivery {
    pub collection: String,
    /// Per partition, the offsets this batch covers: `from..to`.
    pub ranges: BTreeMap<u32, (u64, u64)>,
    /// Per feed key, the objects (possibly none) or why the query failed.
    pub results: HashMap<String, Arc<Result<Vec<Json>, String>>>,
}

struct Feed {
    query: FeedQuery,
    subscribers: usize,
}

#[derive(Default)]
struct State {
    /// Where the hub is in each followed partition.
    positions: Positions,
    feeds: HashMap<String, Feed>,
}

pub struct Hub {
    project: String,
    log: Arc<dyn EventLog>,
    registry: Arc<SchemaRegistry>,
    state: Mutex<State>,
    /// `None` once the hub is closed: its subscribers are told so.
    sender: Mutex<Option<broadcast::Sender<Arc<Delivery>>>>,
    max_records: usize,
    max_bytes: usize,
}

impl Hub {
    pub fn new(
        project: &str,
        log: Arc<dyn EventLog>,
        registry: Arc<SchemaRegistry>,
        capacity: usize,
        max_records: usize,
        max_bytes: usize,
    ) -> Arc<Hub> {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Arc::new(Hub {
            project: project.to_owned(),
            log,
            registry,
            state: Mutex::new(State::default()),
            sender: Mutex::new(Some(sender)),
            max_records,
            max_bytes,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a subscriber's feeds, following their collections from `ends`
    /// (where the log ended as the subscription began) where the hub does
    /// not follow them yet; returns the receiver of deliveries and the
    /// hub's positions at that moment: every delivery it receives starts
    /// where these end.
    pub fn join(&self, queries: &[FeedQuery], ends: &Positions) -> (broadcast::Receiver<Arc<Delivery>>, Positions) {
        let mut state = self.state();
        for q in queries {
            let followed = state.feeds.values().any(|f| f.query.collection == q.collection);
            if !followed {
                for (p, end) in ends.of(&q.collection) {
                    state.positions.0.entry((q.collection.clone(), p)).or_insert(end);
                }
            }
            state
                .feeds
                .entry(q.key().to_owned())
                .or_insert_with(|| Feed { query: q.clone(), subscribers: 0 })
                .subscribers += 1;
        }
        let receiver = match self.sender.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(sender) => sender.subscribe(),
            // Closed: a receiver whose sender is gone.
            None => broadcast::channel(1).1,
        };
        (receiver, state.positions.clone())
    }

    /// Ends every subscription of the hub.
    pub fn close(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Removes a subscriber's feeds; `true` when the hub has none left.
    pub fn leave(&self, queries: &[FeedQuery]) -> bool {
        let mut state = self.state();
        for q in queries {
            let key = q.key();
            if let Some(feed) = state.feeds.get_mut(key) {
                feed.subscribers -= 1;
                if feed.subscribers == 0 {
                    state.feeds.remove(key);
                }
            }
        }
        let followed: HashSet<String> = state.feeds.values().map(|f| f.query.collection.clone()).collect();
        state.positions.0.retain(|(c, _), _| followed.contains(c));
        state.feeds.is_empty()
    }

    /// Follows the log until the task is aborted.
    pub async fn run(self: Arc<Self>) {
        let mut refreshed: Option<Instant> = None;
        loop {
            if refreshed.is_none_or(|at| at.elapsed() >= TOPIC_REFRESH) {
                if let Err(e) = self.refresh_topics().await {
                    tracing::warn!(project = %self.project, error = %e, "the event stream cannot list topics");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                refreshed = Some(Instant::now());
            }
            let from: Vec<(String, u32, u64)> = self
                .state()
                .positions
                .0
                .iter()
                .map(|((c, p), o)| (names::topic_name(&self.project, c), *p, *o))
                .collect();
            if from.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let started = Instant::now();
            if let Err(e) = self.step(&from).await {
                tracing::warn!(project = %self.project, error = %e, "the event stream cannot read the log");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tokio::time::sleep(STEP_EVERY.saturating_sub(started.elapsed())).await;
        }
    }

    /// Starts following, from their start, the partitions of followed
    /// collections that appeared since they were subscribed to.
    async fn refresh_topics(&self) -> crate::log::Result<()> {
        let topics = self.log.topics().await?;
        let followed: HashSet<String> = self.state().feeds.values().map(|f| f.query.collection.clone()).collect();
        for topic in topics {
            let Some((project, collection)) = names::split_topic(&topic.name) else { continue };
            if project != self.project || !followed.contains(&collection) {
                continue;
            }
            let mut state = self.state();
            for p in 0..topic.partitions {
                state.positions.0.entry((collection.clone(), p)).or_insert(0);
            }
        }
        Ok(())
    }

    /// Keeps the first records of a read up to `max_bytes` (at least one);
    /// the partitions cut short resume after what was kept.
    fn within_budget(&self, from: &[(String, u32, u64)], batches: &mut [crate::log::ReadBatch]) {
        let mut budget = self.max_bytes;
        let mut kept_any = false;
        for ((_, _, offset), batch) in from.iter().zip(batches.iter_mut()) {
            let mut keep = 0;
            for r in &batch.records {
                if kept_any && r.value.len() > budget {
                    break;
                }
                budget = budget.saturating_sub(r.value.len());
                kept_any = true;
                keep += 1;
            }
            if keep < batch.records.len() {
                batch.records.truncate(keep);
                batch.resume_at = batch.records.last().map_or(*offset, |r| r.offset + 1);
            }
        }
    }

    /// One read of every followed partition, evaluated and delivered.
    async fn step(&self, from: &[(String, u32, u64)]) -> crate::log::Result<()> {
        let mut batches = self.log.follow(from, self.max_records, FOLLOW_WAIT).await?;
        self.within_budget(from, &mut batches);
        let mut by_collection: BTreeMap<String, Vec<(u32, u64, crate::log::ReadBatch)>> = BTreeMap::new();
        for ((topic, partition, offset), batch) in from.iter().zip(batches) {
            if batch.resume_at <= *offset {
                continue;
            }
            let Some((_, collection)) = names::split_topic(topic) else { continue };
            by_collection.entry(collection).or_default().push((*partition, *offset, batch));
        }
        for (collection, parts) in by_collection {
            let ranges: BTreeMap<u32, (u64, u64)> = parts.iter().map(|(p, o, b)| (*p, (*o, b.resume_at))).collect();
            let records: Vec<_> = parts.into_iter().flat_map(|(_, _, b)| b.records).collect();
            let feeds: Vec<(String, FeedQuery)> = self
                .state()
                .feeds
                .iter()
                .filter(|(_, f)| f.query.collection == collection)
                .map(|(k, f)| (k.clone(), f.query.clone()))
                .collect();
            let mut results = HashMap::new();
            if !records.is_empty() && !feeds.is_empty() {
                let read = fields_read(feeds.iter().map(|(_, q)| &q.statement));
                match decode_records(&self.registry, &self.project, &collection, &records, read.as_ref()).await {
                    Ok((fields, rows)) => {
                        let statements: Vec<&sqlparser::ast::Statement> =
                            feeds.iter().map(|(_, q)| &q.statement).collect();
                        let outputs = evaluate(&collection, &fields, &rows, &statements).await;
                        for ((key, _), output) in feeds.iter().zip(outputs) {
                            results.insert(key.clone(), Arc::new(output));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(project = %self.project, collection, error = %e, "the event stream skips records it cannot decode");
                    }
                }
            }
            let delivery = Arc::new(Delivery { collection: collection.clone(), ranges, results });
            let mut state = self.state();
            for (p, (_, to)) in &delivery.ranges {
                if state.positions.get(&collection, *p).is_some() {
                    state.positions.set(&collection, *p, *to);
                }
            }
            // No receiver is no subscriber: nothing to do.
            if let Some(sender) = self.sender.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                let _ = sender.send(delivery);
            }
        }
        Ok(())
    }
}
