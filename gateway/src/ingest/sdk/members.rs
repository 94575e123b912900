//! A JSON object's members read straight from the text, without building a
//! map: what an SDK message's `properties`, `traits` and `context` are.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

/// An object's members, or what stood where an object was expected.
#[derive(Debug, Default, PartialEq)]
pub enum Members {
    /// Absent, or null.
    #[default]
    Absent,
    /// The members in the order sent.
    Object(Vec<(String, Json)>),
    /// Anything but an object or null.
    NotObject,
}

impl Members {
    /// The members sorted by name, a name sent twice keeping its last value
    /// (as a JSON object reads); empty when absent. `name` says what the
    /// object was when it is not one.
    pub fn into_fields(self, name: &str) -> Result<Vec<(String, Json)>, String> {
        match self {
            Members::Absent => Ok(Vec::new()),
            Members::Object(mut members) => {
                members.sort_by(|a, b| a.0.cmp(&b.0));
                // Keeps the first of equal names, so it takes the later value.
                members.dedup_by(|later, kept| {
                    let same = later.0 == kept.0;
                    if same {
                        std::mem::swap(&mut later.1, &mut kept.1);
                    }
                    same
                });
                Ok(members)
            }
            Members::NotObject => Err(format!("{name} must be an object")),
        }
    }
}

/// A visitor's answer `$none` to a boolean, a number or a string.
macro_rules! anything_else {
    ($none:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}
pub(crate) use anything_else;

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(member) = map.next_entry::<String, Json>()? {
            members.push(member);
        }
        Ok(Members::Object(members))
    }

    fn visit_none<E>(self) -> Result<Members, E> {
        Ok(Members::Absent)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Members, A::Error> {
        not_object_seq(seq).map(|()| Members::NotObject)
    }

    fn visit_unit<E>(self) -> Result<Members, E> {
        Ok(Members::Absent)
    }

    anything_else!(Members::NotObject);
}

/// Reads past an array's elements.
pub(crate) fn not_object_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Members {
        serde_json::from_str(text).expect("JSON")
    }

    #[test]
    fn members_are_read_in_order_and_sorted_as_an_object_reads() {
        let members = read(r#"{"b": 1, "a": {"x": [2]}, "b": 3}"#);
        assert_eq!(
            members,
            Members::Object(vec![("b".into(), json!(1)), ("a".into(), json!({"x": [2]})), ("b".into(), json!(3))])
        );
        let fields = members.into_fields("properties").expect("an object");
        assert_eq!(fields, vec![("a".into(), json!({"x": [2]})), ("b".into(), json!(3))]);
        assert_eq!(read("null").into_fields("traits"), Ok(Vec::new()));
        for other in ["[1, {}]", "1", "-1", "1.5", "true", "\"x\""] {
            assert_eq!(read(other).into_fields("traits"), Err("traits must be an object".to_owned()), "{other}");
        }
    }
}
