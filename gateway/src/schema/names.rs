//! Project, collection and field names: validation, normalization, and the
//! mapping of a (project, collection) pair to a log topic name.

/// Longest project or collection name accepted.
pub const MAX_NAME_LEN: usize = 100;

/// The collection that receives one row per value that could not be coerced.
pub const INVALID_SCHEMA_COLLECTION: &str = "$invalid_schema";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("project name is empty")]
    EmptyProject,
    #[error("project name must match ^[0-9A-Za-z_]+$ and have at most 100 characters")]
    InvalidProject,
    #[error("collection name is empty")]
    EmptyCollection,
    #[error("collection name is longer than 100 characters")]
    CollectionTooLong,
    #[error(
        "collection name {0:?} may only contain letters, digits, '_' and '-' (names starting with '$' are reserved)"
    )]
    InvalidCollection(String),
    #[error("property name {0:?} has no letter or digit to keep")]
    InvalidField(String),
    #[error("property name {0:?} is longer than 100 characters")]
    FieldTooLong(String),
    #[error("property name {0:?} is reserved: the gateway adds a column of that name to queries")]
    ReservedField(String),
    #[error("properties {0:?} and {1:?} both become field {2:?}; send one of them")]
    DuplicateField(String, String, String),
}

/// Field names the gateway gives columns of its own: `_collection` in
/// `_all`, `_day` in the warehouse's partition folders.
pub const RESERVED_FIELDS: [&str; 2] = ["_collection", "_day"];

/// Whether an event may not carry a field of this (normalized) name.
pub fn is_reserved_field(name: &str) -> bool {
    name.starts_with('_') && RESERVED_FIELDS.contains(&name)
}

/// Lowercases and checks a project name (`^[0-9A-Za-z_]+$`).
pub fn project_name(raw: &str) -> Result<String, NameError> {
    if raw.is_empty() {
        return Err(NameError::EmptyProject);
    }
    if raw.len() > MAX_NAME_LEN || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(NameError::InvalidProject);
    }
    Ok(raw.to_ascii_lowercase())
}

/// Lowercases and checks a collection name sent by a client.
///
/// Names are kept to `[a-z0-9_-]` so that every collection maps to a file
/// and Kafka topic name without escaping; `$` is reserved for the gateway's
/// own collections such as `$invalid_schema`.
pub fn collection_name(raw: &str) -> Result<String, NameError> {
    if raw.is_empty() {
        return Err(NameError::EmptyCollection);
    }
    if raw.chars().count() > MAX_NAME_LEN {
        return Err(NameError::CollectionTooLong);
    }
    let lower = raw.to_ascii_lowercase();
    if !lower.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
        return Err(NameError::InvalidCollection(raw.to_owned()));
    }
    Ok(lower)
}

/// The collection of an event named by another SDK ("Order Completed"):
/// lowercased, every character outside `[a-z0-9_-]` made `_`. The
/// collection endpoints keep refusing such names.
pub fn event_collection_name(raw: &str) -> Result<String, NameError> {
    let name: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' { c } else { '_' }
        })
        .collect();
    if !name.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return Err(NameError::InvalidCollection(raw.to_owned()));
    }
    collection_name(&name)
}

/// The topic holding a project's collection: `<project>.<collection>`, with
/// the reserved `$` written as `.` (user collections never contain `.`, so
/// the mapping is one to one and every character is legal in Kafka topic
/// names and file names).
pub fn topic_name(project: &str, collection: &str) -> String {
    let mut topic = String::with_capacity(project.len() + collection.len() + 1);
    topic.push_str(project);
    topic.push('.');
    topic.extend(collection.chars().map(|c| if c == '$' { '.' } else { c }));
    topic
}

/// The inverse of [`topic_name`].
pub fn split_topic(topic: &str) -> Option<(&str, String)> {
    let (project, rest) = topic.split_once('.')?;
    Some((project, rest.replacen('.', "$", 1)))
}

