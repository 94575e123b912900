//! How a typed value is kept in a column of the user database. Every type
//! maps to a type all three databases share through sqlx's `Any` driver:
//! timestamps and times are BIGINT microseconds (UTC), dates, decimals,
//! binaries (base64), arrays and maps (JSON) are text, booleans are
//! BOOLEAN on PostgreSQL and 0/1 elsewhere.

use base64::Engine as _;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Error, Result};
use crate::metadata::sql::Dialect;
use crate::schema::infer;
use crate::schema::timefmt;
use crate::schema::types::{FieldType, ScalarType};
use crate::schema::value::{Scalar, Value};

/// A value as bound to a statement, typed even when null so that
/// PostgreSQL is told the parameter's type.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Text(Option<String>),
}

impl SqlValue {
    pub fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            SqlValue::Int(v) => query.bind(v),
            SqlValue::Float(v) => query.bind(v),
            SqlValue::Bool(v) => query.bind(v),
            SqlValue::Text(v) => query.bind(v),
        }
    }
}

/// The column type of a field.
pub fn sql_type(d: Dialect, t: FieldType) -> &'static str {
    match t {
        FieldType::Scalar(ScalarType::Integer | ScalarType::Long | ScalarType::Timestamp | ScalarType::Time) => {
            "BIGINT"
        }
        FieldType::Scalar(ScalarType::Double) => match d {
            Dialect::Postgres => "DOUBLE PRECISION",
            Dialect::MySql => "DOUBLE",
            Dialect::Sqlite => "REAL",
        },
        FieldType::Scalar(ScalarType::Boolean) => match d {
            Dialect::Postgres => "BOOLEAN",
            Dialect::MySql | Dialect::Sqlite => "BIGINT",
        },
        _ => "TEXT",
    }
}

/// The type of the `id` column: text ids are keys, so of bounded length.
pub fn id_sql_type(t: FieldType) -> &'static str {
    if t == FieldType::LONG { "BIGINT" } else { "VARCHAR(255)" }
}

/// How a value of `t` is bound.
pub fn to_sql(d: Dialect, t: FieldType, value: Option<&Value<'_>>) -> SqlValue {
    let text = |v: Option<String>| SqlValue::Text(v);
    match t {
        FieldType::Scalar(s) => {
            let scalar = match value {
                Some(Value::Scalar(s)) => Some(s),
                _ => None,
            };
            match s {
                ScalarType::Integer | ScalarType::Long => SqlValue::Int(scalar.and_then(|v| match v {
                    Scalar::Int(i) => Some(i64::from(*i)),
                    Scalar::Long(i) => Some(*i),
                    _ => None,
                })),
                ScalarType::Timestamp | ScalarType::Time => SqlValue::Int(scalar.and_then(|v| match v {
                    Scalar::Timestamp(t) | Scalar::Time(t) => Some(*t),
                    _ => None,
                })),
                ScalarType::Double => SqlValue::Float(scalar.and_then(|v| match v {
                    Scalar::Double(f) => Some(*f),
                    _ => None,
                })),
                ScalarType::Boolean => {
                    let b = scalar.and_then(|v| match v {
                        Scalar::Bool(b) => Some(*b),
                        _ => None,
                    });
                    match d {
                        Dialect::Postgres => SqlValue::Bool(b),
                        Dialect::MySql | Dialect::Sqlite => SqlValue::Int(b.map(i64::from)),
                    }
                }
                ScalarType::String => text(scalar.and_then(|v| match v {
                    Scalar::String(s) => Some(s.to_string()),
                    _ => None,
                })),
                ScalarType::Date | ScalarType::Decimal | ScalarType::Binary => {
                    text(scalar.and_then(|v| v.to_json().as_str().map(str::to_owned)))
                }
            }
        }
        FieldType::Array(_) | FieldType::Map(_) => text(value.map(|v| v.to_json().to_string())),
    }
}

