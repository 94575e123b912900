//! Arrow types as Trino names them (`type` and `typeSignature`), and values
//! in Trino's JSON forms: dates, times, timestamps and decimals as text,
//! varbinary as base64, rows as arrays, non-finite doubles as strings.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::Engine as _;
use serde_json::{Value as Json, json};

use crate::query::result;

/// The longest varchar, which Trino names as plain `varchar`.
const UNBOUNDED_VARCHAR: i64 = 2_147_483_647;

/// A Trino type: its name as clients parse it and its signature.
pub struct TrinoType {
    pub name: String,
    pub signature: Json,
}

fn long(value: i64) -> Json {
    json!({"kind": "LONG", "value": value})
}

fn of(t: &TrinoType) -> Json {
    json!({"kind": "TYPE", "value": t.signature})
}

fn plain(raw: &str) -> TrinoType {
    TrinoType { name: raw.to_owned(), signature: json!({"rawType": raw, "arguments": []}) }
}

fn precision(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// The Trino type of an Arrow type; types Trino has no name for are
/// answered as varchar (their values as text).
pub fn trino_type(t: &DataType) -> TrinoType {
    match t {
        DataType::Boolean => plain("boolean"),
        DataType::Int8 => plain("tinyint"),
        DataType::Int16 | DataType::UInt8 => plain("smallint"),
        DataType::Int32 | DataType::UInt16 => plain("integer"),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => plain("bigint"),
        DataType::Float16 | DataType::Float32 => plain("real"),
        DataType::Float64 => plain("double"),
        DataType::Date32 | DataType::Date64 => plain("date"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            plain("varbinary")
        }
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => TrinoType {
            name: format!("decimal({p},{s})"),
            signature: json!({"rawType": "decimal", "arguments": [long(i64::from(*p)), long(i64::from(*s))]}),
        },
        DataType::Timestamp(unit, zone) => {
            let p = precision(unit);
            let raw = if zone.is_some() { "timestamp with time zone" } else { "timestamp" };
            let name =
                if zone.is_some() { format!("timestamp({p}) with time zone") } else { format!("timestamp({p})") };
            TrinoType { name, signature: json!({"rawType": raw, "arguments": [long(p)]}) }
        }
        DataType::Time32(unit) | DataType::Time64(unit) => {
            let p = precision(unit);
            TrinoType { name: format!("time({p})"), signature: json!({"rawType": "time", "arguments": [long(p)]}) }
        }
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            let item = trino_type(f.data_type());
            TrinoType {
                name: format!("array({})", item.name),
                signature: json!({"rawType": "array", "arguments": [of(&item)]}),
            }
        }
        DataType::Map(entries, _) => {
            let (key, value) = match entries.data_type() {
                DataType::Struct(fields) if fields.len() == 2 => {
                    (trino_type(fields[0].data_type()), trino_type(fields[1].data_type()))
                }
                _ => (varchar(), varchar()),
            };
            TrinoType {
                name: format!("map({}, {})", key.name, value.name),
                signature: json!({"rawType": "map", "arguments": [of(&key), of(&value)]}),
            }
        }
        DataType::Struct(fields) => {
            let members: Vec<(String, TrinoType)> =
                fields.iter().map(|f| (f.name().clone(), trino_type(f.data_type()))).collect();
            let name = members.iter().map(|(n, t)| format!("\"{}\" {}", n.replace('"', "\"\""), t.name));
            let arguments: Vec<Json> = members
                .iter()
                .map(|(n, t)| {
                    json!({"kind": "NAMED_TYPE", "value": {"fieldName": {"name": n}, "typeSignature": t.signature}})
                })
                .collect();
            TrinoType {
                name: format!("row({})", name.collect::<Vec<_>>().join(", ")),
                signature: json!({"rawType": "row", "arguments": arguments}),
            }
        }
        DataType::Null => plain("unknown"),
        _ => varchar(),
    }
}

fn varchar() -> TrinoType {
    TrinoType {
        name: "varchar".to_owned(),
        signature: json!({"rawType": "varchar", "arguments": [long(UNBOUNDED_VARCHAR)]}),
    }
}

