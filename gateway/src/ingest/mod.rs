//! The ingest pipeline: events in, typed Avro records durably in the log.
//!
//! For each request: find the fields no schema has yet and infer their
//! types, extend the schemas once per collection, coerce every value to its
//! field's type (a value that cannot be coerced is stored as null and
//! reported in `$invalid_schema`), encode, and append everything in one
//! durable log write.

mod event;
pub mod sdk;

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value as Json;

pub use event::{Event, EventError};

use crate::batch::dedup::ID_FIELD;
use crate::log::{self, EventLog, Record, TopicBatch};
use crate::metadata;
use crate::plugin::Plugins;
use crate::plugin::enrich::{Fate, Refusal, RequestInfo};
use crate::schema::avro;
use crate::schema::infer::{coerce, infer};
use crate::schema::names::{INVALID_SCHEMA_COLLECTION, topic_name};
use crate::schema::timefmt;
use crate::schema::types::{Field, FieldType};
use crate::schema::value::{Scalar, Value};
use crate::schema::{CollectionSchema, SchemaRegistry, TIME_FIELD, USER_FIELD};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
    #[error(transparent)]
    Log(#[from] log::Error),
    /// An enricher failed and its policy refuses the events.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(
        "collection {collection} would have {count} fields, more than the {cap} a collection may have \
         (projects.max_fields); send fewer distinct properties"
    )]
    TooManyFields { collection: String, count: usize, cap: usize },
}

/// Fields a collection may have unless configured otherwise.
pub const DEFAULT_MAX_FIELDS: usize = 1_000;

/// What the request adds to its events.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub project: String,
    /// The client's address (first public `X-Forwarded-For` entry, or the peer).
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
    /// The client's clock when it sent the request (ms since the epoch).
    pub upload_time_ms: Option<i64>,
    /// `api.uuid` of the request.
    pub request_id: Option<String>,
    /// The request's headers (lowercased names), for enrichers; filled only
    /// when the project has one.
    pub headers: Vec<(String, String)>,
    /// The server's clock when the request arrived (ms since the epoch).
    pub received_ms: i64,
}

/// The fields of a `$invalid_schema` row.
fn invalid_schema_fields() -> Vec<Field> {
    ["collection", "property", "expected_type", "event_id", "error", "encoded_value"]
        .into_iter()
        .map(|n| Field::new(n, FieldType::STRING))
        .collect()
}

pub struct Ingestor {
    registry: Arc<SchemaRegistry>,
    log: Arc<dyn EventLog>,
    backlog: Option<Arc<crate::batch::loader::Backlog>>,
    plugins: Option<Arc<Plugins>>,
    max_fields: usize,
}

/// What became of a request's events.
#[derive(Debug, Default)]
pub struct Stored {
    /// One per event given, in order, when an enricher ran; `None` when
    /// every event was stored as given.
    pub fates: Option<Vec<Fate>>,
}

struct InvalidRow {
    collection: String,
    property: String,
    expected: FieldType,
    event_id: String,
    error: String,
    encoded_value: String,
}

impl Ingestor {
    pub fn new(registry: Arc<SchemaRegistry>, log: Arc<dyn EventLog>) -> Self {
        Ingestor { registry, log, backlog: None, plugins: None, max_fields: DEFAULT_MAX_FIELDS }
    }

    /// Caps the fields of each collection: a request that would add more is
    /// refused.
    pub fn with_max_fields(mut self, max_fields: usize) -> Self {
        self.max_fields = max_fields;
        self
    }

    /// Runs the project's enrichers over every request's events.
    pub fn with_plugins(mut self, plugins: Arc<Plugins>) -> Self {
        self.plugins = Some(plugins);
        self
    }

    /// Reports every append to the batch loop's backlog.
    pub fn with_backlog(mut self, backlog: Arc<crate::batch::loader::Backlog>) -> Self {
        self.backlog = Some(backlog);
        self
    }

    pub fn registry(&self) -> &Arc<SchemaRegistry> {
        &self.registry
    }

    /// Runs the project's enrichers, then stores the events they kept;
    /// returns once those are durable in the log.
    pub async fn store(&self, ctx: &Context, events: Vec<Event>) -> Result<Stored, IngestError> {
        let (events, stored) = self.enrich(ctx, events).await?;
        self.append(ctx, events).await?;
        Ok(stored)
    }

