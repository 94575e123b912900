//! Schema inference (the type a field gets from the first value seen) and
//! coercion (a later value into the field's type, where that is lossless).

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::Value as Json;

use crate::schema::timefmt;
use crate::schema::types::{FieldType, ScalarType};
use crate::schema::value::{Scalar, Value};

/// The type a field gets from its first value; `None` for null, `[]` and
/// `{}`, which add no field yet.
pub fn infer(value: &Json) -> Option<FieldType> {
    match value {
        Json::Null => None,
        Json::Array(items) => items.iter().find(|v| !v.is_null()).map(|v| FieldType::Array(infer_element(v))),
        Json::Object(entries) => entries.values().find(|v| !v.is_null()).map(|v| FieldType::Map(infer_element(v))),
        scalar => Some(FieldType::Scalar(infer_element(scalar))),
    }
}

/// The scalar type of a value inside an array or map, or of a top-level
/// scalar; nested arrays and objects are kept as their JSON text.
fn infer_element(value: &Json) -> ScalarType {
    match value {
        Json::Bool(_) => ScalarType::Boolean,
        Json::Number(_) => ScalarType::Double,
        Json::String(s) => infer_string(s),
        Json::Null | Json::Array(_) | Json::Object(_) => ScalarType::String,
    }
}

fn infer_string(s: &str) -> ScalarType {
    if timefmt::parse_date(s).is_some() {
        ScalarType::Date
    } else if timefmt::parse_timestamp(s).is_some() {
        ScalarType::Timestamp
    } else {
        ScalarType::String
    }
}

/// Why a value could not be stored in its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot store {found} as {expected}")]
pub struct CoerceError {
    pub expected: FieldType,
    pub found: String,
}

/// Converts a JSON value to the field's type where no information is lost:
/// `"42"` into a DOUBLE, `42` into a STRING, a scalar into an array of its
/// type. `Ok(None)` is a null.
pub fn coerce(value: &Json, field_type: FieldType) -> Result<Option<Value<'_>>, CoerceError> {
    let fail = || CoerceError { expected: field_type, found: describe(value) };
    if value.is_null() {
        return Ok(None);
    }
    match field_type {
        FieldType::Scalar(t) => scalar(value, t).map(|s| Some(Value::Scalar(s))).ok_or_else(fail),
        FieldType::Array(t) => match value {
            Json::Array(items) => items
                .iter()
                .map(|v| if v.is_null() { Some(None) } else { element(v, t).map(Some) })
                .collect::<Option<Vec<_>>>()
                .map(|items| Some(Value::Array(items)))
                .ok_or_else(fail),
            Json::Object(_) => Err(fail()),
            single => scalar(single, t).map(|s| Some(Value::Array(vec![Some(s)]))).ok_or_else(fail),
        },
        FieldType::Map(t) => match value {
            Json::Object(entries) => entries
                .iter()
                .map(|(k, v)| {
                    let v = if v.is_null() { Some(None) } else { element(v, t).map(Some) };
                    v.map(|v| (Cow::Borrowed(k.as_str()), v))
                })
                .collect::<Option<Vec<_>>>()
                .map(|entries| Some(Value::Map(entries)))
                .ok_or_else(fail),
            _ => Err(fail()),
        },
    }
}

/// An element of an array or map: like a scalar, but nested arrays and
/// objects are accepted as their JSON text where the type is STRING.
fn element(value: &Json, t: ScalarType) -> Option<Scalar<'_>> {
    match (value, t) {
        (Json::Array(_) | Json::Object(_), ScalarType::String) => Some(Scalar::String(Cow::Owned(value.to_string()))),
        _ => scalar(value, t),
    }
}

/// A scalar JSON value as a scalar of type `t`.
pub fn scalar(value: &Json, t: ScalarType) -> Option<Scalar<'_>> {
    match t {
        ScalarType::String => match value {
            Json::String(s) => Some(Scalar::String(Cow::Borrowed(s))),
            Json::Number(n) => Some(Scalar::String(Cow::Owned(n.to_string()))),
            Json::Bool(b) => Some(Scalar::String(Cow::Borrowed(if *b { "true" } else { "false" }))),
            Json::Array(_) | Json::Object(_) => Some(Scalar::String(Cow::Owned(value.to_string()))),
            Json::Null => None,
        },
        ScalarType::Integer => integer(value).and_then(|v| i32::try_from(v).ok()).map(Scalar::Int),
        ScalarType::Long => integer(value).map(Scalar::Long),
        ScalarType::Double => match value {
            Json::Number(n) => n.as_f64().map(Scalar::Double),
            Json::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()).map(Scalar::Double),
            _ => None,
        },
        ScalarType::Decimal => match value {
            Json::Number(n) => timefmt::parse_decimal(&n.to_string()).map(Scalar::Decimal),
            Json::String(s) => timefmt::parse_decimal(s.trim()).map(Scalar::Decimal),
            _ => None,
        },
        ScalarType::Boolean => match value {
            Json::Bool(b) => Some(Scalar::Bool(*b)),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Some(Scalar::Bool(true)),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Some(Scalar::Bool(false)),
            _ => None,
        },
        ScalarType::Date => value.as_str().and_then(timefmt::parse_date).map(Scalar::Date),
        ScalarType::Time => value.as_str().and_then(timefmt::parse_time).map(Scalar::Time),
        ScalarType::Timestamp => match value {
            Json::String(s) => timefmt::parse_date_or_timestamp(s),
            // A number is milliseconds since the epoch.
            Json::Number(_) => integer(value).and_then(|ms| ms.checked_mul(1000)),
            _ => None,
        }
        .filter(|&micros| timefmt::representable(micros))
        .map(Scalar::Timestamp),
        ScalarType::Binary => value
            .as_str()
            .and_then(|s| {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
                    .ok()
            })
            .map(|b| Scalar::Binary(Cow::Owned(b))),
    }
}

