//! Avro binary encoding of collection records in Confluent's wire format
//! (magic byte 0, big-endian 4-byte schema id, Avro body).
//!
//! Collection schemas are records whose fields are all `["null", T]` unions
//! of the types in [`crate::schema::types`], appended over time; that is all this
//! codec needs to handle, and it does so without a generic Avro library.

use std::borrow::Cow;

use crate::schema::types::{Field, FieldType, ScalarType};
use crate::schema::value::{Scalar, Value};

/// The first byte of every record in Confluent's wire format.
pub const MAGIC: u8 = 0;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record is shorter than the wire-format header")]
    ShortHeader,
    #[error("record starts with {0}, not the wire-format magic byte 0")]
    BadMagic(u8),
    #[error("record ends in the middle of a value")]
    Truncated,
    #[error("bad union branch {0}")]
    BadUnion(i64),
    #[error("bad length {0}")]
    BadLength(i64),
    #[error("string is not UTF-8")]
    BadUtf8,
    #[error("{0} bytes are left after the last field")]
    TrailingBytes(usize),
}

/// Writes the wire-format header for a record of schema `schema_id`.
pub fn write_header(buf: &mut Vec<u8>, schema_id: u32) {
    buf.push(MAGIC);
    buf.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a wire-format record into its schema id and Avro body.
pub fn split_header(record: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    let (header, body) = record.split_at_checked(5).ok_or(DecodeError::ShortHeader)?;
    if header[0] != MAGIC {
        return Err(DecodeError::BadMagic(header[0]));
    }
    let id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    Ok((id, body))
}

pub fn write_long(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

fn write_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    write_long(buf, b.len() as i64);
    buf.extend_from_slice(b);
}

/// A nullable value: union branch 0 is null, 1 the value.
pub fn write_null(buf: &mut Vec<u8>) {
    buf.push(0);
}

pub fn write_scalar(buf: &mut Vec<u8>, s: &Scalar<'_>) {
    match s {
        Scalar::String(v) => write_bytes(buf, v.as_bytes()),
        Scalar::Int(v) | Scalar::Date(v) => write_long(buf, i64::from(*v)),
        Scalar::Long(v) | Scalar::Time(v) | Scalar::Timestamp(v) => write_long(buf, *v),
        Scalar::Double(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Scalar::Bool(v) => buf.push(u8::from(*v)),
        Scalar::Decimal(v) => write_bytes(buf, &decimal_bytes(*v)),
        Scalar::Binary(v) => write_bytes(buf, v),
    }
}

fn write_optional_scalar(buf: &mut Vec<u8>, s: Option<&Scalar<'_>>) {
    match s {
        None => write_null(buf),
        Some(s) => {
            buf.push(2); // zigzag(1): the value branch
            write_scalar(buf, s);
        }
    }
}

/// Writes a present value of a nullable field.
pub fn write_value(buf: &mut Vec<u8>, v: &Value<'_>) {
    buf.push(2);
    match v {
        Value::Scalar(s) => write_scalar(buf, s),
        Value::Array(items) => {
            if !items.is_empty() {
                write_long(buf, items.len() as i64);
                for item in items {
                    write_optional_scalar(buf, item.as_ref());
                }
            }
            buf.push(0);
        }
        Value::Map(entries) => {
            if !entries.is_empty() {
                write_long(buf, entries.len() as i64);
                for (k, item) in entries {
                    write_bytes(buf, k.as_bytes());
                    write_optional_scalar(buf, item.as_ref());
                }
            }
            buf.push(0);
        }
    }
}

/// Minimal big-endian two's complement, as Avro's decimal logical type has it.
fn decimal_bytes(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn long(&mut self) -> Result<i64, DecodeError> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or(DecodeError::Truncated)?;
            self.buf = rest;
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(DecodeError::Truncated)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self.buf.split_at_checked(n).ok_or(DecodeError::Truncated)?;
        self.buf = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.long()?;
        let n = usize::try_from(len).map_err(|_| DecodeError::BadLength(len))?;
        self.take(n)
    }

    fn string(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::BadUtf8)
    }

    fn present(&mut self) -> Result<bool, DecodeError> {
        match self.long()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::BadUnion(other)),
        }
    }

    fn scalar(&mut self, t: ScalarType) -> Result<Scalar<'a>, DecodeError> {
        let int = |v: i64| i32::try_from(v).map_err(|_| DecodeError::BadLength(v));
        Ok(match t {
            ScalarType::String => Scalar::String(Cow::Borrowed(self.string()?)),
            ScalarType::Integer => Scalar::Int(int(self.long()?)?),
            ScalarType::Date => Scalar::Date(int(self.long()?)?),
            ScalarType::Long => Scalar::Long(self.long()?),
            ScalarType::Time => Scalar::Time(self.long()?),
            ScalarType::Timestamp => Scalar::Timestamp(self.long()?),
            ScalarType::Double => {
                let b = self.take(8)?;
                Scalar::Double(f64::from_le_bytes(b.try_into().map_err(|_| DecodeError::Truncated)?))
            }
            ScalarType::Boolean => Scalar::Bool(self.take(1)?[0] != 0),
            ScalarType::Decimal => {
                let b = self.bytes()?;
                if b.len() > 16 {
                    return Err(DecodeError::BadLength(b.len() as i64));
                }
                let fill = if b.first().is_some_and(|x| x & 0x80 != 0) { 0xff } else { 0 };
                let mut full = [fill; 16];
                full[16 - b.len()..].copy_from_slice(b);
                Scalar::Decimal(i128::from_be_bytes(full))
            }
            ScalarType::Binary => Scalar::Binary(Cow::Borrowed(self.bytes()?)),
        })
    }

    fn optional_scalar(&mut self, t: ScalarType) -> Result<Option<Scalar<'a>>, DecodeError> {
        if self.present()? { self.scalar(t).map(Some) } else { Ok(None) }
    }

    /// Reads the blocks of an array or map, calling `item` for each entry.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Result<(), DecodeError>) -> Result<(), DecodeError> {
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                count = -count;
                self.long()?; // block size in bytes, unused
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    fn value(&mut self, t: FieldType) -> Result<Option<Value<'a>>, DecodeError> {
        if !self.present()? {
            return Ok(None);
        }
        Ok(Some(match t {
            FieldType::Scalar(s) => Value::Scalar(self.scalar(s)?),
            FieldType::Array(s) => {
                let mut items = Vec::new();
                self.blocks(|r| {
                    items.push(r.optional_scalar(s)?);
                    Ok(())
                })?;
                Value::Array(items)
            }
            FieldType::Map(s) => {
                let mut entries = Vec::new();
                self.blocks(|r| {
                    let k = r.string()?;
                    entries.push((Cow::Borrowed(k), r.optional_scalar(s)?));
                    Ok(())
                })?;
                Value::Map(entries)
            }
        }))
    }
}