/// The id as bound.
pub fn id_to_sql(id: &Scalar<'_>) -> SqlValue {
    match id {
        Scalar::Long(v) => SqlValue::Int(Some(*v)),
        other => {
            SqlValue::Text(other.to_json().as_str().map(str::to_owned).or_else(|| Some(other.to_json().to_string())))
        }
    }
}

/// The value of column `i` of a row, read as a field of type `t`.
pub fn from_sql(d: Dialect, row: &AnyRow, i: usize, t: FieldType) -> Result<Option<Value<'static>>> {
    let corrupt = |what: &str| Error::Corrupt(format!("column {i} holds {what} for a {t} field"));
    let scalar = |s: Scalar<'static>| Some(Value::Scalar(s));
    Ok(match t {
        FieldType::Scalar(ScalarType::Integer) => {
            let v: Option<i64> = row.try_get(i)?;
            v.map(|v| i32::try_from(v).map(Scalar::Int).map_err(|_| corrupt("a large number")))
                .transpose()?
                .and_then(scalar)
        }
        FieldType::Scalar(ScalarType::Long) => row.try_get::<Option<i64>, _>(i)?.and_then(|v| scalar(Scalar::Long(v))),
        FieldType::Scalar(ScalarType::Timestamp) => {
            row.try_get::<Option<i64>, _>(i)?.and_then(|v| scalar(Scalar::Timestamp(v)))
        }
        FieldType::Scalar(ScalarType::Time) => row.try_get::<Option<i64>, _>(i)?.and_then(|v| scalar(Scalar::Time(v))),
        FieldType::Scalar(ScalarType::Double) => {
            row.try_get::<Option<f64>, _>(i)?.and_then(|v| scalar(Scalar::Double(v)))
        }
        FieldType::Scalar(ScalarType::Boolean) => match d {
            Dialect::Postgres => row.try_get::<Option<bool>, _>(i)?,
            Dialect::MySql | Dialect::Sqlite => row.try_get::<Option<i64>, _>(i)?.map(|v| v != 0),
        }
        .and_then(|b| scalar(Scalar::Bool(b))),
        FieldType::Scalar(ScalarType::String) => text(row, i)?.and_then(|s| scalar(Scalar::String(s.into()))),
        FieldType::Scalar(ScalarType::Date) => match text(row, i)? {
            None => None,
            Some(s) => scalar(Scalar::Date(timefmt::parse_date(&s).ok_or_else(|| corrupt("a malformed date"))?)),
        },
        FieldType::Scalar(ScalarType::Decimal) => match text(row, i)? {
            None => None,
            Some(s) => {
                scalar(Scalar::Decimal(timefmt::parse_decimal(&s).ok_or_else(|| corrupt("a malformed decimal"))?))
            }
        },
        FieldType::Scalar(ScalarType::Binary) => match text(row, i)? {
            None => None,
            Some(s) => scalar(Scalar::Binary(
                base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| corrupt("malformed base64"))?.into(),
            )),
        },
        FieldType::Array(_) | FieldType::Map(_) => match text(row, i)? {
            None => None,
            Some(s) => {
                let json: serde_json::Value = serde_json::from_str(&s).map_err(|_| corrupt("malformed JSON"))?;
                infer::coerce(&json, t).map_err(|e| Error::Corrupt(e.to_string()))?.map(Value::into_owned)
            }
        },
    })
}

/// A text column. Through sqlx's `Any` driver MySQL reports TEXT as bytes.
fn text(row: &AnyRow, i: usize) -> Result<Option<String>> {
    match row.try_get::<Option<String>, _>(i) {
        Ok(v) => Ok(v),
        Err(_) => match row.try_get::<Option<Vec<u8>>, _>(i)? {
            None => Ok(None),
            Some(bytes) => {
                String::from_utf8(bytes).map(Some).map_err(|_| Error::Corrupt(format!("column {i} is not UTF-8")))
            }
        },
    }
}