    /// Resolves the request's values (`_ip: true`, ...) and runs the
    /// project's enrichers: the events to store, and what became of each.
    pub async fn enrich(&self, ctx: &Context, mut events: Vec<Event>) -> Result<(Vec<Event>, Stored), IngestError> {
        for e in &mut events {
            resolve_request_values(e, ctx);
        }
        let Some((plugins, set)) = self.plugins.as_ref().and_then(|p| p.project(&ctx.project).map(|s| (p, s))) else {
            return Ok((events, Stored::default()));
        };
        if set.enrichers.is_empty() {
            return Ok((events, Stored::default()));
        }
        let info = RequestInfo {
            project: ctx.project.clone(),
            client_address: ctx.client_ip.map(|ip| ip.to_string()),
            user_agent: ctx.user_agent.clone(),
            headers: ctx.headers.clone(),
        };
        let enriched = plugins.enrich(&set, &info, events).await?;
        Ok((enriched.events, Stored { fates: Some(enriched.fates) }))
    }

    /// Types, encodes and appends events as they are; returns once they are
    /// durable in the log.
    pub async fn append(&self, ctx: &Context, events: Vec<Event>) -> Result<(), IngestError> {
        let batches = self.encode(ctx, events).await?;
        if !batches.is_empty() {
            let records = batches.iter().map(|b| b.records.len() as u64).sum();
            self.log.append(batches).await?;
            if let Some(backlog) = &self.backlog {
                backlog.added(records);
            }
        }
        Ok(())
    }

    /// Types and encodes the events (extending schemas as needed) into the
    /// records to append, one batch per topic.
    pub async fn encode(&self, ctx: &Context, mut events: Vec<Event>) -> Result<Vec<TopicBatch>, IngestError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        for e in &mut events {
            resolve_request_values(e, ctx);
        }
        let schemas = self.prepare_schemas(ctx, &events).await?;
        let mut batch_of: FastMap<&str, usize> = FastMap::default();
        let mut invalid = Vec::new();
        let several = events.len() > 1;
        // Every record of the request is encoded into one buffer, then cut
        // into shared slices of it.
        let mut out = Encoded::default();
        let mut placed: Vec<Vec<Placed>> = Vec::new();
        let mut topics: Vec<String> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let schema = &schemas[e.collection.as_str()];
            let event_id = || match &ctx.request_id {
                Some(id) if several => format!("{id}-{i}"),
                Some(id) => id.clone(),
                None => uuid::Uuid::new_v4().to_string(),
            };
            let record = encode(ctx, e, schema, &mut out, &mut invalid, event_id);
            let b = *batch_of.entry(e.collection.as_str()).or_insert_with(|| {
                topics.push(topic_name(&ctx.project, &e.collection));
                placed.push(Vec::new());
                topics.len() - 1
            });
            placed[b].push(record);
        }
        let mut batches = out.into_batches(topics, placed);
        if !invalid.is_empty() {
            batches.push(self.invalid_rows(ctx, invalid).await?);
        }
        Ok(batches)
    }

    /// The schema of every collection in the request, extended by the fields
    /// seen for the first time (typed by their first value in the request).
    async fn prepare_schemas<'e>(
        &self,
        ctx: &Context,
        events: &'e [Event],
    ) -> Result<FastMap<&'e str, Arc<CollectionSchema>>, IngestError> {
        let project = ctx.project.as_str();
        let mut known: FastMap<&str, Option<Arc<CollectionSchema>>> = FastMap::default();
        let mut new_fields: FastMap<&str, Vec<Field>> = FastMap::default();
        for e in events {
            let collection = e.collection.as_str();
            if !known.contains_key(collection) {
                known.insert(collection, self.registry.current(project, collection).await?);
            }
            let schema = known[collection].as_ref();
            for (name, value) in &e.properties {
                if name == TIME_FIELD || schema.is_some_and(|s| s.position(name).is_some()) {
                    continue;
                }
                let planned = new_fields.entry(collection).or_default();
                if planned.iter().any(|f| f.name == *name) {
                    continue;
                }
                let Some(mut field_type) = infer(value) else {
                    continue;
                };
                if name == ID_FIELD {
                    // Ids are compared as text, whatever their first one was.
                    field_type = FieldType::STRING;
                }
                if name == USER_FIELD {
                    let first = if value.as_i64().is_some() { FieldType::LONG } else { FieldType::STRING };
                    field_type = self.registry.user_type(project, first).await?;
                }
                planned.push(Field::new(name.clone(), field_type));
            }
        }
        let mut schemas = FastMap::with_capacity_and_hasher(known.len(), Default::default());
        for (collection, schema) in known {
            let wanted = new_fields.remove(collection).unwrap_or_default();
            let count = schema.as_ref().map_or(1, |s| s.fields.len()) + wanted.len();
            if !wanted.is_empty() && count > self.max_fields {
                let collection = collection.to_owned();
                return Err(IngestError::TooManyFields { collection, count, cap: self.max_fields });
            }
            let schema = match schema {
                Some(s) if wanted.is_empty() => s,
                _ => self.registry.ensure_fields(project, collection, &wanted, ctx.received_ms).await?,
            };
            schemas.insert(collection, schema);
        }
        Ok(schemas)
    }

    async fn invalid_rows(&self, ctx: &Context, rows: Vec<InvalidRow>) -> Result<TopicBatch, IngestError> {
        let schema = self
            .registry
            .ensure_fields(&ctx.project, INVALID_SCHEMA_COLLECTION, &invalid_schema_fields(), ctx.received_ms)
            .await?;
        let mut out = Encoded::default();
        let mut placed = Vec::with_capacity(rows.len());
        for row in rows {
            let properties = vec![
                ("collection".to_owned(), Json::String(row.collection)),
                ("property".to_owned(), Json::String(row.property)),
                ("expected_type".to_owned(), Json::String(row.expected.to_string())),
                ("event_id".to_owned(), Json::String(row.event_id)),
                ("error".to_owned(), Json::String(row.error)),
                ("encoded_value".to_owned(), Json::String(row.encoded_value)),
            ];
            let event = Event { collection: INVALID_SCHEMA_COLLECTION.to_owned(), properties };
            let mut nested = Vec::new();
            placed.push(encode(ctx, &event, &schema, &mut out, &mut nested, String::new));
        }
        let topic = topic_name(&ctx.project, INVALID_SCHEMA_COLLECTION);
        Ok(out.into_batches(vec![topic], vec![placed]).remove(0))
    }
}

