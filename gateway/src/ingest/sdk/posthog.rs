//! PostHog's capture API: `/batch/` as its server SDKs send it, and
//! `/capture/`, `/e/` and `/i/v0/e/` as its browser SDK does.
//!
//! An event is an event of the collection its name gives, without PostHog's
//! leading `$` (`$pageview` is `pageview`); `distinct_id` is `_user`,
//! `uuid` is `_id`, `$ip`, `$device_id` and `$raw_user_agent` are `_ip`,
//! `_device_id` and `_user_agent`, and the other `$` properties keep their
//! names with `_` for `$` (`$lib` is `_lib`). `$set` and `$set_once` set
//! user properties whatever the event; `$identify` and `$set` events only
//! do that (and `$identify` maps its `$anon_distinct_id` to the user),
//! `$create_alias` maps its `alias` to the `distinct_id`'s user, and
//! `$groupidentify` is a `group` event with the group's properties.

use serde_json::{Map, Value as Json};

use super::{Message, corrected_ms, id_value, instant_ms, stamped_event};
use crate::schema::names::event_collection_name;

/// A request's events, whichever shape the body has: `{batch: [...]}`, an
/// array of events, or one event.
fn events(body: &mut Json) -> Result<Vec<Json>, String> {
    match body {
        Json::Array(items) => Ok(std::mem::take(items)),
        Json::Object(map) => match map.remove("batch") {
            Some(Json::Array(items)) => Ok(items),
            Some(_) => Err("batch must be an array of events".to_owned()),
            None => Ok(vec![Json::Object(std::mem::take(map))]),
        },
        _ => Err("the body must be a JSON object or array".to_owned()),
    }
}

