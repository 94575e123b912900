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
/// The properties cross from the gateway as JSON text. Reading a field
/// indexes the text (keys and where each value lies) and parses only the
/// values asked for; fields added to an event are spliced into the text on
/// the way back. The whole object is parsed only when a plugin asks for it
/// ([`Event::properties`], [`Event::properties_mut`]) or changes or removes
/// a field the event came with. An event left alone is not sent back.
#[derive(Debug, Clone)]
pub struct Event {
    collection: String,
    raw: String,
    index: OnceCell<Vec<Entry>>,
    /// Fields set that the text does not have, while `parsed` is unset.
    added: Vec<(String, Value)>,
    /// The whole object, once something needed it; then the truth.
    parsed: OnceCell<Map<String, Value>>,
    changed: bool,
    verdict: Verdict,
}

/// A top-level field of the text: its name, where its value lies, and the
/// value once parsed.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    span: std::ops::Range<usize>,
    value: OnceCell<Value>,
}

fn index_of(raw: &str) -> Vec<Entry> {
    let fields: std::collections::BTreeMap<std::borrow::Cow<'_, str>, &serde_json::value::RawValue> =
        serde_json::from_str(raw).unwrap_or_default();
    let base = raw.as_ptr() as usize;
    fields
        .into_iter()
        .map(|(key, value)| {
            let start = value.get().as_ptr() as usize - base;
            Entry { key: key.into_owned(), span: start..start + value.get().len(), value: OnceCell::new() }
        })
        .collect()
}

impl Event {
    /// An event of `collection` whose properties are the JSON object `raw`.
    pub fn from_json(collection: impl Into<String>, raw: impl Into<String>) -> Event {
        Event {
            collection: collection.into(),
            raw: raw.into(),
            index: OnceCell::new(),
            added: Vec::new(),
            parsed: OnceCell::new(),
            changed: false,
            verdict: Verdict::Keep,
        }
    }

    /// An event of `collection` with these properties (for tests).
    pub fn new(collection: impl Into<String>, properties: Map<String, Value>) -> Event {
        let mut event = Event::from_json(collection, Value::Object(properties.clone()).to_string());
        event.parsed = OnceCell::from(properties);
        event
    }

    /// The collection the event goes to.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// The properties as they came, as JSON text.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    fn index(&self) -> &[Entry] {
        self.index.get_or_init(|| index_of(&self.raw))
    }

    /// The properties. The gateway always sends an object; text that is not
    /// one reads as no properties.
    pub fn properties(&self) -> &Map<String, Value> {
        self.parsed.get_or_init(|| {
            let mut map: Map<String, Value> = serde_json::from_str(&self.raw).unwrap_or_default();
            for (k, v) in &self.added {
                map.insert(k.clone(), v.clone());
            }
            map
        })
    }

    /// The properties, to change. The event is sent back changed.
    pub fn properties_mut(&mut self) -> &mut Map<String, Value> {
        self.properties();
        self.added.clear();
        self.changed = true;
        self.parsed.get_mut().expect("parsed just above")
    }

    /// A property's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        if let Some(map) = self.parsed.get() {
            return map.get(name);
        }
        if let Some((_, v)) = self.added.iter().rev().find(|(k, _)| k == name) {
            return Some(v);
        }
        let entry = self.index().iter().find(|e| e.key == name)?;
        Some(entry.value.get_or_init(|| serde_json::from_str(&self.raw[entry.span.clone()]).unwrap_or(Value::Null)))
    }

    /// A property's value when it is a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// Sets a property (added when absent).
    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        let value = value.into();
        let in_text = self.parsed.get().is_none() && self.index().iter().any(|e| e.key == name);
        if self.parsed.get().is_some() || in_text {
            self.properties_mut().insert(name.to_owned(), value);
            return;
        }
        self.changed = true;
        match self.added.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.added.push((name.to_owned(), value)),
        }
    }

    /// Removes a property, answering its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.get(name)?;
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
        if !self.changed {
            return (self.verdict, None);
        }
        if let Some(map) = self.parsed.into_inner() {
            return (self.verdict, Some(Value::Object(map).to_string()));
        }
        // Only fields the text lacks were added: splice them in before the
        // closing brace.
        let body = self.raw.trim_end();
        let open = body.strip_suffix('}').map(str::trim_end).unwrap_or_default();
        let empty_object = open.trim_start() == "{";
        let indexed = self.index.get().is_some_and(|i| !i.is_empty());
        if !(indexed || empty_object) {
            // Text that was not an object reads as no properties.
            let map: Map<String, Value> = self.added.into_iter().collect();
            return (self.verdict, Some(Value::Object(map).to_string()));
        }
        let mut out = String::with_capacity(body.len() + 32 * self.added.len());
        out.push_str(open);
        let mut first = empty_object;
        for (k, v) in &self.added {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&Value::String(k.clone()).to_string());
            out.push(':');
            out.push_str(&v.to_string());
        }
        out.push('}');
        (self.verdict, Some(out))
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
    fn added_fields_are_spliced_and_changed_ones_reparsed() {
        let mut e = Event::from_json("pageview", r#"{"a":1,"b":{"c":[1,2]}}"#);
        assert_eq!(e.get_str("zzz"), None);
        assert_eq!(e.get("b"), Some(&serde_json::json!({"c": [1, 2]})));
        e.set("x", "y");
        e.set("x", "z");
        assert_eq!(e.get_str("x"), Some("z"));
        let (_, json) = e.into_verdict();
        let json = json.expect("changed");
        assert_eq!(json, r#"{"a":1,"b":{"c":[1,2]},"x":"z"}"#);

        let mut empty = Event::from_json("pageview", " { } ");
        empty.set("x", 1);
        let back: Value = serde_json::from_str(&empty.into_verdict().1.expect("changed")).expect("json");
        assert_eq!(back, serde_json::json!({"x": 1}));

        let mut existing = Event::from_json("pageview", r#"{"a":1,"b":2}"#);
        existing.set("n", true);
        existing.set("a", 5);
        let back: Value = serde_json::from_str(&existing.into_verdict().1.expect("changed")).expect("json");
        assert_eq!(back, serde_json::json!({"a": 5, "b": 2, "n": true}));

        let mut read_all = Event::from_json("pageview", r#"{"a":1}"#);
        read_all.set("n", 2);
        assert_eq!(read_all.properties().len(), 2, "added fields show in the whole object");
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
        let mut garbled = Event::from_json("pageview", "not json}");
        garbled.set("x", 1);
        assert_eq!(garbled.into_verdict().1.as_deref(), Some(r#"{"x":1}"#));
        let mut d = Event::from_json("pageview", "not json");
        assert!(d.properties().is_empty());
        d.discard();
        assert_eq!(d.into_verdict().0, Verdict::Discard);
    }
}
