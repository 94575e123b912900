//! Typed field values: what a JSON value becomes once coerced to its field's
//! type, and what the Avro decoder gives back.

use std::borrow::Cow;

/// A scalar value. Dates are days since 1970-01-01, times microseconds
/// since midnight, timestamps microseconds since the epoch (UTC), decimals
/// the unscaled integer at [`crate::schema::types::DECIMAL_SCALE`].
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    String(Cow<'a, str>),
    Int(i32),
    Long(i64),
    Double(f64),
    Decimal(i128),
    Bool(bool),
    Date(i32),
    Time(i64),
    Timestamp(i64),
    Binary(Cow<'a, [u8]>),
}

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Scalar(Scalar<'a>),
    Array(Vec<Option<Scalar<'a>>>),
    Map(Vec<(Cow<'a, str>, Option<Scalar<'a>>)>),
}

impl Scalar<'_> {
    pub fn into_owned(self) -> Scalar<'static> {
        match self {
            Scalar::String(s) => Scalar::String(Cow::Owned(s.into_owned())),
            Scalar::Binary(b) => Scalar::Binary(Cow::Owned(b.into_owned())),
            Scalar::Int(v) => Scalar::Int(v),
            Scalar::Long(v) => Scalar::Long(v),
            Scalar::Double(v) => Scalar::Double(v),
            Scalar::Decimal(v) => Scalar::Decimal(v),
            Scalar::Bool(v) => Scalar::Bool(v),
            Scalar::Date(v) => Scalar::Date(v),
            Scalar::Time(v) => Scalar::Time(v),
            Scalar::Timestamp(v) => Scalar::Timestamp(v),
        }
    }

    /// The value as JSON, as the API shows it (dates and times in ISO form).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Scalar::String(s) => J::String(s.to_string()),
            Scalar::Int(v) => J::from(*v),
            Scalar::Long(v) => J::from(*v),
            Scalar::Double(v) => serde_json::Number::from_f64(*v).map_or(J::Null, J::Number),
            Scalar::Decimal(v) => J::String(crate::schema::timefmt::format_decimal(*v)),
            Scalar::Bool(v) => J::Bool(*v),
            Scalar::Date(d) => J::String(crate::schema::timefmt::format_date(*d)),
            Scalar::Time(t) => J::String(crate::schema::timefmt::format_time(*t)),
            Scalar::Timestamp(t) => J::String(crate::schema::timefmt::format_timestamp(*t)),
            Scalar::Binary(b) => {
                use base64::Engine as _;
                J::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
        }
    }
}

/// A row: values in the order of a schema's fields.
pub type Row = Vec<Option<Value<'static>>>;

impl Value<'_> {
    /// The value, borrowing nothing.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Scalar(s) => Value::Scalar(s.into_owned()),
            Value::Array(items) => Value::Array(items.into_iter().map(|s| s.map(Scalar::into_owned)).collect()),
            Value::Map(entries) => Value::Map(
                entries.into_iter().map(|(k, v)| (Cow::Owned(k.into_owned()), v.map(Scalar::into_owned))).collect(),
            ),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        let opt = |s: &Option<Scalar<'_>>| s.as_ref().map_or(J::Null, Scalar::to_json);
        match self {
            Value::Scalar(s) => s.to_json(),
            Value::Array(items) => J::Array(items.iter().map(opt).collect()),
            Value::Map(entries) => J::Object(entries.iter().map(|(k, v)| (k.to_string(), opt(v))).collect()),
        }
    }
}