/// `_ip`, `_user_agent` and `_referrer` set to `true` take the request's values.
fn resolve_request_values(e: &mut Event, ctx: &Context) {
    let wanted = |e: &Event, name: &str| matches!(e.get(name), Some(Json::Bool(true)));
    if wanted(e, "_ip") {
        e.set("_ip", ctx.client_ip.map_or(Json::Null, |ip| Json::String(ip.to_string())));
    }
    if wanted(e, "_user_agent") {
        e.set("_user_agent", ctx.user_agent.clone().map_or(Json::Null, Json::String));
    }
    if wanted(e, "_referrer") {
        e.set("_referrer", ctx.referer.clone().map_or(Json::Null, Json::String));
    }
}

/// A hash map with a fast, seeded hasher, for maps built per request.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Where a record's value and key are in [`Encoded`]'s buffers.
type Placed = (Range<usize>, Option<Range<usize>>);

/// The records of a request, encoded into one buffer.
#[derive(Default)]
struct Encoded {
    values: Vec<u8>,
    keys: Vec<u8>,
}

impl Encoded {
    /// Cuts the buffers into the records of each topic.
    fn into_batches(self, topics: Vec<String>, placed: Vec<Vec<Placed>>) -> Vec<TopicBatch> {
        let values = Bytes::from(self.values);
        let keys = Bytes::from(self.keys);
        topics
            .into_iter()
            .zip(placed)
            .map(|(topic, records)| TopicBatch {
                topic,
                records: records
                    .into_iter()
                    .map(|(value, key)| Record { key: key.map(|k| keys.slice(k)), value: values.slice(value) })
                    .collect(),
            })
            .collect()
    }
}

