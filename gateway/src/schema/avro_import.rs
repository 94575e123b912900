//! Fields from an Avro record schema, for `/project/schema/add/custom`.

use serde_json::Value as Json;

use crate::schema::types::{Field, FieldType, ScalarType};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("the schema is not JSON: {0}")]
    NotJson(String),
    #[error("the schema must be an Avro record with fields")]
    NotARecord,
    #[error("field {field:?}: Avro type {avro} has no Rakam type")]
    Unsupported { field: String, avro: String },
}

/// The fields of an Avro record schema, each with the Rakam type its Avro
/// type maps to (a `["null", T]` union maps as T).
pub fn fields_of(schema: &str) -> Result<Vec<Field>, ImportError> {
    let schema: Json = serde_json::from_str(schema).map_err(|e| ImportError::NotJson(e.to_string()))?;
    let fields = match (&schema["type"], schema["fields"].as_array()) {
        (Json::String(t), Some(fields)) if t == "record" => fields,
        _ => return Err(ImportError::NotARecord),
    };
    fields
        .iter()
        .map(|f| {
            let name = f["name"].as_str().ok_or(ImportError::NotARecord)?;
            let unsupported = || ImportError::Unsupported { field: name.to_owned(), avro: f["type"].to_string() };
            let field_type = field_type(&f["type"]).ok_or_else(unsupported)?;
            Ok(Field::new(name, field_type))
        })
        .collect()
}

fn field_type(avro: &Json) -> Option<FieldType> {
    match non_null(avro)? {
        Json::Object(o) if o.get("type").and_then(Json::as_str) == Some("array") => {
            Some(FieldType::Array(scalar(non_null(o.get("items")?)?)?))
        }
        Json::Object(o) if o.get("type").and_then(Json::as_str) == Some("map") => {
            Some(FieldType::Map(scalar(non_null(o.get("values")?)?)?))
        }
        other => scalar(other).map(FieldType::Scalar),
    }
}

/// The one non-null branch of a union, or the type itself.
fn non_null(avro: &Json) -> Option<&Json> {
    match avro {
        Json::Array(branches) => {
            let mut rest = branches.iter().filter(|b| b.as_str() != Some("null"));
            let one = rest.next()?;
            rest.next().is_none().then_some(one)
        }
        other => Some(other),
    }
}

fn scalar(avro: &Json) -> Option<ScalarType> {
    let (base, logical) = match avro {
        Json::String(t) => (t.as_str(), None),
        Json::Object(o) => (o.get("type")?.as_str()?, o.get("logicalType").and_then(Json::as_str)),
        _ => return None,
    };
    Some(match (base, logical) {
        ("int", Some("date")) => ScalarType::Date,
        ("int", Some("time-millis")) | ("long", Some("time-micros")) => ScalarType::Time,
        ("long", Some("timestamp-millis" | "timestamp-micros")) => ScalarType::Timestamp,
        ("bytes" | "fixed", Some("decimal")) => ScalarType::Decimal,
        ("string", _) => ScalarType::String,
        ("int", _) => ScalarType::Integer,
        ("long", _) => ScalarType::Long,
        ("float" | "double", _) => ScalarType::Double,
        ("boolean", _) => ScalarType::Boolean,
        ("bytes" | "fixed", _) => ScalarType::Binary,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avro_types_map_to_rakam_types() {
        let schema = r#"{"type": "record", "name": "x", "fields": [
            {"name": "a", "type": "string"},
            {"name": "b", "type": ["null", "long"]},
            {"name": "c", "type": {"type": "int", "logicalType": "date"}},
            {"name": "d", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
            {"name": "e", "type": {"type": "array", "items": "double"}},
            {"name": "f", "type": {"type": "map", "values": ["null", "boolean"]}},
            {"name": "g", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}}
        ]}"#;
        let types: Vec<String> = fields_of(schema).expect("fields").iter().map(|f| f.field_type.to_string()).collect();
        assert_eq!(types, ["STRING", "LONG", "DATE", "TIMESTAMP", "ARRAY_DOUBLE", "MAP_BOOLEAN", "DECIMAL"]);
        assert_eq!(fields_of("[1]"), Err(ImportError::NotARecord));
        assert!(matches!(fields_of("{"), Err(ImportError::NotJson(_))));
        let nested = r#"{"type": "record", "name": "x", "fields": [{"name": "n", "type": {"type": "record", "name": "y", "fields": []}}]}"#;
        assert!(matches!(fields_of(nested), Err(ImportError::Unsupported { .. })));
        let two = r#"{"type": "record", "name": "x", "fields": [{"name": "u", "type": ["string", "long"]}]}"#;
        assert!(matches!(fields_of(two), Err(ImportError::Unsupported { .. })));
    }
}
