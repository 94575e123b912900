//! A Presto/Trino answer as Arrow: each column's type from its Trino type
//! name, each page of JSON rows decoded into a record batch, so that the
//! answer takes the same way to Rakam's shape as DataFusion's.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::json::reader::ReaderBuilder;
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value as Json};

/// The Arrow type of a Trino type name (`timestamp(3) with time zone`,
/// `array(varchar)`, `decimal(10,2)`, …); what has no Arrow counterpart is
/// read as text.
pub fn arrow_type(name: &str) -> DataType {
    let name = name.trim().to_ascii_lowercase();
    let (base, arguments) = match name.find('(') {
        Some(open) if name.ends_with(')') || name.ends_with("with time zone") => {
            let close = name.rfind(')').unwrap_or(name.len());
            (name[..open].trim(), name[open + 1..close].trim())
        }
        _ => (name.as_str(), ""),
    };
    let zoned = name.ends_with("with time zone");
    match base {
        "bigint" => DataType::Int64,
        "integer" | "int" => DataType::Int32,
        "smallint" => DataType::Int16,
        "tinyint" => DataType::Int8,
        "double" => DataType::Float64,
        "real" | "float" => DataType::Float32,
        "boolean" | "bool" => DataType::Boolean,
        "date" => DataType::Date32,
        "timestamp" | "timestamp with time zone" => {
            DataType::Timestamp(TimeUnit::Microsecond, zoned.then(|| "UTC".into()))
        }
        "time" | "time with time zone" => DataType::Time64(TimeUnit::Microsecond),
        "decimal" => {
            let mut parts = arguments.split(',').map(|p| p.trim().parse::<u8>().ok());
            let precision = parts.next().flatten().unwrap_or(38).clamp(1, 38);
            let scale = parts.next().flatten().unwrap_or(0).min(precision);
            DataType::Decimal128(precision, i8::try_from(scale).unwrap_or(0))
        }
        "array" => DataType::List(Arc::new(Field::new("item", arrow_type(arguments), true))),
        "map" => match split_top_level(arguments).as_slice() {
            [_, value] => {
                let entries = Fields::from(vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", arrow_type(value), true),
                ]);
                DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false)
            }
            _ => DataType::Utf8,
        },
        _ => DataType::Utf8,
    }
}

/// `a, map(b, c), d` split at its top-level commas.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts
}

/// The schema of an answer's columns (names may repeat).
pub fn schema(columns: &[(String, String)]) -> SchemaRef {
    Arc::new(Schema::new(columns.iter().map(|(name, ty)| Field::new(name, arrow_type(ty), true)).collect::<Vec<_>>()))
}

/// A value as the JSON decoder reads it for its Arrow type: timestamps in
/// a form it parses, anything in a text column as text.
fn normalized(value: Json, data_type: &DataType) -> Json {
    match (value, data_type) {
        (Json::Null, _) => Json::Null,
        (Json::String(s), DataType::Timestamp(..)) => {
            let s = s.trim();
            let s = s.strip_suffix(" UTC").map_or_else(|| s.to_owned(), |t| format!("{t}+00:00"));
            Json::String(s.replacen(' ', "T", 1))
        }
        (Json::String(s), _) => Json::String(s),
        (other, DataType::Utf8) => Json::String(other.to_string()),
        (Json::Array(items), DataType::List(item)) => {
            Json::Array(items.into_iter().map(|v| normalized(v, item.data_type())).collect())
        }
        (other, _) => other,
    }
}

/// One page of rows as a record batch of `schema`.
pub fn batch(schema: &SchemaRef, rows: Vec<Vec<Json>>) -> Result<RecordBatch, String> {
    // The decoder reads objects; positional keys keep repeated names apart.
    let keys: Vec<String> = (0..schema.fields().len()).map(|i| format!("c{i}")).collect();
    let positional = Arc::new(Schema::new(
        schema.fields().iter().zip(&keys).map(|(f, k)| f.as_ref().clone().with_name(k)).collect::<Vec<_>>(),
    ));
    let objects: Vec<Map<String, Json>> = rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .zip(schema.fields())
                .zip(&keys)
                .map(|((v, f), k)| (k.clone(), normalized(v, f.data_type())))
                .collect()
        })
        .collect();
    let mut decoder = ReaderBuilder::new(positional)
        .with_batch_size(objects.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder.serialize(&objects).map_err(|e| e.to_string())?;
    let decoded = decoder.flush().map_err(|e| e.to_string())?;
    let columns = match decoded {
        Some(b) => b.columns().to_vec(),
        None => return Ok(RecordBatch::new_empty(schema.clone())),
    };
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::query::result;

    #[test]
    fn trino_types_become_arrow_types_and_rakam_s() {
        let rakam = |t: &str| result::rakam_type(&arrow_type(t));
        assert_eq!(rakam("varchar"), "STRING");
        assert_eq!(rakam("varchar(10)"), "STRING");
        assert_eq!(rakam("bigint"), "LONG");
        assert_eq!(rakam("integer"), "INTEGER");
        assert_eq!(rakam("double"), "DOUBLE");
        assert_eq!(rakam("timestamp(6) with time zone"), "TIMESTAMP");
        assert_eq!(rakam("timestamp(3)"), "TIMESTAMP");
        assert_eq!(rakam("decimal(10,2)"), "DECIMAL");
        assert_eq!(rakam("array(varchar)"), "ARRAY_STRING");
        assert_eq!(rakam("map(varchar, double)"), "MAP_DOUBLE");
        assert_eq!(rakam("row(a bigint)"), "STRING");
        assert_eq!(arrow_type("decimal(10,2)"), DataType::Decimal128(10, 2));
    }

    #[test]
    fn pages_of_json_rows_become_batches() {
        let columns = [
            ("n".to_owned(), "bigint".to_owned()),
            ("n".to_owned(), "double".to_owned()),
            ("t".to_owned(), "timestamp(6) with time zone".to_owned()),
            ("d".to_owned(), "date".to_owned()),
            ("tags".to_owned(), "array(varchar)".to_owned()),
            ("r".to_owned(), "row(a bigint)".to_owned()),
        ];
        let schema = schema(&columns);
        let rows = vec![
            vec![
                json!(1),
                json!(1.5),
                json!("2023-11-14 22:13:20.000000 UTC"),
                json!("2024-02-03"),
                json!(["x"]),
                json!([1]),
            ],
            vec![json!(null), json!(2), json!("2023-11-14 22:13:21+00:00"), json!(null), json!(null), json!(null)],
        ];
        let batch = batch(&schema, rows).expect("a batch");
        let got = result::rows(&[batch], 1 << 20).expect("rows");
        assert_eq!(
            got,
            vec![
                vec![
                    json!(1),
                    json!(1.5),
                    json!("2023-11-14T22:13:20Z"),
                    json!("2024-02-03"),
                    json!(["x"]),
                    json!("[1]")
                ],
                vec![json!(null), json!(2.0), json!("2023-11-14T22:13:21Z"), json!(null), json!(null), json!(null)],
            ]
        );
    }
}
