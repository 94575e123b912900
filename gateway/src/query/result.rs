//! Query results in Rakam's shape: column names with Rakam types, and rows
//! of JSON values.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type};
use datafusion::arrow::datatypes::{UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value as Json;

/// The Rakam type name of an Arrow type.
pub fn rakam_type(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => "INTEGER".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "LONG".into(),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            "DECIMAL".into()
        }
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Timestamp(..) => "TIMESTAMP".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            "BINARY".into()
        }
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("ARRAY_{}", rakam_type(f.data_type()))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(fields) if fields.len() == 2 => format!("MAP_{}", rakam_type(fields[1].data_type())),
            _ => "MAP_STRING".into(),
        },
        _ => "STRING".into(),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the result is larger than {0} bytes; add a LIMIT or aggregate")]
pub struct TooLarge(pub usize);

/// The rows of the batches as JSON, refusing results past `max_bytes`.
pub fn rows(batches: &[RecordBatch], max_bytes: usize) -> Result<Vec<Vec<Json>>, TooLarge> {
    let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    let mut bytes = 0usize;
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values: Vec<Json> = batch.columns().iter().map(|c| cell(c.as_ref(), row)).collect();
            bytes += values.iter().map(|v| v.to_string().len() + 1).sum::<usize>();
            if bytes > max_bytes {
                return Err(TooLarge(max_bytes));
            }
            out.push(values);
        }
    }
    Ok(out)
}

fn number(v: Option<serde_json::Number>) -> Json {
    v.map_or(Json::Null, Json::Number)
}

/// One value as JSON: numbers, booleans, strings and lists as themselves,
/// everything else (dates, timestamps, decimals, maps) as its text.
pub fn cell(array: &dyn Array, row: usize) -> Json {
    if array.is_null(row) || array.data_type() == &DataType::Null {
        return Json::Null;
    }
    match array.data_type() {
        DataType::Boolean => Json::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Json::from(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => Json::from(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => Json::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Json::from(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Json::from(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => Json::from(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => Json::from(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => Json::from(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => {
            number(serde_json::Number::from_f64(f64::from(array.as_primitive::<Float32Type>().value(row))))
        }
        DataType::Float64 => number(serde_json::Number::from_f64(array.as_primitive::<Float64Type>().value(row))),
        DataType::Utf8 => Json::String(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Json::String(array.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Json::String(array.as_string_view().value(row).to_owned()),
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            Json::Array((0..items.len()).map(|i| cell(items.as_ref(), i)).collect())
        }
        _ => {
            let options = FormatOptions::default().with_null("null");
            match ArrayFormatter::try_new(array, &options) {
                Ok(formatter) => Json::String(formatter.value(row).to_string()),
                Err(e) => Json::String(format!("<{e}>")),
            }
        }
    }
}
