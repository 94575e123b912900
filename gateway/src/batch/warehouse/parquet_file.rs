//! Rows of decoded values into an Arrow record batch, and that batch into
//! the bytes of a Parquet file.

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int32Builder, Int64Builder, ListBuilder, MapBuilder, MapFieldNames, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::{Result, arrow_schema};
use crate::schema::types::{DECIMAL_PRECISION, DECIMAL_SCALE, Field, FieldType, ScalarType};
use crate::schema::value::{Scalar, Value};

/// Rows of values in the order of a schema's fields.
pub type Rows<'a, 'v> = &'a [Vec<Option<Value<'v>>>];

fn scalar_builder(s: ScalarType, capacity: usize) -> Box<dyn ArrayBuilder> {
    match s {
        ScalarType::String => Box::new(StringBuilder::with_capacity(capacity, capacity * 16)),
        ScalarType::Integer => Box::new(Int32Builder::with_capacity(capacity)),
        ScalarType::Long => Box::new(Int64Builder::with_capacity(capacity)),
        ScalarType::Double => Box::new(Float64Builder::with_capacity(capacity)),
        ScalarType::Decimal => Box::new(
            Decimal128Builder::with_capacity(capacity)
                .with_precision_and_scale(DECIMAL_PRECISION as u8, DECIMAL_SCALE as i8)
                .unwrap_or_default(),
        ),
        ScalarType::Boolean => Box::new(BooleanBuilder::with_capacity(capacity)),
        ScalarType::Date => Box::new(Date32Builder::with_capacity(capacity)),
        ScalarType::Time => Box::new(Time64MicrosecondBuilder::with_capacity(capacity)),
        ScalarType::Timestamp => Box::new(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC")),
        ScalarType::Binary => Box::new(BinaryBuilder::with_capacity(capacity, capacity * 16)),
    }
}

type List = ListBuilder<Box<dyn ArrayBuilder>>;
type Map = MapBuilder<StringBuilder, Box<dyn ArrayBuilder>>;

fn builder(t: FieldType, capacity: usize) -> Box<dyn ArrayBuilder> {
    match t {
        FieldType::Scalar(s) => scalar_builder(s, capacity),
        FieldType::Array(s) => Box::new(ListBuilder::with_capacity(scalar_builder(s, capacity), capacity)),
        FieldType::Map(s) => {
            let names = MapFieldNames { entry: "entries".into(), key: "keys".into(), value: "values".into() };
            Box::new(MapBuilder::with_capacity(
                Some(names),
                StringBuilder::with_capacity(capacity, capacity * 8),
                scalar_builder(s, capacity),
                capacity,
            ))
        }
    }
}

fn downcast<T: 'static>(b: &mut dyn ArrayBuilder) -> &mut T {
    // The builder was made by `builder` for this very type.
    #[allow(clippy::expect_used)]
    b.as_any_mut().downcast_mut::<T>().expect("builder of the field's type")
}

fn append_scalar(b: &mut dyn ArrayBuilder, s: ScalarType, v: Option<&Scalar<'_>>) {
    match (s, v) {
        (ScalarType::String, Some(Scalar::String(x))) => downcast::<StringBuilder>(b).append_value(x),
        (ScalarType::String, _) => downcast::<StringBuilder>(b).append_null(),
        (ScalarType::Integer, Some(Scalar::Int(x))) => downcast::<Int32Builder>(b).append_value(*x),
        (ScalarType::Integer, _) => downcast::<Int32Builder>(b).append_null(),
        (ScalarType::Long, Some(Scalar::Long(x))) => downcast::<Int64Builder>(b).append_value(*x),
        (ScalarType::Long, _) => downcast::<Int64Builder>(b).append_null(),
        (ScalarType::Double, Some(Scalar::Double(x))) => downcast::<Float64Builder>(b).append_value(*x),
        (ScalarType::Double, _) => downcast::<Float64Builder>(b).append_null(),
        (ScalarType::Decimal, Some(Scalar::Decimal(x))) => downcast::<Decimal128Builder>(b).append_value(*x),
        (ScalarType::Decimal, _) => downcast::<Decimal128Builder>(b).append_null(),
        (ScalarType::Boolean, Some(Scalar::Bool(x))) => downcast::<BooleanBuilder>(b).append_value(*x),
        (ScalarType::Boolean, _) => downcast::<BooleanBuilder>(b).append_null(),
        (ScalarType::Date, Some(Scalar::Date(x))) => downcast::<Date32Builder>(b).append_value(*x),
        (ScalarType::Date, _) => downcast::<Date32Builder>(b).append_null(),
        (ScalarType::Time, Some(Scalar::Time(x))) => downcast::<Time64MicrosecondBuilder>(b).append_value(*x),
        (ScalarType::Time, _) => downcast::<Time64MicrosecondBuilder>(b).append_null(),
        (ScalarType::Timestamp, Some(Scalar::Timestamp(x))) => {
            downcast::<TimestampMicrosecondBuilder>(b).append_value(*x)
        }
        (ScalarType::Timestamp, _) => downcast::<TimestampMicrosecondBuilder>(b).append_null(),
        (ScalarType::Binary, Some(Scalar::Binary(x))) => downcast::<BinaryBuilder>(b).append_value(x),
        (ScalarType::Binary, _) => downcast::<BinaryBuilder>(b).append_null(),
    }
}

