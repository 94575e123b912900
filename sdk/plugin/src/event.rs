//! One event of a batch, parsed only when a plugin looks inside it.

use std::cell::OnceCell;

use serde_json::{Map, Value};

/// What becomes of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored, with whatever changes were made to it.
    Keep,
    /// Not stored; the client is not told.
    Discard,
    /// Refused; the client is told the reason.
    Reject(String),
}

/// An event of a batch: its collection and properties.
///
/// The properties cross from the gateway as JSON text and are parsed on
/// first access, so a plugin that passes most events through untouched pays
/// nothing for them, and an event that was not changed is not sent back.
#[derive(Debug, Clone)]
pub struct Event {
    collection: String,
    raw: String,
    parsed: OnceCell<Map<String, Value>>,
    changed: bool,
    verdict: Verdict,
}

impl Event {
    /// An event of `collection` whose properties are the JSON object `raw`.
    pub fn from_json(collection: impl Into<String>, raw: impl Into<String>) -> Event {
        Event {
            collection: collection.into(),
            raw: raw.into(),
            parsed: OnceCell::new(),
            changed: false,
            verdict: Verdict::Keep,
        }
    }

    /// An event of `collection` with these properties (for tests).
    pub fn new(collection: impl Into<String>, properties: Map<String, Value>) -> Event {
        let raw = Value::Object(properties.clone()).to_string();
        let parsed = OnceCell::from(properties);
        Event { collection: collection.into(), raw, parsed, changed: false, verdict: Verdict::Keep }
    }

    /// The collection the event goes to.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// The properties as they came, as JSON text.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The properties. The gateway always sends an object; text that is not
    /// one reads as no properties.
    pub fn properties(&self) -> &Map<String, Value> {
        self.parsed.get_or_init(|| serde_json::from_str(&self.raw).unwrap_or_default())
    }

    /// The properties, to change. The event is sent back changed.
    pub fn properties_mut(&mut self) -> &mut Map<String, Value> {
        self.properties();
        self.changed = true;
        self.parsed.get_mut().expect("parsed just above")
    }

    /// A property's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.properties().get(name)
    }

    /// A property's value when it is a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// Sets a property (added when absent).
    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.properties_mut().insert(name.to_owned(), value.into());
    }

    /// Removes a property, answering its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        if !self.properties().contains_key(name) {
            return None;
        }
        self.properties_mut().remove(name)
    }

    /// Whether the properties were changed.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// Drops the event: it is not stored, and the client is not told.
    pub fn discard(&mut self) {
        self.verdict = Verdict::Discard;
    }

    /// Refuses the event; the client is told `reason`.
    pub fn reject(&mut self, reason: impl Into<String>) {
        self.verdict = Verdict::Reject(reason.into());
    }

    /// What becomes of the event so far.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// The verdict, with the changed properties as JSON when there are any.
    pub fn into_verdict(self) -> (Verdict, Option<String>) {
        let changed = match (self.changed, self.parsed.into_inner()) {
            (true, Some(map)) => Some(Value::Object(map).to_string()),
            _ => None,
        };
        (self.verdict, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_events_are_not_sent_back() {
        let e = Event::from_json("pageview", r#"{"a":1}"#);
        assert_eq!(e.get("a"), Some(&Value::from(1)));
        assert_eq!(e.into_verdict(), (Verdict::Keep, None));
    }

    #[test]
    fn changes_and_verdicts_are_kept() {
        let mut e = Event::from_json("pageview", r#"{"a":1,"b":"x"}"#);
        e.set("c", true);
        assert_eq!(e.remove("a"), Some(Value::from(1)));
        assert_eq!(e.remove("zzz"), None);
        let (verdict, json) = e.into_verdict();
        assert_eq!(verdict, Verdict::Keep);
        let back: Value = serde_json::from_str(&json.expect("changed")).expect("json");
        assert_eq!(back, serde_json::json!({"b": "x", "c": true}));

        let mut r = Event::from_json("pageview", "{}");
        r.reject("bot");
        assert_eq!(r.verdict(), &Verdict::Reject("bot".into()));
        let mut d = Event::from_json("pageview", "not json");
        assert!(d.properties().is_empty());
        d.discard();
        assert_eq!(d.into_verdict().0, Verdict::Discard);
    }
}
