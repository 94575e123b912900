//! Segment's tracking API, which RudderStack's SDKs speak too: `/v1/batch`
//! and `/v1/track|identify|page|screen|group|alias`.
//!
//! A `track` is an event of the collection its `event` names ("Order
//! Completed" is `order_completed`); `page` and `screen` are events of
//! `pageview` and `screen` with their `name` (and `category`); `identify`
//! sets user properties, `group` sets the user's `group_id` and stores a
//! `group` event with the group's traits, `alias` maps the previous id to
//! the user. Properties are the event's fields, and `context` flattened
//! beside them (`context.library.name` is `context_library_name`, but
//! `context.ip` is `_ip` and `context.userAgent` `_user_agent`).

mod wire;

use serde_json::{Map, Value as Json};

use super::{Message, corrected_ms, flatten, id_value, instant_ms, stamped_event};
use crate::schema::names::event_collection_name;
use wire::{Batch, BatchBody, Item, Raw};

/// A call of Segment's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl Kind {
    fn of(name: &str) -> Option<Kind> {
        Some(match name {
            "track" => Kind::Track,
            "identify" => Kind::Identify,
            "page" => Kind::Page,
            "screen" => Kind::Screen,
            "group" => Kind::Group,
            "alias" => Kind::Alias,
            _ => return None,
        })
    }
}

/// What `/v1/<call>` is: a batch, or one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Batch,
    Call(Kind),
}

impl Endpoint {
    /// The endpoint `/v1/<call>` names, if it is one of Segment's.
    pub fn of(call: &str) -> Option<Endpoint> {
        if call == "batch" { Some(Endpoint::Batch) } else { Kind::of(call).map(Endpoint::Call) }
    }

    /// Reads a body of this endpoint; only text that is not JSON fails here,
    /// the rest is told by [`Body::messages`].
    pub fn read(self, text: &str) -> Result<Body, serde_json::Error> {
        if !text.trim_start().starts_with('{') {
            serde_json::from_str::<serde::de::IgnoredAny>(text)?;
            return Ok(Body::NotObject);
        }
        Ok(match self {
            Endpoint::Batch => Body::Batch(serde_json::from_str(text)?),
            Endpoint::Call(kind) => Body::Call(kind, Box::new(serde_json::from_str(text)?)),
        })
    }
}

/// A request's body as read.
#[derive(Debug)]
pub enum Body {
    /// `/v1/batch`: `{batch: [message...], sentAt?, context?, writeKey?}`.
    Batch(BatchBody),
    /// `/v1/<call>`: one message, whose `type` may be left out.
    Call(Kind, Box<Raw>),
    NotObject,
}

impl Body {
    /// The write key the body carries: its own `writeKey`, or its first
    /// message's.
    pub fn write_key(&self) -> Option<String> {
        match self {
            Body::Batch(body) => text(body.write_key.as_ref()).or_else(|| match &body.batch {
                Batch::Items(items) => match items.first()? {
                    Item::Message(first) => text(first.write_key.as_ref()),
                    Item::NotObject => None,
                },
                Batch::NotArray => None,
            }),
            Body::Call(_, raw) => text(raw.write_key.as_ref()),
            Body::NotObject => None,
        }
    }

    /// What the body asks for, or why none of it can be done.
    pub fn messages(self, received_ms: i64) -> Result<Vec<Message>, String> {
        match self {
            Body::Batch(body) => {
                let Batch::Items(batch) = body.batch else {
                    return Err("batch must be an array of messages".to_owned());
                };
                let sent_ms = sent_at(body.sent_at.as_ref())?;
                let context = body.context.into_fields("context")?;
                let mut messages = Vec::with_capacity(batch.len());
                for (i, item) in batch.into_iter().enumerate() {
                    let Item::Message(item) = item else {
                        return Err(format!("batch[{i}]: a message must be an object"));
                    };
                    let parsed =
                        message(None, *item, sent_ms, &context, received_ms).map_err(|e| format!("batch[{i}]: {e}"))?;
                    messages.extend(parsed);
                }
                Ok(messages)
            }
            Body::Call(kind, raw) => message(Some(kind), *raw, None, &[], received_ms),
            Body::NotObject => Err("the body must be a JSON object".to_owned()),
        }
    }
}

