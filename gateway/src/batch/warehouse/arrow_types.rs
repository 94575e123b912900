//! Each Rakam type as one Arrow type (and so one Parquet type).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field as ArrowField, Fields, Schema, SchemaRef, TimeUnit};

use crate::schema::types::{DECIMAL_PRECISION, DECIMAL_SCALE, Field, FieldType, ScalarType};

/// The Arrow type of a scalar.
fn scalar(s: ScalarType) -> DataType {
    match s {
        ScalarType::String => DataType::Utf8,
        ScalarType::Integer => DataType::Int32,
        ScalarType::Long => DataType::Int64,
        ScalarType::Double => DataType::Float64,
        ScalarType::Decimal => DataType::Decimal128(DECIMAL_PRECISION as u8, DECIMAL_SCALE as i8),
        ScalarType::Boolean => DataType::Boolean,
        ScalarType::Date => DataType::Date32,
        ScalarType::Time => DataType::Time64(TimeUnit::Microsecond),
        ScalarType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ScalarType::Binary => DataType::Binary,
    }
}

/// The Arrow type of a field: arrays are lists and maps are maps from
/// strings, with nullable items.
pub fn arrow_type(t: FieldType) -> DataType {
    match t {
        FieldType::Scalar(s) => scalar(s),
        FieldType::Array(s) => DataType::List(Arc::new(ArrowField::new("item", scalar(s), true))),
        FieldType::Map(s) => {
            let entries = Fields::from(vec![
                ArrowField::new("keys", DataType::Utf8, false),
                ArrowField::new("values", scalar(s), true),
            ]);
            DataType::Map(Arc::new(ArrowField::new("entries", DataType::Struct(entries), false)), false)
        }
    }
}

/// The Arrow schema of a collection: every field nullable, in schema order.
pub fn arrow_schema(fields: &[Field]) -> SchemaRef {
    Arc::new(Schema::new(
        fields.iter().map(|f| ArrowField::new(&f.name, arrow_type(f.field_type), true)).collect::<Vec<_>>(),
    ))
}
