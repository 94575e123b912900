//! An event as it enters the pipeline: a checked collection name and
//! properties with normalized names.

use serde_json::Value as Json;

use crate::schema::names::{self, NameError};

/// A client's event after its names were checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub collection: String,
    /// Field name and value, in the order the client sent them.
    pub properties: Vec<(String, Json)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("properties must be a JSON object")]
    PropertiesNotObject,
}

impl Event {
    /// Checks the collection name and normalizes the property names
    /// (camelCase to snake_case); `null` or missing properties are empty.
    pub fn new(collection: &str, properties: Option<Json>) -> Result<Event, EventError> {
        let collection = names::collection_name(collection)?;
        let properties = match properties {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Object(map)) => normalize(map)?,
            Some(_) => return Err(EventError::PropertiesNotObject),
        };
        Ok(Event { collection, properties })
    }

    /// An event from name and value pairs in a meaningful order (CSV
    /// columns, query parameters), normalized like [`Event::new`].
    pub fn from_pairs(collection: &str, pairs: Vec<(String, Json)>) -> Result<Event, EventError> {
        let collection = names::collection_name(collection)?;
        Ok(Event { collection, properties: normalize(pairs)? })
    }

    pub fn get(&self, name: &str) -> Option<&Json> {
        self.properties.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn set(&mut self, name: &str, value: Json) {
        match self.properties.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.properties.push((name.to_owned(), value)),
        }
    }
}

/// Normalizes property names. A reserved name, and two properties that
/// become one field (`userId` and `user_id`, or a name given twice), are
/// refused: which value was meant cannot be told.
fn normalize(map: impl IntoIterator<Item = (String, Json)>) -> Result<Vec<(String, Json)>, NameError> {
    let map = map.into_iter();
    let mut out: Vec<(String, Json)> = Vec::with_capacity(map.size_hint().0);
    // Raw names, kept only once one was renamed.
    let mut raw_names: Option<Vec<String>> = None;
    for (name, value) in map {
        let normal = if names::is_normal_field_name(&name) {
            name
        } else {
            let normal = names::field_name(&name)?;
            raw_names.get_or_insert_with(|| out.iter().map(|(n, _)| n.clone()).collect()).push(name);
            out.push((normal, value));
            continue;
        };
        if let Some(raw) = raw_names.as_mut() {
            raw.push(normal.clone());
        }
        out.push((normal, value));
    }
    for (name, _) in &out {
        if names::is_reserved_field(name) {
            return Err(NameError::ReservedField(name.clone()));
        }
    }
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_unstable_by(|&a, &b| out[a].0.cmp(&out[b].0));
    if let Some(pair) = order.windows(2).find(|w| out[w[0]].0 == out[w[1]].0) {
        let (first, second) = (pair[0].min(pair[1]), pair[0].max(pair[1]));
        let raw = |i: usize| raw_names.as_ref().map_or_else(|| out[i].0.clone(), |r| r[i].clone());
        return Err(NameError::DuplicateField(raw(first), raw(second), out[first].0.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_normalized() {
        let e = Event::new("PageView", Some(json!({"userId": 1, "Plan": "pro"}))).expect("event");
        assert_eq!(e.collection, "pageview");
        assert_eq!(e.properties, vec![("plan".to_owned(), json!("pro")), ("user_id".to_owned(), json!(1))]);
        assert_eq!(
            Event::new("a", Some(json!({"b_x": 1, "bX": 2}))),
            Err(EventError::Name(NameError::DuplicateField("bX".into(), "b_x".into(), "b_x".into())))
        );
        let twice = Event::from_pairs("c", vec![("x".into(), json!(1)), ("x".into(), json!("abc"))]);
        assert_eq!(twice, Err(EventError::Name(NameError::DuplicateField("x".into(), "x".into(), "x".into()))));
        for reserved in ["_collection", "_day"] {
            let e = Event::new("a", Some(json!({reserved: 1})));
            assert_eq!(e, Err(EventError::Name(NameError::ReservedField(reserved.into()))));
        }
        let csv = Event::from_pairs("c", vec![("B".into(), json!(1)), ("a".into(), json!(2))]).expect("event");
        assert_eq!(csv.properties, vec![("b".to_owned(), json!(1)), ("a".to_owned(), json!(2))]);
        assert_eq!(Event::new("a", Some(json!([1]))), Err(EventError::PropertiesNotObject));
        assert_eq!(Event::new("a", None).map(|e| e.properties.len()), Ok(0));
        assert!(matches!(Event::new("", None), Err(EventError::Name(NameError::EmptyCollection))));
        assert!(matches!(Event::new("a", Some(json!({"--": 1}))), Err(EventError::Name(NameError::InvalidField(_)))));
    }
}