/// Turns a property name into a field name: camelCase becomes snake_case,
/// every other character that is not `[a-z0-9_]` becomes `_`, and a leading
/// digit gets a `_` in front, so that the name is a valid Avro and SQL name.
pub fn field_name(raw: &str) -> Result<String, NameError> {
    let mut out = String::with_capacity(raw.len() + 4);
    let mut prev_lower = false;
    for c in raw.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
            prev_lower = true;
        } else {
            out.push('_');
            prev_lower = false;
        }
    }
    if out.len() > MAX_NAME_LEN {
        return Err(NameError::FieldTooLong(raw.to_owned()));
    }
    if !out.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return Err(NameError::InvalidField(raw.to_owned()));
    }
    if out.as_bytes()[0].is_ascii_digit() {
        out.insert(0, '_');
    }
    Ok(out)
}

/// Whether a field name needs no work from [`field_name`] (the common case).
pub fn is_normal_field_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && !bytes[0].is_ascii_digit()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && bytes.iter().any(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_sdks_event_names_become_collections() {
        assert_eq!(event_collection_name("Order Completed").as_deref(), Ok("order_completed"));
        assert_eq!(event_collection_name("sign-up.v2").as_deref(), Ok("sign-up_v2"));
        assert_eq!(event_collection_name("$pageview").as_deref(), Ok("_pageview"));
        assert_eq!(event_collection_name("Café").as_deref(), Ok("caf_"));
        assert!(event_collection_name("").is_err());
        assert!(event_collection_name("$ !").is_err());
        assert!(event_collection_name(&"a".repeat(101)).is_err());
        assert!(collection_name("Order Completed").is_err(), "the collection API keeps refusing it");
    }

    #[test]
    fn projects_are_lowercased_and_checked() {
        assert_eq!(project_name("My_Shop1").as_deref(), Ok("my_shop1"));
        assert_eq!(project_name(""), Err(NameError::EmptyProject));
        assert_eq!(project_name("a-b"), Err(NameError::InvalidProject));
        assert_eq!(project_name(&"a".repeat(101)), Err(NameError::InvalidProject));
    }

    #[test]
    fn collections_are_lowercased_and_checked() {
        assert_eq!(collection_name("PageView").as_deref(), Ok("pageview"));
        assert_eq!(collection_name("sign-up_2").as_deref(), Ok("sign-up_2"));
        assert_eq!(collection_name(""), Err(NameError::EmptyCollection));
        assert_eq!(collection_name(&"a".repeat(101)), Err(NameError::CollectionTooLong));
        assert!(collection_name(&"a".repeat(100)).is_ok());
        for bad in ["../etc", "a/b", "a.b", "$invalid_schema", "a b", "é", "a\0"] {
            assert!(matches!(collection_name(bad), Err(NameError::InvalidCollection(_))), "{bad}");
        }
    }

    #[test]
    fn topics_round_trip() {
        assert_eq!(topic_name("shop", "pageview"), "shop.pageview");
        assert_eq!(topic_name("shop", "$invalid_schema"), "shop..invalid_schema");
        assert_eq!(split_topic("shop..invalid_schema"), Some(("shop", "$invalid_schema".to_owned())));
        assert_eq!(split_topic("shop.pageview"), Some(("shop", "pageview".to_owned())));
    }

    #[test]
    fn fields_become_snake_case() {
        assert_eq!(field_name("userId").as_deref(), Ok("user_id"));
        assert_eq!(field_name("myURL").as_deref(), Ok("my_url"));
        assert_eq!(field_name("Price").as_deref(), Ok("price"));
        assert_eq!(field_name("first name").as_deref(), Ok("first_name"));
        assert_eq!(field_name("_time").as_deref(), Ok("_time"));
        assert_eq!(field_name("1st").as_deref(), Ok("_1st"));
        assert_eq!(field_name(&"a".repeat(101)), Err(NameError::FieldTooLong("a".repeat(101))));
        assert!(field_name(&"a".repeat(100)).is_ok());
        assert!(field_name("").is_err());
        assert!(field_name("--").is_err());
        assert!(is_normal_field_name("user_id"));
        assert!(!is_normal_field_name("userId"));
        assert!(!is_normal_field_name("1st"));
    }
}
