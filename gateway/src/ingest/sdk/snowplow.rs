//! Snowplow's tracker protocol: `POST /com.snowplowanalytics.snowplow/tp2`
//! (a `payload_data` of events) and `GET /i` (one event in the query).
//!
//! A structured event (`se`) is an event of the collection its action
//! (`se_ac`) names, with `category`, `action`, `label`, `property` and
//! `value`; a self-describing event (`ue`) is an event of the collection its
//! Iglu schema names (`iglu:com.acme/link_click/jsonschema/1-0-0` is
//! `link_click`) with the schema's data as fields; page views (`pv`) are
//! `pageview`, page pings `page_ping`, transactions `transaction` and their
//! items `transaction_item`. `uid` is `_user`, `duid` `_device_id`, `eid`
//! `_id`, `ip` and `ua` `_ip` and `_user_agent`; entities (`co`, `cx`) are
//! flattened as `context_<schema name>_<field>`; the other parameters keep
//! readable names (`aid` is `app_id`, `url` `page_url`, ...).

use serde_json::{Map, Value as Json};

use super::{Message, corrected_ms, flatten, stamped_event};
use crate::schema::names::event_collection_name;

/// Parameters and the fields they become, for those renamed.
const NAMES: &[(&str, &str)] = &[
    ("aid", "app_id"),
    ("p", "platform"),
    ("tna", "tracker_namespace"),
    ("tv", "tracker_version"),
    ("url", "page_url"),
    ("page", "page_title"),
    ("refr", "page_referrer"),
    ("res", "screen_resolution"),
    ("vp", "viewport"),
    ("ds", "document_size"),
    ("cd", "color_depth"),
    ("lang", "language"),
    ("tz", "timezone"),
    ("cs", "charset"),
    ("sid", "session_id"),
    ("vid", "session_index"),
    ("nuid", "network_user_id"),
    ("se_ca", "category"),
    ("se_ac", "action"),
    ("se_la", "label"),
    ("se_pr", "property"),
    ("se_va", "value"),
    ("pp_mix", "min_x_offset"),
    ("pp_max", "max_x_offset"),
    ("pp_miy", "min_y_offset"),
    ("pp_may", "max_y_offset"),
    ("tr_id", "order_id"),
    ("tr_af", "affiliation"),
    ("tr_tt", "total"),
    ("tr_tx", "tax"),
    ("tr_sh", "shipping"),
    ("tr_ci", "city"),
    ("tr_st", "state"),
    ("tr_co", "country"),
    ("tr_cu", "currency"),
    ("ti_id", "order_id"),
    ("ti_sk", "sku"),
    ("ti_nm", "name"),
    ("ti_ca", "category"),
    ("ti_pr", "price"),
    ("ti_qu", "quantity"),
    ("ti_cu", "currency"),
];

/// Parameters whose text is a number.
const NUMBERS: &[&str] =
    &["se_va", "pp_mix", "pp_max", "pp_miy", "pp_may", "tr_tt", "tr_tx", "tr_sh", "ti_pr", "ti_qu", "cd", "vid"];

/// Parameters that say how or when, not what: not fields.
const CONSUMED: &[&str] = &["e", "eid", "uid", "duid", "ip", "ua", "dtm", "stm", "ttm", "ue_pr", "ue_px", "co", "cx"];

/// The events of a `payload_data` body.
pub fn parse_post(body: Json, received_ms: i64) -> Result<Vec<Message>, String> {
    let Some(Json::Array(data)) = body.get("data").cloned() else {
        return Err("data must be an array of events".to_owned());
    };
    let mut messages = Vec::with_capacity(data.len());
    for (i, item) in data.into_iter().enumerate() {
        let Json::Object(item) = item else { return Err(format!("data[{i}]: an event must be an object")) };
        messages.push(event(item, received_ms).map_err(|e| format!("data[{i}]: {e}"))?);
    }
    Ok(messages)
}

/// One event given as parameters (`GET /i`).
pub fn parse_params(params: Map<String, Json>, received_ms: i64) -> Result<Vec<Message>, String> {
    Ok(vec![event(params, received_ms)?])
}

/// The app id of a body's first event.
pub fn app_id(body: &Json) -> Option<String> {
    body.get("data")?.get(0)?.get("aid")?.as_str().map(str::to_owned)
}