/// Encodes one event against its collection's schema into `out`; returns
/// where its value and key are.
fn encode(
    ctx: &Context,
    e: &Event,
    schema: &CollectionSchema,
    out: &mut Encoded,
    invalid: &mut Vec<InvalidRow>,
    event_id: impl Fn() -> String,
) -> Placed {
    let mut slots: Vec<Option<&Json>> = vec![None; schema.fields.len()];
    for (name, value) in &e.properties {
        if let Some(p) = schema.position(name) {
            slots[p] = Some(value);
        }
    }
    let buf = &mut out.values;
    let start = buf.len();
    avro::write_header(buf, schema.id as u32);
    let mut key = None;
    for (field, slot) in schema.fields.iter().zip(&slots) {
        if field.name == TIME_FIELD {
            let micros = event_time(ctx, *slot).unwrap_or_else(|err| {
                invalid.push(invalid_row(e, field, *slot, &event_id, err));
                ctx.received_ms * 1000
            });
            avro::write_value(buf, &Value::Scalar(Scalar::Timestamp(micros)));
            continue;
        }
        let Some(json) = slot else {
            avro::write_null(buf);
            continue;
        };
        match coerce(json, field.field_type) {
            Ok(Some(value)) => {
                if field.name == USER_FIELD {
                    key = user_key(&value, &mut out.keys);
                }
                avro::write_value(buf, &value);
            }
            Ok(None) => avro::write_null(buf),
            Err(err) => {
                invalid.push(invalid_row(e, field, Some(json), &event_id, err.to_string()));
                avro::write_null(buf);
            }
        }
    }
    (start..buf.len(), key)
}

fn invalid_row(
    e: &Event,
    field: &Field,
    value: Option<&Json>,
    event_id: impl Fn() -> String,
    error: String,
) -> InvalidRow {
    InvalidRow {
        collection: e.collection.clone(),
        property: field.name.clone(),
        expected: field.field_type,
        event_id: event_id(),
        error,
        encoded_value: value.map_or_else(String::new, Json::to_string),
    }
}

/// The event's `_time`: its own, shifted by the difference between the
/// server's and the client's clocks when `api.upload_time` was given, or
/// the server's time of arrival. A shifted time past what can be
/// represented is an error (the caller stores the time of arrival).
fn event_time(ctx: &Context, value: Option<&Json>) -> Result<i64, String> {
    let own = match value {
        None | Some(Json::Null) => return Ok(ctx.received_ms * 1000),
        Some(v) => coerce(v, FieldType::TIMESTAMP).map_err(|e| e.to_string())?,
    };
    let Some(Value::Scalar(Scalar::Timestamp(micros))) = own else {
        return Ok(ctx.received_ms * 1000);
    };
    let skew_ms = ctx.upload_time_ms.map_or(Some(0), |sent| ctx.received_ms.checked_sub(sent));
    skew_ms
        .and_then(|skew| skew.checked_mul(1000))
        .and_then(|skew| micros.checked_add(skew))
        .filter(|&shifted| timefmt::representable(shifted))
        .ok_or_else(|| "the time corrected for the client's clock lies outside the years 1 to 9999".to_owned())
}

/// The partitioning key of a record: its `_user`, as text, written to `keys`.
fn user_key(value: &Value<'_>, keys: &mut Vec<u8>) -> Option<Range<usize>> {
    let start = keys.len();
    match value {
        Value::Scalar(Scalar::String(s)) => keys.extend_from_slice(s.as_bytes()),
        Value::Scalar(Scalar::Long(v)) => keys.extend_from_slice(v.to_string().as_bytes()),
        _ => return None,
    }
    Some(start..keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn time_is_corrected_for_clock_skew() {
        let ctx = Context { received_ms: 10_000, upload_time_ms: Some(9_000), ..Context::default() };
        assert_eq!(event_time(&ctx, None), Ok(10_000_000));
        assert_eq!(event_time(&ctx, Some(&json!(5_000))), Ok(6_000_000));
        let no_upload = Context { received_ms: 10_000, ..Context::default() };
        assert_eq!(event_time(&no_upload, Some(&json!("1970-01-01T00:00:05Z"))), Ok(5_000_000));
        assert!(event_time(&no_upload, Some(&json!("yesterday"))).is_err());
    }
}
