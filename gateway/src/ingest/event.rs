//! An event as it enters the pipeline: a checked collection name and
//! properties with normalized names.

use serde_json::{Map, Value as Json};

use crate::names::{self, NameError};

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
fn normalize(map: Map<String, Json>) -> Result<Vec<(String, Json)>, NameError> {
    let mut out: Vec<(String, Json)> = Vec::with_capacity(map.len());
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
        assert_eq!(e.properties, vec![("user_id".to_owned(), json!(2)), ("plan".to_owned(), json!("pro"))]);
        assert_eq!(Event::new("a", Some(json!([1]))), Err(EventError::PropertiesNotObject));
        assert_eq!(Event::new("a", None).map(|e| e.properties.len()), Ok(0));
        assert!(matches!(Event::new("", None), Err(EventError::Name(NameError::EmptyCollection))));
        assert!(matches!(Event::new("a", Some(json!({"--": 1}))), Err(EventError::Name(NameError::InvalidField(_)))));
    }
}