fn text<'a>(item: &'a Map<String, Json>, name: &str) -> Option<&'a str> {
    item.get(name).and_then(Json::as_str).filter(|s| !s.is_empty())
}

fn millis(item: &Map<String, Json>, name: &str) -> Result<Option<i64>, String> {
    match item.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => n.as_i64().map(Some).ok_or_else(|| format!("{name} must be milliseconds")),
        Some(Json::String(s)) => s.trim().parse().map(Some).map_err(|_| format!("{name} must be milliseconds")),
        Some(_) => Err(format!("{name} must be milliseconds")),
    }
}

/// A self-describing JSON's schema name: `link_click` of
/// `iglu:com.acme/link_click/jsonschema/1-0-0`.
fn schema_name(schema: &str) -> Option<&str> {
    schema.strip_prefix("iglu:")?.split('/').nth(1).filter(|n| !n.is_empty())
}

/// A JSON parameter given as text (`ue_pr`, `co`) or as base64url of it
/// (`ue_px`, `cx`).
fn json_param(item: &Map<String, Json>, plain: &str, encoded: &str) -> Result<Option<Json>, String> {
    use base64::Engine;
    if let Some(text) = text(item, plain) {
        return serde_json::from_str(text).map(Some).map_err(|e| format!("{plain} is not JSON: {e}"));
    }
    let Some(text) = text(item, encoded) else { return Ok(None) };
    let trimmed = text.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .map_err(|e| format!("{encoded} is not base64: {e}"))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{encoded} is not JSON: {e}"))
}