fn text(value: Option<&Json>) -> Option<String> {
    value.and_then(Json::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The project key a body carries: `api_key` or `token`, the body's or its
/// first event's (browsers put it in the properties).
pub fn api_key(body: &Json) -> Option<String> {
    let from = |v: &Json| {
        text(v.get("api_key")).or_else(|| text(v.get("token"))).or_else(|| text(v.get("properties")?.get("token")))
    };
    let first = match body {
        Json::Array(items) => items.first(),
        other => other.get("batch").and_then(|b| b.get(0)),
    };
    (body.is_object().then(|| from(body)).flatten()).or_else(|| first.and_then(from))
}

/// Every message of a body.
pub fn parse(mut body: Json, received_ms: i64) -> Result<Vec<Message>, String> {
    let sent_ms = match body.get("sent_at").or(body.get("sentAt")) {
        None | Some(Json::Null) => None,
        Some(v) => Some(instant_ms(v).ok_or_else(|| format!("sent_at is not a date-time: {v}"))?),
    };
    let mut messages = Vec::new();
    for (i, item) in events(&mut body)?.into_iter().enumerate() {
        let Json::Object(item) = item else { return Err(format!("batch[{i}]: an event must be an object")) };
        messages.extend(message(item, sent_ms, received_ms).map_err(|e| format!("batch[{i}]: {e}"))?);
    }
    Ok(messages)
}

fn take_object(map: &mut Map<String, Json>, name: &str) -> Result<Option<Map<String, Json>>, String> {
    match map.remove(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Object(o)) => Ok(Some(o)),
        Some(_) => Err(format!("{name} must be an object")),
    }
}

fn message(mut item: Map<String, Json>, sent_ms: Option<i64>, received_ms: i64) -> Result<Vec<Message>, String> {
    let name = match item.get("event") {
        Some(Json::String(e)) if !e.trim().is_empty() => e.clone(),
        _ => return Err("event is missing".to_owned()),
    };
    let mut properties = take_object(&mut item, "properties")?.unwrap_or_default();
    let user = id_value(item.get("distinct_id"))
        .or_else(|| id_value(properties.get("distinct_id")))
        .or_else(|| id_value(properties.get("$distinct_id")))
        .ok_or("distinct_id is missing")?;
    let time = match item.get("timestamp") {
        None | Some(Json::Null) => item.get("offset").and_then(Json::as_i64).map(|offset| received_ms - offset),
        Some(v) => Some(instant_ms(v).ok_or_else(|| format!("timestamp is not a date-time: {v}"))?),
    };
    // An offset is already on the server's clock.
    let time_ms = if item.contains_key("timestamp") {
        corrected_ms(time, sent_ms, received_ms)
    } else {
        time.unwrap_or(received_ms)
    };
    let id = match item.get("uuid") {
        None | Some(Json::Null) => None,
        Some(v) => Some(id_value(Some(v)).and_then(|v| v.as_str().map(str::to_owned)).ok_or("uuid must be a string")?),
    };
    let mut messages = Vec::new();
    for (field, once) in [("$set", false), ("$set_once", true)] {
        let set = match take_object(&mut item, field)? {
            Some(set) => Some(set),
            None => take_object(&mut properties, field)?,
        };
        if let Some(set) = set.filter(|s| !s.is_empty()) {
            messages.push(Message::SetUser { user: user.clone(), properties: set, once });
        }
    }
    match name.as_str() {
        "$identify" => {
            if let Some(anonymous) = id_value(properties.get("$anon_distinct_id")).filter(|a| *a != user) {
                messages.push(Message::Alias { anonymous, user, time_ms, id });
            } else if messages.is_empty() {
                messages.push(Message::SetUser { user, properties: Map::new(), once: true });
            }
            return Ok(messages);
        }
        "$set" => return Ok(messages),
        "$create_alias" => {
            let alias = id_value(properties.get("alias")).ok_or("$create_alias needs properties.alias")?;
            messages.push(Message::Alias { anonymous: alias, user, time_ms, id });
            return Ok(messages);
        }
        _ => {}
    }
    let collection = if name == "$groupidentify" {
        let group_type = properties.remove("$group_type").unwrap_or(Json::Null);
        let group = id_value(properties.remove("$group_key").as_ref()).ok_or("$groupidentify needs $group_key")?;
        let traits = take_object(&mut properties, "$group_set")?.unwrap_or_default();
        properties.extend(traits);
        properties.insert("group_type".to_owned(), group_type);
        properties.insert("group_id".to_owned(), group);
        "group".to_owned()
    } else {
        let bare = name.strip_prefix('$').unwrap_or(&name);
        event_collection_name(bare).map_err(|e| format!("event {name:?}: {e}"))?
    };
    for gone in ["token", "distinct_id", "$distinct_id"] {
        properties.remove(gone);
    }
    let mut fields: Vec<(String, Json)> = Vec::with_capacity(properties.len() + 4);
    for (name, value) in properties {
        let name = match name.as_str() {
            "$ip" => "_ip".to_owned(),
            "$device_id" => "_device_id".to_owned(),
            "$raw_user_agent" => "_user_agent".to_owned(),
            _ => name,
        };
        fields.push((name, value));
    }
    messages.push(Message::Event(stamped_event(&collection, fields, Some(user), None, time_ms, id)?));
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Event;
    use serde_json::json;

    fn only_event(messages: &[Message]) -> &Event {
        match messages {
            [Message::Event(e)] => e,
            other => panic!("one event, not {other:?}"),
        }
    }

    #[test]
    fn server_batches_become_events_and_user_changes() {
        let body = json!({"api_key": "k", "sent_at": "2024-01-01T00:00:10Z", "batch": [
            {"event": "Order Completed", "distinct_id": "u1", "uuid": "e1", "timestamp": "2024-01-01T00:00:00Z",
             "properties": {"total": 3, "$lib": "posthog-python", "$ip": "203.0.113.1"}},
            {"event": "$set", "distinct_id": "u1", "$set": {"email": "a@b"}},
            {"event": "$identify", "distinct_id": "u1", "properties": {"$set": {"plan": "pro"}, "$anon_distinct_id": "a1"}},
            {"event": "$create_alias", "distinct_id": "u1", "properties": {"alias": "a2"}},
            {"event": "$groupidentify", "distinct_id": "x", "properties": {"$group_type": "company", "$group_key": "g1", "$group_set": {"name": "Acme"}}},
            {"event": "$pageview", "distinct_id": "u1", "offset": 500}
        ]});
        assert_eq!(api_key(&body).as_deref(), Some("k"));
        let messages = parse(body, 1_704_067_215_000).expect("parsed");
        let e = only_event(&messages[..1]);
        assert_eq!(e.collection, "order_completed");
        assert_eq!(e.get("_lib"), Some(&json!("posthog-python")));
        assert_eq!(e.get("_ip"), Some(&json!("203.0.113.1")));
        assert_eq!(e.get("_id"), Some(&json!("e1")));
        assert_eq!(e.get("_time"), Some(&json!(1_704_067_205_000_i64)));
        assert!(
            matches!(&messages[1], Message::SetUser { properties, once: false, .. } if properties["email"] == "a@b")
        );
        assert!(matches!(&messages[2], Message::SetUser { properties, .. } if properties["plan"] == "pro"));
        assert!(matches!(&messages[3], Message::Alias { anonymous, user, .. } if anonymous == "a1" && user == "u1"));
        assert!(matches!(&messages[4], Message::Alias { anonymous, user, .. } if anonymous == "a2" && user == "u1"));
        let group = only_event(&messages[5..6]);
        assert_eq!(
            (group.collection.as_str(), group.get("group_id"), group.get("name")),
            ("group", Some(&json!("g1")), Some(&json!("Acme")))
        );
        let page = only_event(&messages[6..]);
        assert_eq!((page.collection.as_str(), page.get("_time")), ("pageview", Some(&json!(1_704_067_214_500_i64))));
    }

    #[test]
    fn browser_arrays_carry_the_key_in_their_properties() {
        let body = json!([{"event": "$autocapture", "properties": {"token": "k", "distinct_id": "d"}}]);
        assert_eq!(api_key(&body).as_deref(), Some("k"));
        let messages = parse(body, 0).expect("parsed");
        let e = only_event(&messages);
        assert_eq!((e.collection.as_str(), e.get("_user"), e.get("token")), ("autocapture", Some(&json!("d")), None));
    }

    #[test]
    fn bad_events_are_refused_with_their_place() {
        assert_eq!(
            parse(json!({"batch": [{"distinct_id": "u"}]}), 0).expect_err("refused"),
            "batch[0]: event is missing"
        );
        assert_eq!(
            parse(json!({"batch": [{"event": "x"}]}), 0).expect_err("refused"),
            "batch[0]: distinct_id is missing"
        );
        assert!(parse(json!("x"), 0).is_err());
        assert!(parse(json!({"event": "x", "distinct_id": "u", "timestamp": "later"}), 0).is_err());
    }
}
