//! Running a project's enrichers over a batch of events, in order.

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value as Json;

use super::OnError;
use super::bindings::types;
use super::registry::{Plugins, ProjectPlugins};
use super::runtime::Failure;
use crate::ingest::Event;

/// What the request tells enrichers about itself.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub project: String,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    /// Lowercased names, in arrival order.
    pub headers: Vec<(String, String)>,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Kept,
    /// Filtered out by a plugin: not stored, not an error.
    Dropped,
    /// Refused by a plugin, for a reason the client is told.
    Rejected {
        plugin: String,
        reason: String,
    },
}

/// The events to store, and the fate of each event given, in order.
#[derive(Debug)]
pub struct Enriched {
    pub events: Vec<Event>,
    pub fates: Vec<Fate>,
}

/// A plugin failed and its policy is `reject`: none of the events are stored.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {plugin} failed ({failure}); its policy is on_error=reject, so the events were refused")]
pub struct Refusal {
    pub plugin: String,
    pub failure: Failure,
}

/// What one call decided for one event.
enum Decision {
    Keep,
    Replace(Event),
    Drop,
    Reject(String),
}

impl Plugins {
    /// Runs the project's enrichers over the events, in order; each sees the
    /// events the ones before it kept, as they left them.
    pub async fn enrich(
        &self,
        set: &ProjectPlugins,
        info: &RequestInfo,
        events: Vec<Event>,
    ) -> Result<Enriched, Refusal> {
        let mut fates = vec![Fate::Kept; events.len()];
        let mut slots: Vec<Option<Event>> = events.into_iter().map(Some).collect();
        for plugin in &set.enrichers {
            let alive: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_some()).collect();
            if alive.is_empty() {
                break;
            }
            let wire: Vec<types::Event> = alive.iter().filter_map(|&i| slots[i].as_ref().map(to_wire)).collect();
            let context = request_context(info, &wire);
            let called = self.call_enrich(plugin, context, wire).await;
            called.log.forward(&info.project, &plugin.name);
            let decisions = called.result.and_then(|outcomes| {
                outcomes
                    .into_iter()
                    .zip(&alive)
                    .map(|(outcome, &i)| decide(outcome, slots[i].as_ref().map_or("", |e| e.collection.as_str())))
                    .collect::<Result<Vec<_>, Failure>>()
            });
            let decisions = match decisions {
                Ok(d) => d,
                Err(failure) => match plugin.on_error {
                    OnError::Pass => {
                        tracing::warn!(project = %info.project, plugin = %plugin.name, %failure, "plugin failed; its events passed unchanged");
                        continue;
                    }
                    OnError::Reject => return Err(Refusal { plugin: plugin.name.clone(), failure }),
                },
            };
            for (decision, i) in decisions.into_iter().zip(alive) {
                match decision {
                    Decision::Keep => {}
                    Decision::Replace(event) => slots[i] = Some(event),
                    Decision::Drop => {
                        slots[i] = None;
                        fates[i] = Fate::Dropped;
                    }
                    Decision::Reject(reason) => {
                        slots[i] = None;
                        fates[i] = Fate::Rejected { plugin: plugin.name.clone(), reason };
                    }
                }
            }
        }
        Ok(Enriched { events: slots.into_iter().flatten().collect(), fates })
    }
}

fn decide(outcome: types::Outcome, collection: &str) -> Result<Decision, Failure> {
    Ok(match outcome {
        types::Outcome::Keep => Decision::Keep,
        types::Outcome::Drop => Decision::Drop,
        types::Outcome::Reject(reason) => Decision::Reject(reason),
        types::Outcome::Replace(json) => {
            let value: Json =
                serde_json::from_str(&json).map_err(|e| Failure::InvalidAnswer(format!("properties: {e}")))?;
            Decision::Replace(
                Event::new(collection, Some(value)).map_err(|e| Failure::InvalidAnswer(format!("properties: {e}")))?,
            )
        }
    })
}

/// The event as it crosses: its collection and its properties as JSON text.
pub fn to_wire(event: &Event) -> types::Event {
    types::Event { collection: event.collection.clone(), properties: properties_json(&event.properties) }
}

/// Properties as one JSON object, in their order.
pub fn properties_json(properties: &[(String, Json)]) -> String {
    struct Props<'a>(&'a [(String, Json)]);
    impl Serialize for Props<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in self.0 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }
    serde_json::to_string(&Props(properties)).unwrap_or_else(|_| "{}".to_owned())
}

pub fn request_context(info: &RequestInfo, events: &[types::Event]) -> types::RequestContext {
    let mut collection_names: Vec<String> = Vec::new();
    for e in events {
        if !collection_names.contains(&e.collection) {
            collection_names.push(e.collection.clone());
        }
    }
    types::RequestContext {
        project: info.project.clone(),
        collection_names,
        client_address: info.client_address.clone(),
        user_agent: info.user_agent.clone(),
        headers: info.headers.iter().map(|(n, v)| types::Header { name: n.clone(), value: v.clone() }).collect(),
    }
}