fn event(item: Map<String, Json>, received_ms: i64) -> Result<Message, String> {
    let kind = text(&item, "e").ok_or("e (the event type) is missing")?;
    let mut fields: Vec<(String, Json)> = Vec::new();
    let collection = match kind {
        "se" => {
            let action = text(&item, "se_ac").ok_or("a structured event needs se_ac")?;
            event_collection_name(action).map_err(|e| format!("se_ac {action:?}: {e}"))?
        }
        "ue" => {
            let outer = json_param(&item, "ue_pr", "ue_px")?.ok_or("a self-describing event needs ue_pr or ue_px")?;
            let inner = outer.get("data").ok_or("the self-describing event has no data")?;
            let schema = inner.get("schema").and_then(Json::as_str).and_then(schema_name);
            let schema = schema.ok_or("the self-describing event's schema is not an Iglu URI")?;
            match inner.get("data") {
                Some(Json::Object(data)) => fields.extend(data.clone()),
                None | Some(Json::Null) => {}
                Some(_) => return Err("the self-describing event's data must be an object".to_owned()),
            }
            event_collection_name(schema).map_err(|e| format!("schema {schema:?}: {e}"))?
        }
        "pv" => "pageview".to_owned(),
        "pp" => "page_ping".to_owned(),
        "tr" => "transaction".to_owned(),
        "ti" => "transaction_item".to_owned(),
        other => return Err(format!("unknown event type e={other:?}")),
    };
    if let Some(mut contexts) = json_param(&item, "co", "cx")? {
        let Some(Json::Array(entities)) = contexts.get_mut("data").map(Json::take) else {
            return Err("contexts must have a data array".to_owned());
        };
        for mut entity in entities {
            let name = entity.get("schema").and_then(Json::as_str).and_then(schema_name).map(str::to_owned);
            if let (Some(name), Some(Json::Object(data))) = (name, entity.get_mut("data").map(Json::take)) {
                flatten(&format!("context_{name}"), data, &mut fields);
            }
        }
    }
    for (name, value) in &item {
        if CONSUMED.contains(&name.as_str()) {
            continue;
        }
        let field = NAMES.iter().find(|(p, _)| *p == name.as_str()).map_or(name.as_str(), |(_, f)| *f);
        let value = match value {
            Json::String(s) if NUMBERS.contains(&name.as_str()) => {
                s.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Json::Null, Json::Number)
            }
            other => other.clone(),
        };
        fields.retain(|(n, _)| n != field);
        fields.push((field.to_owned(), value));
    }
    if let Some(ip) = text(&item, "ip") {
        fields.push(("_ip".to_owned(), Json::String(ip.to_owned())));
    }
    if let Some(agent) = text(&item, "ua") {
        fields.push(("_user_agent".to_owned(), Json::String(agent.to_owned())));
    }
    let user = text(&item, "uid").map(|u| Json::String(u.to_owned()));
    let device = text(&item, "duid").map(|d| Json::String(d.to_owned()));
    let time_ms = match millis(&item, "ttm")? {
        Some(true_time) => true_time,
        None => corrected_ms(millis(&item, "dtm")?, millis(&item, "stm")?, received_ms),
    };
    let id = text(&item, "eid").map(str::to_owned);
    Ok(Message::Event(stamped_event(&collection, fields, user, device, time_ms, id)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Event;
    use serde_json::json;

    fn only_event(messages: Vec<Message>) -> Event {
        match messages.as_slice() {
            [Message::Event(e)] => e.clone(),
            other => panic!("one event, not {other:?}"),
        }
    }

    #[test]
    fn tracker_events_become_collections() {
        let se = json!({"data": [{"e": "se", "se_ca": "shop", "se_ac": "Add To Cart", "se_va": "2", "uid": "u1",
            "eid": "e1", "dtm": "1000", "stm": "3000", "aid": "app1", "p": "pc"}]});
        assert_eq!(app_id(&se).as_deref(), Some("app1"));
        let e = only_event(parse_post(se, 5_000).expect("parsed"));
        assert_eq!(e.collection, "add_to_cart");
        assert_eq!(e.get("category"), Some(&json!("shop")));
        assert_eq!(e.get("value"), Some(&json!(2.0)));
        assert_eq!(e.get("app_id"), Some(&json!("app1")));
        assert_eq!(e.get("_user"), Some(&json!("u1")));
        assert_eq!(e.get("_id"), Some(&json!("e1")));
        assert_eq!(e.get("_time"), Some(&json!(3_000)), "dtm shifted by the 2 s the clocks differ");
        // {"schema": "iglu:...unstruct_event...", "data": {"schema": "iglu:com.acme/link_click/jsonschema/1-0-0", "data": {"target": "t"}}}
        let ue_px = "eyJzY2hlbWEiOiAiaWdsdTpjb20uc25vd3Bsb3dhbmFseXRpY3Muc25vd3Bsb3cvdW5zdHJ1Y3RfZXZlbnQvanNvbnNjaGVtYS8xLTAtMCIsICJkYXRhIjogeyJzY2hlbWEiOiAiaWdsdTpjb20uYWNtZS9saW5rX2NsaWNrL2pzb25zY2hlbWEvMS0wLTAiLCAiZGF0YSI6IHsidGFyZ2V0IjogInQifX19";
        let co = r#"{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[{"schema":"iglu:com.acme/ctx/jsonschema/1-0-0","data":{"a":1}}]}"#;
        let ue = json!({"data": [{"e": "ue", "ue_px": ue_px, "co": co, "ttm": "42", "dtm": "1"}]});
        let e = only_event(parse_post(ue, 5_000).expect("parsed"));
        assert_eq!(e.collection, "link_click");
        assert_eq!(e.get("target"), Some(&json!("t")));
        assert_eq!(e.get("context_ctx_a"), Some(&json!(1)));
        assert_eq!(e.get("_time"), Some(&json!(42)), "the true timestamp is taken as is");
        let mut pv = Map::new();
        for (k, v) in [("e", "pv"), ("url", "http://x/y"), ("page", "Y"), ("refr", "http://r")] {
            pv.insert(k.to_owned(), json!(v));
        }
        let e = only_event(parse_params(pv, 7).expect("parsed"));
        assert_eq!(
            (e.collection.as_str(), e.get("page_title"), e.get("_time")),
            ("pageview", Some(&json!("Y")), Some(&json!(7)))
        );
    }

    #[test]
    fn bad_events_are_refused_with_their_place() {
        let err = |body: Json| parse_post(body, 0).expect_err("refused");
        assert_eq!(err(json!({"data": {}})), "data must be an array of events");
        assert_eq!(err(json!({"data": [{"e": "zz"}]})), "data[0]: unknown event type e=\"zz\"");
        assert_eq!(err(json!({"data": [{"e": "se"}]})), "data[0]: a structured event needs se_ac");
        assert!(err(json!({"data": [{"e": "ue", "ue_px": "!!"}]})).contains("base64"));
        assert!(err(json!({"data": [{"e": "pv", "dtm": "soon"}]})).contains("dtm"));
    }
}