/// Decodes an Avro body written with `writer_fields` and resolves it to
/// `reader_fields`, a schema of the same collection at the same or a later
/// version: fields the writer did not have read as null.
pub fn decode<'a>(
    body: &'a [u8],
    writer_fields: &[Field],
    reader_fields: &[Field],
) -> Result<Vec<Option<Value<'a>>>, DecodeError> {
    let mut reader = Reader { buf: body };
    let mut values: Vec<Option<Value<'a>>> = Vec::with_capacity(reader_fields.len());
    for field in writer_fields {
        values.push(reader.value(field.field_type)?);
    }
    if !reader.buf.is_empty() {
        return Err(DecodeError::TrailingBytes(reader.buf.len()));
    }
    values.resize(reader_fields.len().max(writer_fields.len()), None);
    values.truncate(reader_fields.len());
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, t: &str) -> Field {
        Field::new(name, t.parse().expect("type"))
    }

    #[test]
    fn longs_are_zigzag_varints() {
        for (v, bytes) in [(0i64, vec![0u8]), (-1, vec![1]), (1, vec![2]), (-64, vec![0x7f]), (64, vec![0x80, 1])] {
            let mut buf = Vec::new();
            write_long(&mut buf, v);
            assert_eq!(buf, bytes, "{v}");
            assert_eq!(Reader { buf: &bytes }.long(), Ok(v));
        }
        for v in [i64::MIN, i64::MAX, 1 << 40, -(1 << 40)] {
            let mut buf = Vec::new();
            write_long(&mut buf, v);
            assert_eq!(Reader { buf: &buf }.long(), Ok(v));
        }
    }

    #[test]
    fn decimals_use_minimal_twos_complement() {
        assert_eq!(decimal_bytes(0), vec![0]);
        assert_eq!(decimal_bytes(127), vec![0x7f]);
        assert_eq!(decimal_bytes(128), vec![0, 0x80]);
        assert_eq!(decimal_bytes(-1), vec![0xff]);
        assert_eq!(decimal_bytes(-129), vec![0xff, 0x7f]);
    }

    #[test]
    fn records_round_trip_and_old_records_read_with_nulls() {
        let v1 = vec![f("_time", "TIMESTAMP"), f("name", "STRING"), f("tags", "ARRAY_STRING")];
        let mut v2 = v1.clone();
        v2.push(f("price", "DECIMAL"));
        v2.push(f("attrs", "MAP_DOUBLE"));
        let values = vec![
            Some(Value::Scalar(Scalar::Timestamp(1_700_000_000_000_000))),
            Some(Value::Scalar(Scalar::String("héllo".into()))),
            Some(Value::Array(vec![Some(Scalar::String("a".into())), None])),
        ];
        let mut buf = Vec::new();
        write_header(&mut buf, 7);
        for v in &values {
            match v {
                Some(v) => write_value(&mut buf, v),
                None => write_null(&mut buf),
            }
        }
        let (id, body) = split_header(&buf).expect("header");
        assert_eq!(id, 7);
        let decoded = decode(body, &v1, &v2).expect("decode");
        assert_eq!(&decoded[..3], &values[..]);
        assert_eq!(decoded[3..], [None, None]);

        let mut buf = Vec::new();
        write_value(&mut buf, &Value::Scalar(Scalar::Timestamp(1)));
        write_null(&mut buf);
        write_value(&mut buf, &Value::Array(vec![]));
        write_value(&mut buf, &Value::Scalar(Scalar::Decimal(-12_500_000_000)));
        write_value(&mut buf, &Value::Map(vec![("k".into(), Some(Scalar::Double(1.5)))]));
        let decoded = decode(&buf, &v2, &v2).expect("decode");
        assert_eq!(decoded[2], Some(Value::Array(vec![])));
        assert_eq!(decoded[3], Some(Value::Scalar(Scalar::Decimal(-12_500_000_000))));
        assert_eq!(decoded[4], Some(Value::Map(vec![("k".into(), Some(Scalar::Double(1.5)))])));
    }

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        let fields = vec![f("a", "STRING"), f("b", "ARRAY_DOUBLE")];
        assert_eq!(split_header(&[0, 0]), Err(DecodeError::ShortHeader));
        assert_eq!(split_header(&[1, 0, 0, 0, 0]), Err(DecodeError::BadMagic(1)));
        assert_eq!(decode(&[4], &fields, &fields), Err(DecodeError::BadUnion(2)));
        assert_eq!(decode(&[2, 20, b'a'], &fields, &fields), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0, 0, 9], &fields, &fields), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(decode(&[2, 1], &fields, &fields), Err(DecodeError::BadLength(-1)));
    }
}
