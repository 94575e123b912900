//! Other analytics SDKs' protocols (Segment and RudderStack, PostHog,
//! Snowplow), mapped onto collections and the user table.
//!
//! Each protocol turns a request into [`Message`]s, or refuses all of it;
//! [`deliver`] then applies the user changes and stores the events. Every
//! event with the protocol's id carries it as `_id`, so that one re-sent is
//! stored once (see `batch::dedup`).

pub mod members;
pub mod posthog;
pub mod segment;
pub mod snowplow;

use serde_json::{Map, Value as Json};

use super::{Context, Event, IngestError, Ingestor};
use crate::batch::dedup::ID_FIELD;
use crate::users::Users;
use crate::users::{Operation, OperationKind};

/// The collection anonymous ids are mapped to users in (as `/user/merge`).
pub const ANONYMOUS_ID_MAPPING: &str = "$anonymous_id_mapping";

/// What one message of an SDK asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// An event to store.
    Event(Event),
    /// Properties to set on a user, created when absent; with `once`, only
    /// those that are null.
    SetUser { user: Json, properties: Map<String, Json>, once: bool },
    /// An anonymous id that is now known to be `user`.
    Alias { anonymous: Json, user: Json, time_ms: i64, id: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Users(#[from] crate::users::Error),
}

/// Applies the user changes (all or none), then stores the events; returns
/// once both are durable. A failure after the users were changed leaves
/// them changed: sent again, the same changes are the same, and the events
/// are stored once by their ids.
pub async fn deliver(
    ingest: &Ingestor,
    users: &Users,
    ctx: &Context,
    messages: Vec<Message>,
) -> Result<(), DeliverError> {
    let mut events = Vec::new();
    let mut mappings = Vec::new();
    let mut ops = Vec::new();
    for message in messages {
        match message {
            Message::Event(e) => events.push(e),
            Message::SetUser { user, properties, once } => {
                let kind = if once { OperationKind::SetOnce(properties) } else { OperationKind::Set(properties) };
                ops.push(Operation { id: user, kind });
            }
            Message::Alias { anonymous, user, time_ms, id } => {
                mappings.push(mapping_event(anonymous, user, time_ms, id))
            }
        }
    }
    if !ops.is_empty() {
        users.apply(&ctx.project, &ops, ctx.received_ms).await?;
    }
    if !events.is_empty() {
        ingest.store(ctx, events).await?;
    }
    if !mappings.is_empty() {
        ingest.append(ctx, mappings).await?;
    }
    Ok(())
}

/// An event of `$anonymous_id_mapping`: `id` the anonymous id, `_user` the
/// user.
fn mapping_event(anonymous: Json, user: Json, time_ms: i64, id: Option<String>) -> Event {
    let stamp = Json::String(crate::schema::timefmt::format_timestamp(time_ms.saturating_mul(1000)));
    let mut properties = vec![
        ("id".to_owned(), anonymous),
        (crate::schema::USER_FIELD.to_owned(), user),
        ("created_at".to_owned(), stamp.clone()),
        ("merged_at".to_owned(), stamp),
        (crate::schema::TIME_FIELD.to_owned(), Json::from(time_ms)),
    ];
    if let Some(id) = id {
        properties.push((ID_FIELD.to_owned(), Json::String(id)));
    }
    Event { collection: ANONYMOUS_ID_MAPPING.to_owned(), properties }
}

/// An event of `collection` with `fields`, stamped with who sent it, when,
/// and its id.
pub(crate) fn stamped_event(
    collection: &str,
    fields: Vec<(String, Json)>,
    user: Option<Json>,
    device: Option<Json>,
    time_ms: i64,
    id: Option<String>,
) -> Result<Event, String> {
    let mut event = Event::from_pairs(collection, fields).map_err(|e| e.to_string())?;
    if let Some(user) = user {
        event.set(crate::schema::USER_FIELD, user);
    }
    if let Some(device) = device {
        event.set("_device_id", device);
    }
    event.set(crate::schema::TIME_FIELD, Json::from(time_ms));
    if let Some(id) = id {
        event.set(ID_FIELD, Json::String(id));
    }
    Ok(event)
}

/// A user or anonymous id: a non-empty string, or a number as its text.
pub(crate) fn id_value(value: Option<&Json>) -> Option<Json> {
    match value? {
        Json::String(s) if !s.is_empty() => Some(Json::String(s.clone())),
        Json::Number(n) => Some(Json::String(n.to_string())),
        _ => None,
    }
}

/// An instant as milliseconds: ISO 8601 text, or milliseconds.
pub(crate) fn instant_ms(value: &Json) -> Option<i64> {
    match value {
        Json::String(s) => crate::schema::timefmt::parse_timestamp(s).map(|micros| micros.div_euclid(1000)),
        Json::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The time of an event, corrected for the client's clock as Rakam does
/// with `api.upload_time`: shifted by how far the server's clock was ahead
/// of the client's when the request was sent.
pub(crate) fn corrected_ms(time_ms: Option<i64>, sent_ms: Option<i64>, received_ms: i64) -> i64 {
    match (time_ms, sent_ms) {
        (Some(t), Some(sent)) => t.saturating_add(received_ms.saturating_sub(sent)),
        (Some(t), None) => t,
        (None, _) => received_ms,
    }
}

/// Flattens an object's members into `prefix_path_to_leaf` names (arrays
/// and scalars are leaves).
pub(crate) fn flatten(prefix: &str, members: impl IntoIterator<Item = (String, Json)>, out: &mut Vec<(String, Json)>) {
    flatten_under(&mut prefix.to_owned(), members, out);
}

fn flatten_under(name: &mut String, members: impl IntoIterator<Item = (String, Json)>, out: &mut Vec<(String, Json)>) {
    let prefix = name.len();
    for (key, value) in members {
        name.truncate(prefix);
        name.push('_');
        name.push_str(&key);
        match value {
            Json::Object(inner) => flatten_under(name, inner, out),
            leaf => out.push((name.clone(), leaf)),
        }
    }
    name.truncate(prefix);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_corrected_for_the_senders_clock() {
        assert_eq!(corrected_ms(Some(1_000), Some(5_000), 8_000), 4_000);
        assert_eq!(corrected_ms(Some(1_000), None, 8_000), 1_000);
        assert_eq!(corrected_ms(None, Some(5_000), 8_000), 8_000);
        assert_eq!(instant_ms(&json!("1970-01-01T00:00:01.5Z")), Some(1_500));
        assert_eq!(instant_ms(&json!("soon")), None);
    }

    #[test]
    fn objects_flatten_to_prefixed_names() {
        let mut out = Vec::new();
        let context = json!({"library": {"name": "x", "version": "1"}, "locale": "en", "list": [1]});
        flatten("context", context.as_object().cloned().expect("object"), &mut out);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["context_library_name", "context_library_version", "context_list", "context_locale"]);
        assert_eq!(id_value(Some(&json!(7))), Some(json!("7")));
        assert_eq!(id_value(Some(&json!(""))), None);
    }
}