fn text(value: Option<&Json>) -> Option<String> {
    value.and_then(Json::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn sent_at(value: Option<&Json>) -> Result<Option<i64>, String> {
    value.map(|v| instant_ms(v).ok_or_else(|| format!("sentAt is not a date-time: {v}"))).transpose()
}

/// A message's context over the batch's: the message's members win.
fn merged_context(batch: &[(String, Json)], own: Vec<(String, Json)>) -> Vec<(String, Json)> {
    if batch.is_empty() {
        return own;
    }
    let mut context = own;
    let inherited: Vec<(String, Json)> =
        batch.iter().filter(|(name, _)| !context.iter().any(|(n, _)| n == name)).cloned().collect();
    context.extend(inherited);
    context.sort_by(|a, b| a.0.cmp(&b.0));
    context
}

fn take_member(members: &mut Vec<(String, Json)>, name: &str) -> Option<Json> {
    let at = members.iter().position(|(n, _)| n == name)?;
    Some(members.remove(at).1)
}

/// One message of Segment's protocol as what it asks for.
fn message(
    hint: Option<Kind>,
    item: Raw,
    batch_sent_ms: Option<i64>,
    batch_context: &[(String, Json)],
    received_ms: i64,
) -> Result<Vec<Message>, String> {
    let kind = match (&item.kind, hint) {
        (Some(Json::String(t)), _) => Kind::of(t).ok_or_else(|| format!("unknown type {t:?}"))?,
        (None, Some(kind)) => kind,
        (None, None) => return Err("type is missing".to_owned()),
        (Some(other), _) => return Err(format!("type must be a string, not {other}")),
    };
    if hint.is_some_and(|h| h != kind) {
        return Err("type does not match the endpoint".to_owned());
    }
    let user = id_value(item.user_id.as_ref());
    let anonymous = id_value(item.anonymous_id.as_ref());
    let time = match item.timestamp.as_ref().or(item.original_timestamp.as_ref()) {
        None => None,
        Some(v) => Some(instant_ms(v).ok_or_else(|| format!("timestamp is not a date-time: {v}"))?),
    };
    let sent = sent_at(item.sent_at.as_ref())?.or(batch_sent_ms);
    let time_ms = corrected_ms(time, sent, received_ms);
    let id = match &item.message_id {
        None => None,
        Some(v) => {
            Some(id_value(Some(v)).and_then(|v| v.as_str().map(str::to_owned)).ok_or("messageId must be a string")?)
        }
    };
    if kind == Kind::Alias {
        let previous = id_value(item.previous_id.as_ref()).ok_or("alias needs previousId")?;
        let user = user.ok_or("alias needs userId")?;
        return Ok(vec![Message::Alias { anonymous: previous, user, time_ms, id }]);
    }
    let who = user.clone().or_else(|| anonymous.clone()).ok_or("userId or anonymousId is required")?;
    let mut context = merged_context(batch_context, item.context.into_fields("context")?);
    let mut messages = Vec::new();
    let (collection, mut fields) = match kind {
        Kind::Identify => {
            // RudderStack's SDKs send the traits in the context.
            let mut traits = match take_member(&mut context, "traits") {
                Some(Json::Object(traits)) => traits,
                _ => Map::new(),
            };
            traits.extend(item.traits.into_fields("traits")?);
            messages.push(Message::SetUser { user: who, properties: traits, once: false });
            if let (Some(user), Some(anonymous)) = (user, anonymous)
                && user != anonymous
            {
                messages.push(Message::Alias { anonymous, user, time_ms, id });
            }
            return Ok(messages);
        }
        Kind::Track => {
            let name = match &item.event {
                Some(Json::String(e)) if !e.trim().is_empty() => e,
                _ => return Err("track needs an event name".to_owned()),
            };
            let collection = event_collection_name(name).map_err(|e| format!("event {name:?}: {e}"))?;
            (collection, item.properties.into_fields("properties")?)
        }
        Kind::Page | Kind::Screen => {
            let mut fields = item.properties.into_fields("properties")?;
            for (name, value) in [("name", item.name), ("category", item.category)] {
                if let Some(v) = value {
                    fields.retain(|(n, _)| n != name);
                    fields.push((name.to_owned(), v));
                }
            }
            (if kind == Kind::Page { "pageview" } else { "screen" }.to_owned(), fields)
        }
        Kind::Group => {
            let group = id_value(item.group_id.as_ref()).ok_or("group needs groupId")?;
            let mut properties = Map::new();
            properties.insert("group_id".to_owned(), group.clone());
            messages.push(Message::SetUser { user: who.clone(), properties, once: false });
            let mut fields = item.traits.into_fields("traits")?;
            fields.retain(|(n, _)| n != "group_id" && n != "groupId");
            fields.push(("group_id".to_owned(), group));
            ("group".to_owned(), fields)
        }
        Kind::Alias => unreachable!("answered above"),
    };
    take_member(&mut context, "traits");
    if let Some(ip) = take_member(&mut context, "ip") {
        fields.push(("_ip".to_owned(), ip));
    }
    if let Some(agent) = take_member(&mut context, "userAgent") {
        fields.push(("_user_agent".to_owned(), agent));
    }
    flatten("context", context, &mut fields);
    messages.push(Message::Event(stamped_event(&collection, fields, Some(who), anonymous, time_ms, id)?));
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Event;
    use serde_json::json;

    fn parse_batch(body: Json, received_ms: i64) -> Result<Vec<Message>, String> {
        parse_call("batch", body, received_ms)
    }

    fn parse_call(call: &str, body: Json, received_ms: i64) -> Result<Vec<Message>, String> {
        let body = Endpoint::of(call).expect("an endpoint").read(&body.to_string()).expect("JSON");
        body.messages(received_ms)
    }

    fn write_key(body: &Json) -> Option<String> {
        Endpoint::Batch.read(&body.to_string()).expect("JSON").write_key()
    }

    fn event(messages: &[Message]) -> &Event {
        messages.iter().find_map(|m| if let Message::Event(e) = m { Some(e) } else { None }).expect("an event")
    }

    #[test]
    fn a_track_is_an_event_of_its_named_collection() {
        let body = json!({"batch": [{
            "type": "track", "event": "Order Completed", "userId": "u1", "anonymousId": "a1",
            "messageId": "m1", "timestamp": "2024-01-01T00:00:00Z",
            "properties": {"orderTotal": 12.5, "plan": "pro"},
            "context": {"ip": "203.0.113.9", "library": {"name": "analytics-node", "version": "3.0"}}
        }], "sentAt": "2024-01-01T00:00:10Z", "writeKey": "k"});
        let received = 1_704_067_215_000; // 15 s after the event; sent 10 s after it
        assert_eq!(write_key(&body).as_deref(), Some("k"));
        let parsed = parse_batch(body, received).expect("parsed");
        let e = event(&parsed);
        assert_eq!(e.collection, "order_completed");
        assert_eq!(e.get("order_total"), Some(&json!(12.5)));
        assert_eq!(e.get("_user"), Some(&json!("u1")));
        assert_eq!(e.get("_device_id"), Some(&json!("a1")));
        assert_eq!(e.get("_id"), Some(&json!("m1")));
        assert_eq!(e.get("_ip"), Some(&json!("203.0.113.9")));
        assert_eq!(e.get("context_library_name"), Some(&json!("analytics-node")));
        assert_eq!(e.get("_time"), Some(&json!(1_704_067_205_000_i64)), "shifted by the 5 s the clocks differ");
    }

    #[test]
    fn a_messages_context_is_laid_over_the_batchs() {
        let body = r#"{"batch": [
            {"type": "track", "event": "x", "userId": "u", "context": {"ip": "203.0.113.2"},
             "properties": {"plan": "free", "plan": "pro"}, "integrations": {"All": true}},
            {"type": "track", "event": "x", "userId": "u"}
        ], "context": {"ip": "203.0.113.1", "locale": "en"}}"#;
        let parsed = Endpoint::Batch.read(body).expect("JSON").messages(0).expect("parsed");
        let events: Vec<&Event> =
            parsed.iter().filter_map(|m| if let Message::Event(e) = m { Some(e) } else { None }).collect();
        assert_eq!(events[0].get("_ip"), Some(&json!("203.0.113.2")));
        assert_eq!(events[1].get("_ip"), Some(&json!("203.0.113.1")));
        assert_eq!(events[0].get("context_locale"), Some(&json!("en")));
        assert_eq!(events[0].get("plan"), Some(&json!("pro")), "a name sent twice keeps its last value");
        assert_eq!(events[0].get("integrations"), None);
    }

    #[test]
    fn identify_group_and_alias_change_users() {
        let parsed = parse_call(
            "identify",
            json!({"userId": 7, "anonymousId": "a", "traits": {"email": "x@y"}, "messageId": "m"}),
            0,
        )
        .expect("parsed");
        let traits = json!({"email": "x@y"}).as_object().cloned().expect("object");
        assert_eq!(parsed[0], Message::SetUser { user: json!("7"), properties: traits, once: false });
        let rudder =
            parse_call("identify", json!({"userId": "u", "context": {"traits": {"plan": "pro"}}}), 0).expect("parsed");
        assert!(matches!(&rudder[0], Message::SetUser { properties, .. } if properties["plan"] == "pro"));
        assert!(matches!(&parsed[1], Message::Alias { anonymous, user, .. } if anonymous == "a" && user == "7"));
        let group = parse_call("group", json!({"userId": "u", "groupId": "g1", "traits": {"name": "Acme"}}), 0)
            .expect("parsed");
        assert_eq!(event(&group).collection, "group");
        assert_eq!(event(&group).get("group_id"), Some(&json!("g1")));
        let alias = parse_call("alias", json!({"previousId": "a", "userId": "u"}), 5).expect("parsed");
        assert!(matches!(&alias[0], Message::Alias { time_ms: 5, .. }));
        let page =
            parse_call("page", json!({"anonymousId": "a", "name": "Home", "category": "Docs"}), 0).expect("parsed");
        assert_eq!(event(&page).collection, "pageview");
        assert_eq!(event(&page).get("name"), Some(&json!("Home")));
    }

    #[test]
    fn bad_messages_are_refused_with_their_place() {
        let err = |body: Json| parse_batch(body, 0).expect_err("refused");
        assert_eq!(err(json!({"batch": {}})), "batch must be an array of messages");
        assert_eq!(
            err(json!({"batch": [{"type": "track", "event": "x", "userId": "u"}, 1]})),
            "batch[1]: a message must be an object"
        );
        assert_eq!(
            err(json!({"batch": [{"type": "track", "event": "x", "userId": "u", "properties": [1]}]})),
            "batch[0]: properties must be an object"
        );
        assert_eq!(err(json!([{"type": "track"}])), "the body must be a JSON object");
        assert!(Endpoint::Batch.read("{\"batch\": [").is_err());
        assert!(Endpoint::Batch.read("[1,").is_err());
        assert_eq!(
            err(json!({"batch": [{"type": "track", "event": "x"}]})),
            "batch[0]: userId or anonymousId is required"
        );
        assert_eq!(err(json!({"batch": [{"type": "track", "userId": "u"}]})), "batch[0]: track needs an event name");
        assert_eq!(err(json!({"batch": [{"type": "nope", "userId": "u"}]})), "batch[0]: unknown type \"nope\"");
        assert!(
            err(json!({"batch": [{"type": "track", "event": "x", "userId": "u", "timestamp": "later"}]}))
                .contains("timestamp")
        );
        assert!(parse_call("track", json!({"type": "page", "userId": "u"}), 0).is_err());
        assert!(parse_call("alias", json!({"userId": "u"}), 0).is_err());
    }
}
