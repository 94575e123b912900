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

use serde_json::{Map, Value as Json};

use super::{Message, corrected_ms, flatten, id_value, instant_ms, stamped_event};
use crate::schema::names::event_collection_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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

/// Whether `/v1/<name>` is a call of Segment's API.
pub fn is_call(name: &str) -> bool {
    Kind::of(name).is_some()
}

/// The write key a body carries: its own `writeKey`, or its first
/// message's.
pub fn write_key(body: &Json) -> Option<String> {
    text(body.get("writeKey")).or_else(|| text(body.get("batch")?.get(0)?.get("writeKey")))
}

/// `/v1/batch`: `{batch: [message...], sentAt?, context?, writeKey?}`.
pub fn parse_batch(body: Json, received_ms: i64) -> Result<Vec<Message>, String> {
    let Json::Object(mut body) = body else { return Err("the body must be a JSON object".to_owned()) };
    let Some(Json::Array(batch)) = body.remove("batch") else {
        return Err("batch must be an array of messages".to_owned());
    };
    let sent_ms = sent_at(body.get("sentAt"))?;
    let context = match body.remove("context") {
        None | Some(Json::Null) => None,
        Some(Json::Object(c)) => Some(c),
        Some(_) => return Err("context must be an object".to_owned()),
    };
    let mut messages = Vec::with_capacity(batch.len());
    for (i, item) in batch.into_iter().enumerate() {
        let Json::Object(item) = item else { return Err(format!("batch[{i}]: a message must be an object")) };
        let parsed =
            message(None, item, sent_ms, context.as_ref(), received_ms).map_err(|e| format!("batch[{i}]: {e}"))?;
        messages.extend(parsed);
    }
    Ok(messages)
}

/// `/v1/<call>`: one message, whose `type` may be left out.
pub fn parse_call(call: &str, body: Json, received_ms: i64) -> Result<Vec<Message>, String> {
    let kind = Kind::of(call).ok_or_else(|| format!("unknown call {call:?}"))?;
    let Json::Object(item) = body else { return Err("the body must be a JSON object".to_owned()) };
    message(Some(kind), item, None, None, received_ms)
}

fn text(value: Option<&Json>) -> Option<String> {
    value.and_then(Json::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn sent_at(value: Option<&Json>) -> Result<Option<i64>, String> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(v) => instant_ms(v).map(Some).ok_or_else(|| format!("sentAt is not a date-time: {v}")),
    }
}

fn object(item: &mut Map<String, Json>, name: &str) -> Result<Map<String, Json>, String> {
    match item.remove(name) {
        None | Some(Json::Null) => Ok(Map::new()),
        Some(Json::Object(map)) => Ok(map),
        Some(_) => Err(format!("{name} must be an object")),
    }
}

/// One message of Segment's protocol as what it asks for.
fn message(
    hint: Option<Kind>,
    mut item: Map<String, Json>,
    batch_sent_ms: Option<i64>,
    batch_context: Option<&Map<String, Json>>,
    received_ms: i64,
) -> Result<Vec<Message>, String> {
    let kind = match (item.get("type"), hint) {
        (Some(Json::String(t)), _) => Kind::of(t).ok_or_else(|| format!("unknown type {t:?}"))?,
        (None | Some(Json::Null), Some(kind)) => kind,
        (None | Some(Json::Null), None) => return Err("type is missing".to_owned()),
        (Some(other), _) => return Err(format!("type must be a string, not {other}")),
    };
    if hint.is_some_and(|h| h != kind) {
        return Err("type does not match the endpoint".to_owned());
    }
    let user = id_value(item.get("userId"));
    let anonymous = id_value(item.get("anonymousId"));
    let time = match item.get("timestamp").filter(|v| !v.is_null()).or(item.get("originalTimestamp")) {
        None | Some(Json::Null) => None,
        Some(v) => Some(instant_ms(v).ok_or_else(|| format!("timestamp is not a date-time: {v}"))?),
    };
    let sent = sent_at(item.get("sentAt"))?.or(batch_sent_ms);
    let time_ms = corrected_ms(time, sent, received_ms);
    let id = match item.get("messageId") {
        None | Some(Json::Null) => None,
        Some(v) => {
            Some(id_value(Some(v)).and_then(|v| v.as_str().map(str::to_owned)).ok_or("messageId must be a string")?)
        }
    };
    if kind == Kind::Alias {
        let previous = id_value(item.get("previousId")).ok_or("alias needs previousId")?;
        let user = user.ok_or("alias needs userId")?;
        return Ok(vec![Message::Alias { anonymous: previous, user, time_ms, id }]);
    }
    let who = user.clone().or_else(|| anonymous.clone()).ok_or("userId or anonymousId is required")?;
    let mut context = batch_context.cloned().unwrap_or_default();
    context.extend(object(&mut item, "context")?);
    let mut messages = Vec::new();
    let (collection, mut fields) = match kind {
        Kind::Identify => {
            // RudderStack's SDKs send the traits in the context.
            let mut traits = match context.remove("traits") {
                Some(Json::Object(traits)) => traits,
                _ => Map::new(),
            };
            traits.extend(object(&mut item, "traits")?);
            messages.push(Message::SetUser { user: who, properties: traits, once: false });
            if let (Some(user), Some(anonymous)) = (user, anonymous)
                && user != anonymous
            {
                messages.push(Message::Alias { anonymous, user, time_ms, id });
            }
            return Ok(messages);
        }
        Kind::Track => {
            let name = match item.get("event") {
                Some(Json::String(e)) if !e.trim().is_empty() => e.clone(),
                _ => return Err("track needs an event name".to_owned()),
            };
            let collection = event_collection_name(&name).map_err(|e| format!("event {name:?}: {e}"))?;
            (collection, object(&mut item, "properties")?.into_iter().collect::<Vec<_>>())
        }
        Kind::Page | Kind::Screen => {
            let mut fields: Vec<(String, Json)> = object(&mut item, "properties")?.into_iter().collect();
            for name in ["name", "category"] {
                if let Some(v) = item.remove(name).filter(|v| !v.is_null()) {
                    fields.retain(|(n, _)| n != name);
                    fields.push((name.to_owned(), v));
                }
            }
            (if kind == Kind::Page { "pageview" } else { "screen" }.to_owned(), fields)
        }
        Kind::Group => {
            let group = id_value(item.get("groupId")).ok_or("group needs groupId")?;
            let mut properties = Map::new();
            properties.insert("group_id".to_owned(), group.clone());
            messages.push(Message::SetUser { user: who.clone(), properties, once: false });
            let mut fields: Vec<(String, Json)> = object(&mut item, "traits")?.into_iter().collect();
            fields.retain(|(n, _)| n != "group_id" && n != "groupId");
            fields.push(("group_id".to_owned(), group));
            ("group".to_owned(), fields)
        }
        Kind::Alias => unreachable!("answered above"),
    };
    context.remove("traits");
    if let Some(ip) = context.remove("ip") {
        fields.push(("_ip".to_owned(), ip));
    }
    if let Some(agent) = context.remove("userAgent") {
        fields.push(("_user_agent".to_owned(), agent));
    }
    flatten("context", &context, &mut fields);
    messages.push(Message::Event(stamped_event(&collection, fields, Some(who), anonymous, time_ms, id)?));
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Event;
    use serde_json::json;

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
