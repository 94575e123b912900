//! Rakam's field types and their Avro encoding.

use std::fmt;
use std::str::FromStr;

use serde_json::{Value as Json, json};

/// A scalar field type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarType {
    String,
    Integer,
    Long,
    Double,
    Decimal,
    Boolean,
    Date,
    Time,
    Timestamp,
    Binary,
}

/// A field type: a scalar, or an array or map of a scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Scalar(ScalarType),
    Array(ScalarType),
    Map(ScalarType),
}

/// Decimals are stored with this many digits after the point.
pub const DECIMAL_SCALE: u32 = 9;
/// Decimals have at most this many digits.
pub const DECIMAL_PRECISION: u32 = 38;

impl ScalarType {
    pub const ALL: [ScalarType; 10] = [
        ScalarType::String,
        ScalarType::Integer,
        ScalarType::Long,
        ScalarType::Double,
        ScalarType::Decimal,
        ScalarType::Boolean,
        ScalarType::Date,
        ScalarType::Time,
        ScalarType::Timestamp,
        ScalarType::Binary,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScalarType::String => "STRING",
            ScalarType::Integer => "INTEGER",
            ScalarType::Long => "LONG",
            ScalarType::Double => "DOUBLE",
            ScalarType::Decimal => "DECIMAL",
            ScalarType::Boolean => "BOOLEAN",
            ScalarType::Date => "DATE",
            ScalarType::Time => "TIME",
            ScalarType::Timestamp => "TIMESTAMP",
            ScalarType::Binary => "BINARY",
        }
    }

    /// The Avro schema of a value of this type.
    pub fn avro_schema(self) -> Json {
        match self {
            ScalarType::String => json!("string"),
            ScalarType::Integer => json!("int"),
            ScalarType::Long => json!("long"),
            ScalarType::Double => json!("double"),
            ScalarType::Decimal => json!({
                "type": "bytes", "logicalType": "decimal",
                "precision": DECIMAL_PRECISION, "scale": DECIMAL_SCALE
            }),
            ScalarType::Boolean => json!("boolean"),
            ScalarType::Date => json!({"type": "int", "logicalType": "date"}),
            ScalarType::Time => json!({"type": "long", "logicalType": "time-micros"}),
            ScalarType::Timestamp => json!({"type": "long", "logicalType": "timestamp-micros"}),
            ScalarType::Binary => json!("bytes"),
        }
    }
}

impl FieldType {
    pub const STRING: FieldType = FieldType::Scalar(ScalarType::String);
    pub const LONG: FieldType = FieldType::Scalar(ScalarType::Long);
    pub const DOUBLE: FieldType = FieldType::Scalar(ScalarType::Double);
    pub const BOOLEAN: FieldType = FieldType::Scalar(ScalarType::Boolean);
    pub const DATE: FieldType = FieldType::Scalar(ScalarType::Date);
    pub const TIMESTAMP: FieldType = FieldType::Scalar(ScalarType::Timestamp);

    /// The Avro schema of a field of this type: always a union with null,
    /// so that records written before the field existed read as null.
    pub fn avro_field_schema(self) -> Json {
        let nullable = |t: Json| json!(["null", t]);
        match self {
            FieldType::Scalar(s) => nullable(s.avro_schema()),
            FieldType::Array(s) => nullable(json!({"type": "array", "items": nullable(s.avro_schema())})),
            FieldType::Map(s) => nullable(json!({"type": "map", "values": nullable(s.avro_schema())})),
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Scalar(s) => f.write_str(s.name()),
            FieldType::Array(s) => write!(f, "ARRAY_{}", s.name()),
            FieldType::Map(s) => write!(f, "MAP_{}", s.name()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown type {0:?}")]
pub struct UnknownType(pub String);

impl FromStr for FieldType {
    type Err = UnknownType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.to_ascii_uppercase();
        let scalar = |name: &str| ScalarType::ALL.into_iter().find(|t| t.name() == name);
        let parsed = if let Some(rest) = upper.strip_prefix("ARRAY_") {
            scalar(rest).map(FieldType::Array)
        } else if let Some(rest) = upper.strip_prefix("MAP_") {
            scalar(rest).map(FieldType::Map)
        } else {
            scalar(&upper).map(FieldType::Scalar)
        };
        parsed.ok_or_else(|| UnknownType(s.to_owned()))
    }
}

impl serde::Serialize for FieldType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for FieldType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A named, typed field of a collection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
}

impl Field {
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        Field { name: name.into(), field_type }
    }
}

/// The Avro record schema of a collection with these fields, as JSON text.
pub fn avro_record_schema(project: &str, collection: &str, fields: &[Field]) -> String {
    let record_name: String = collection.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let record_name =
        if record_name.starts_with(|c: char| c.is_ascii_digit()) { format!("_{record_name}") } else { record_name };
    let fields: Vec<Json> = fields
        .iter()
        .map(|f| json!({"name": f.name, "type": f.field_type.avro_field_schema(), "default": null}))
        .collect();
    json!({
        "type": "record",
        "name": record_name,
        "namespace": format!("weir.{project}"),
        "fields": fields,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ScalarType::ALL {
            for t in [FieldType::Scalar(s), FieldType::Array(s), FieldType::Map(s)] {
                assert_eq!(t.to_string().parse::<FieldType>().ok(), Some(t));
            }
        }
        assert_eq!("array_string".parse::<FieldType>().ok(), Some(FieldType::Array(ScalarType::String)));
        assert!("ARRAY_ARRAY_STRING".parse::<FieldType>().is_err());
        assert!("TEXT".parse::<FieldType>().is_err());
    }

    #[test]
    fn record_schema_has_nullable_fields_with_null_defaults() {
        let schema = avro_record_schema(
            "shop",
            "page-view",
            &[Field::new("_time", FieldType::TIMESTAMP), Field::new("tags", FieldType::Array(ScalarType::String))],
        );
        let v: Json = serde_json::from_str(&schema).expect("json");
        assert_eq!(v["name"], "page_view");
        assert_eq!(v["namespace"], "weir.shop");
        assert_eq!(v["fields"][0]["type"][0], "null");
        assert_eq!(v["fields"][0]["type"][1]["logicalType"], "timestamp-micros");
        assert_eq!(v["fields"][1]["type"][1]["items"], json!(["null", "string"]));
        assert_eq!(v["fields"][1]["default"], Json::Null);
    }
}
