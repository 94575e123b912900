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

/// Two names that normalize alike (`userId`, `user_id`) keep the later value,
/// as a repeated JSON key would.
fn normalize(map: impl IntoIterator<Item = (String, Json)>) -> Result<Vec<(String, Json)>, NameError> {
    let map = map.into_iter();
    let mut out: Vec<(String, Json)> = Vec::with_capacity(map.size_hint().0);
    let mut renamed = false;
    for (name, value) in map {
        let name = if names::is_normal_field_name(&name) {
            name
        } else {
            renamed = true;
            names::field_name(&name)?
        };
        if renamed && let Some(slot) = out.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
            continue;
        }
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_normalized() {
        let e = Event::new("PageView", Some(json!({"userId": 1, "Plan": "pro", "user_id": 2}))).expect("event");
        assert_eq!(e.collection, "pageview");
        assert_eq!(e.properties, vec![("plan".to_owned(), json!("pro")), ("user_id".to_owned(), json!(2))]);
        let csv = Event::from_pairs("c", vec![("B".into(), json!(1)), ("a".into(), json!(2))]).expect("event");
        assert_eq!(csv.properties, vec![("b".to_owned(), json!(1)), ("a".to_owned(), json!(2))]);
        assert_eq!(Event::new("a", Some(json!([1]))), Err(EventError::PropertiesNotObject));
        assert_eq!(Event::new("a", None).map(|e| e.properties.len()), Ok(0));
        assert!(matches!(Event::new("", None), Err(EventError::Name(NameError::EmptyCollection))));
        assert!(matches!(Event::new("a", Some(json!({"--": 1}))), Err(EventError::Name(NameError::InvalidField(_)))));
    }
}