fn double(v: f64) -> Json {
    if v.is_nan() {
        Json::from("NaN")
    } else if v.is_infinite() {
        Json::from(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
    }
}

fn formatted(array: &dyn Array, row: usize, options: &FormatOptions<'_>) -> Json {
    match ArrayFormatter::try_new(array, options) {
        Ok(formatter) => Json::String(formatter.value(row).to_string()),
        Err(e) => Json::String(format!("<{e}>")),
    }
}

/// One value in Trino's JSON form.
pub fn value(array: &dyn Array, row: usize) -> Json {
    if array.is_null(row) || array.data_type() == &DataType::Null {
        return Json::Null;
    }
    match array.data_type() {
        DataType::Float32 => double(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Binary => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(array.as_binary::<i32>().value(row)))
        }
        DataType::LargeBinary => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(array.as_binary::<i64>().value(row)))
        }
        DataType::Timestamp(unit, zone) => {
            let format = match unit {
                TimeUnit::Second => "%Y-%m-%d %H:%M:%S",
                TimeUnit::Millisecond => "%Y-%m-%d %H:%M:%S%.3f",
                TimeUnit::Microsecond => "%Y-%m-%d %H:%M:%S%.6f",
                TimeUnit::Nanosecond => "%Y-%m-%d %H:%M:%S%.9f",
            };
            let options =
                FormatOptions::default().with_timestamp_format(Some(format)).with_timestamp_tz_format(Some(format));
            let mut text = formatted(array, row, &options);
            if let (Json::String(t), Some(_)) = (&mut text, zone) {
                t.push_str(" UTC");
            }
            text
        }
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            Json::Array((0..items.len()).map(|i| value(items.as_ref(), i)).collect())
        }
        DataType::LargeList(_) => {
            let items = array.as_list::<i64>().value(row);
            Json::Array((0..items.len()).map(|i| value(items.as_ref(), i)).collect())
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            let object = (0..entries.len())
                .map(|i| {
                    let key = match value(keys.as_ref(), i) {
                        Json::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, value(values.as_ref(), i))
                })
                .collect();
            Json::Object(object)
        }
        DataType::Struct(_) => {
            let row_value = array.as_struct();
            Json::Array(row_value.columns().iter().map(|c| value(c.as_ref(), row)).collect())
        }
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..)
        | DataType::Date32
        | DataType::Date64
        | DataType::Time32(_)
        | DataType::Time64(_) => formatted(array, row, &FormatOptions::default()),
        _ => result::cell(array, row),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BinaryArray, Date32Array, Decimal128Array, Float64Array, TimestampMicrosecondArray};
    use arrow::datatypes::Field;

    use super::*;

    #[test]
    fn types_are_named_as_trino_names_them() {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        assert_eq!(trino_type(&ts).name, "timestamp(3)");
        assert_eq!(
            trino_type(&ts).signature,
            json!({"rawType": "timestamp", "arguments": [{"kind": "LONG", "value": 3}]})
        );
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(trino_type(&utc).name, "timestamp(6) with time zone");
        assert_eq!(trino_type(&DataType::Decimal128(20, 4)).name, "decimal(20,4)");
        assert_eq!(trino_type(&DataType::Utf8View).name, "varchar");
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        assert_eq!(trino_type(&list).name, "array(bigint)");
        assert_eq!(trino_type(&list).signature["arguments"][0]["value"]["rawType"], "bigint");
        let map = crate::batch::warehouse::arrow_type(crate::schema::types::FieldType::Map(
            crate::schema::types::ScalarType::Double,
        ));
        assert_eq!(trino_type(&map).name, "map(varchar, double)");
    }

    #[test]
    fn values_take_trino_json_forms() {
        let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_700_000_000_123_456]).with_timezone("UTC"));
        assert_eq!(value(ts.as_ref(), 0), json!("2023-11-14 22:13:20.123456 UTC"));
        let date: ArrayRef = Arc::new(Date32Array::from(vec![19_000]));
        assert_eq!(value(date.as_ref(), 0), json!("2022-01-08"));
        let dec: ArrayRef =
            Arc::new(Decimal128Array::from(vec![12_345]).with_precision_and_scale(10, 2).expect("decimal"));
        assert_eq!(value(dec.as_ref(), 0), json!("123.45"));
        let bin: ArrayRef = Arc::new(BinaryArray::from(vec![b"hi".as_ref()]));
        assert_eq!(value(bin.as_ref(), 0), json!("aGk="));
        let doubles: ArrayRef = Arc::new(Float64Array::from(vec![f64::NAN, f64::NEG_INFINITY, 1.5]));
        assert_eq!(
            (0..3).map(|i| value(doubles.as_ref(), i)).collect::<Vec<_>>(),
            vec![json!("NaN"), json!("-Infinity"), json!(1.5)]
        );
    }
}