fn append(b: &mut dyn ArrayBuilder, t: FieldType, v: Option<&Value<'_>>) {
    match (t, v) {
        (FieldType::Scalar(s), Some(Value::Scalar(x))) => append_scalar(b, s, Some(x)),
        (FieldType::Scalar(s), _) => append_scalar(b, s, None),
        (FieldType::Array(s), Some(Value::Array(items))) => {
            let list = downcast::<List>(b);
            for item in items {
                append_scalar(list.values().as_mut(), s, item.as_ref());
            }
            list.append(true);
        }
        (FieldType::Array(_), _) => downcast::<List>(b).append(false),
        (FieldType::Map(s), Some(Value::Map(entries))) => {
            let map = downcast::<Map>(b);
            for (k, item) in entries {
                map.keys().append_value(k);
                append_scalar(map.values().as_mut(), s, item.as_ref());
            }
            // Only fails when keys and values differ in length, which the
            // loop above rules out.
            let _ = map.append(true);
        }
        (FieldType::Map(_), _) => {
            let _ = downcast::<Map>(b).append(false);
        }
    }
}

/// The rows as a record batch of the schema of `fields`.
pub fn record_batch(fields: &[Field], rows: Rows<'_, '_>) -> Result<RecordBatch> {
    let mut builders: Vec<Box<dyn ArrayBuilder>> = fields.iter().map(|f| builder(f.field_type, rows.len())).collect();
    for row in rows {
        for ((field, b), value) in fields.iter().zip(&mut builders).zip(row) {
            append(b.as_mut(), field.field_type, value.as_ref());
        }
    }
    let columns: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
    Ok(RecordBatch::try_new(arrow_schema(fields), columns)?)
}

/// A record batch as the bytes of a Snappy-compressed Parquet file. Event
/// ids are written without a dictionary: each is unique, so one would only
/// be built to be thrown away.
pub fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_column_dictionary_enabled(ColumnPath::from(crate::batch::dedup::ID_FIELD), false)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    writer.write(batch)?;
    Ok(writer.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn every_type_round_trips_through_parquet() {
        let names = [
            "STRING",
            "INTEGER",
            "LONG",
            "DOUBLE",
            "DECIMAL",
            "BOOLEAN",
            "DATE",
            "TIME",
            "TIMESTAMP",
            "BINARY",
            "ARRAY_STRING",
            "ARRAY_DOUBLE",
            "MAP_LONG",
            "MAP_STRING",
        ];
        let fields: Vec<Field> =
            names.iter().map(|n| Field::new(n.to_ascii_lowercase(), n.parse().expect("t"))).collect();
        let full = vec![
            Some(Value::Scalar(Scalar::String("a".into()))),
            Some(Value::Scalar(Scalar::Int(1))),
            Some(Value::Scalar(Scalar::Long(2))),
            Some(Value::Scalar(Scalar::Double(3.5))),
            Some(Value::Scalar(Scalar::Decimal(12_500_000_000))),
            Some(Value::Scalar(Scalar::Bool(true))),
            Some(Value::Scalar(Scalar::Date(19_000))),
            Some(Value::Scalar(Scalar::Time(3_600_000_000))),
            Some(Value::Scalar(Scalar::Timestamp(1_700_000_000_000_000))),
            Some(Value::Scalar(Scalar::Binary(vec![1u8, 2].into()))),
            Some(Value::Array(vec![Some(Scalar::String("x".into())), None])),
            Some(Value::Array(vec![])),
            Some(Value::Map(vec![("k".into(), Some(Scalar::Long(9)))])),
            Some(Value::Map(vec![])),
        ];
        let empty: Vec<Option<Value<'_>>> = vec![None; fields.len()];
        let batch = record_batch(&fields, &[full, empty]).expect("batch");
        assert_eq!(batch.num_rows(), 2);
        for (i, column) in batch.columns().iter().enumerate() {
            assert_eq!(column.data_type(), &crate::batch::warehouse::arrow_type(fields[i].field_type), "{}", names[i]);
            assert!(column.is_valid(0) && column.is_null(1), "{}", names[i]);
        }
        let bytes = parquet_bytes(&batch).expect("parquet");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .expect("reader")
            .build()
            .expect("build");
        let read: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("read");
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].schema(), batch.schema());
        assert_eq!(read[0], batch);
    }
}
