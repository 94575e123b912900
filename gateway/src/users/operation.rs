//! What a client asks to do to a user, before it is checked against the
//! project's columns.

use serde_json::{Map, Value as Json};

/// One request to change one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The user's id as sent.
    pub id: Json,
    pub kind: OperationKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OperationKind {
    /// Sets properties, creating the user if absent (`/user/create`,
    /// `/user/set_properties`).
    Set(Map<String, Json>),
    /// Sets the properties that are null (`/user/set_properties_once`).
    SetOnce(Map<String, Json>),
    /// Sets properties to null.
    Unset(Vec<String>),
    /// Adds a number to a property (null counts as 0).
    Increment { property: String, value: Json },
}

/// Rakam's operation object: `{set_properties?, set_properties_once?,
/// increment_properties?, unset_properties?, time?}`, applied in that
/// order. Both `set_properties` and `set_properties_once` apply when both
/// are given (Rakam's default batch applied `set_properties` only when
/// `set_properties_once` was there too).
pub fn from_object(id: Json, mut object: Map<String, Json>) -> Result<Vec<Operation>, String> {
    let mut ops = Vec::new();
    let known = ["set_properties", "set_properties_once", "increment_properties", "unset_properties", "time", "id"];
    if let Some(other) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unknown operation `{other}`"));
    }
    let op = |kind| Operation { id: id.clone(), kind };
    match object.remove("set_properties") {
        None | Some(Json::Null) => {}
        Some(Json::Object(map)) => ops.push(op(OperationKind::Set(map))),
        Some(_) => return Err("set_properties must be an object".to_owned()),
    }
    match object.remove("set_properties_once") {
        None | Some(Json::Null) => {}
        Some(Json::Object(map)) => ops.push(op(OperationKind::SetOnce(map))),
        Some(_) => return Err("set_properties_once must be an object".to_owned()),
    }
    match object.remove("increment_properties") {
        None | Some(Json::Null) => {}
        Some(Json::Object(map)) => {
            for (property, value) in map {
                ops.push(op(OperationKind::Increment { property, value }));
            }
        }
        Some(_) => return Err("increment_properties must be an object of numbers".to_owned()),
    }
    match object.remove("unset_properties") {
        None | Some(Json::Null) => {}
        Some(Json::Array(names)) => {
            let names = names
                .into_iter()
                .map(|n| match n {
                    Json::String(s) => Ok(s),
                    _ => Err("unset_properties must be an array of property names".to_owned()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            ops.push(op(OperationKind::Unset(names)));
        }
        Some(_) => return Err("unset_properties must be an array of property names".to_owned()),
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(v: Json) -> Map<String, Json> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn an_operation_object_applies_every_part_in_order() {
        let ops = from_object(
            json!(7),
            object(json!({
                "unset_properties": ["a"], "set_properties_once": {"b": 1},
                "set_properties": {"c": 2}, "increment_properties": {"n": 1.5}, "time": 1
            })),
        )
        .expect("ops");
        let kinds: Vec<&OperationKind> = ops.iter().map(|o| &o.kind).collect();
        assert_eq!(
            kinds,
            [
                &OperationKind::Set(object(json!({"c": 2}))),
                &OperationKind::SetOnce(object(json!({"b": 1}))),
                &OperationKind::Increment { property: "n".into(), value: json!(1.5) },
                &OperationKind::Unset(vec!["a".into()]),
            ]
        );
        assert!(ops.iter().all(|o| o.id == json!(7)));
    }

    #[test]
    fn malformed_parts_are_refused() {
        assert!(from_object(json!(1), object(json!({"set_properties": [1]}))).is_err());
        assert!(from_object(json!(1), object(json!({"unset_properties": [1]}))).is_err());
        assert!(from_object(json!(1), object(json!({"delete": true}))).is_err());
    }
}