/// A whole number, from an integral JSON number or a string holding one.
fn integer(value: &Json) -> Option<i64> {
    match value {
        Json::Number(n) => n.as_i64().or_else(|| {
            n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15).map(|f| f as i64)
        }),
        Json::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

fn describe(value: &Json) -> String {
    let kind = match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    };
    let mut text = value.to_string();
    if text.len() > 64 {
        let cut = (0..=64).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    format!("{kind} {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> FieldType {
        s.parse().expect("type")
    }

    #[test]
    fn inference_follows_the_first_value() {
        assert_eq!(infer(&json!(1)), Some(t("DOUBLE")));
        assert_eq!(infer(&json!(1.5)), Some(t("DOUBLE")));
        assert_eq!(infer(&json!(true)), Some(t("BOOLEAN")));
        assert_eq!(infer(&json!("2024-01-02")), Some(t("DATE")));
        assert_eq!(infer(&json!("2024-01-02T03:04:05Z")), Some(t("TIMESTAMP")));
        assert_eq!(infer(&json!("2024-1-2 3:4")), Some(t("TIMESTAMP")));
        assert_eq!(infer(&json!("hello")), Some(t("STRING")));
        assert_eq!(infer(&json!(["a", 1])), Some(t("ARRAY_STRING")));
        assert_eq!(infer(&json!([null, 1])), Some(t("ARRAY_DOUBLE")));
        assert_eq!(infer(&json!([[1], [2]])), Some(t("ARRAY_STRING")));
        assert_eq!(infer(&json!({"a": true})), Some(t("MAP_BOOLEAN")));
        assert_eq!(infer(&json!({"a": {"b": 1}})), Some(t("MAP_STRING")));
        assert_eq!(infer(&json!(null)), None);
        assert_eq!(infer(&json!([])), None);
        assert_eq!(infer(&json!({})), None);
    }

    #[test]
    fn lossless_coercions() {
        let s = |v: &Json, ty: &str| coerce(v, t(ty)).map(|v| v.map(|v| v.to_json()));
        assert_eq!(s(&json!("42"), "DOUBLE"), Ok(Some(json!(42.0))));
        assert_eq!(s(&json!(42), "STRING"), Ok(Some(json!("42"))));
        assert_eq!(s(&json!(true), "STRING"), Ok(Some(json!("true"))));
        assert_eq!(s(&json!("x"), "ARRAY_STRING"), Ok(Some(json!(["x"]))));
        assert_eq!(s(&json!(3), "ARRAY_DOUBLE"), Ok(Some(json!([3.0]))));
        assert_eq!(s(&json!(42.0), "LONG"), Ok(Some(json!(42))));
        assert_eq!(s(&json!("7"), "INTEGER"), Ok(Some(json!(7))));
        assert_eq!(s(&json!("TRUE"), "BOOLEAN"), Ok(Some(json!(true))));
        assert_eq!(s(&json!(0), "TIMESTAMP"), Ok(Some(json!("1970-01-01T00:00:00.000000Z"))));
        assert_eq!(s(&json!("2024-01-02"), "TIMESTAMP"), Ok(Some(json!("2024-01-02T00:00:00.000000Z"))));
        assert_eq!(s(&json!("12.25"), "DECIMAL"), Ok(Some(json!("12.25"))));
        assert_eq!(s(&json!("aGk="), "BINARY"), Ok(Some(json!("aGk="))));
        assert_eq!(s(&json!({"a": 1, "b": null}), "MAP_DOUBLE"), Ok(Some(json!({"a": 1.0, "b": null}))));
        assert_eq!(s(&json!(null), "DOUBLE"), Ok(None));
    }

    #[test]
    fn lossy_values_are_refused() {
        for (v, ty) in [
            (json!("abc"), "DOUBLE"),
            (json!(42.5), "LONG"),
            (json!(1e12), "INTEGER"),
            (json!(1), "BOOLEAN"),
            (json!("2024-01-02T03:04:05Z"), "DATE"),
            (json!(true), "DOUBLE"),
            (json!([1, "x"]), "ARRAY_DOUBLE"),
            (json!({"a": 1}), "ARRAY_DOUBLE"),
            (json!(5), "MAP_DOUBLE"),
            (json!("not base64!"), "BINARY"),
            (json!("1.0000000001"), "DECIMAL"),
        ] {
            let err = coerce(&v, t(ty)).expect_err(&format!("{v} as {ty}"));
            assert_eq!(err.expected, t(ty));
        }
    }
}
