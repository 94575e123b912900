//! [`Users`]: requests checked against the project's columns (new ones
//! inferred from their first value, as events' fields are) and applied to
//! the [`UserStore`].

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::operation::{Operation, OperationKind};
use super::{Assignment, Change, ChangeKind, Error, Result, Row, UserStore};
use crate::metadata::MetadataStore;
use crate::schema::SchemaRegistry;
use crate::schema::infer;
use crate::schema::names;
use crate::schema::types::{Field, FieldType, ScalarType};
use crate::schema::value::Scalar;

/// The user's id, the key of the table.
pub const ID_COLUMN: &str = "id";
/// When the user was created; never null.
pub const CREATED_AT_COLUMN: &str = "created_at";
/// Longest text id.
const MAX_ID_LEN: usize = 255;
/// Longest column name (PostgreSQL keeps 63 bytes of a name).
const MAX_COLUMN_LEN: usize = 63;

pub struct Users {
    store: Arc<dyn UserStore>,
    metadata: Arc<dyn MetadataStore>,
    registry: Arc<SchemaRegistry>,
    max_columns: usize,
}

impl Users {
    pub fn new(
        store: Arc<dyn UserStore>,
        metadata: Arc<dyn MetadataStore>,
        registry: Arc<SchemaRegistry>,
        max_columns: usize,
    ) -> Self {
        Users { store, metadata, registry, max_columns }
    }

    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    /// Every column of the project's table: `id`, `created_at`, then the
    /// properties in the order they were added.
    pub async fn columns(&self, project: &str) -> Result<Vec<Field>> {
        let id_type = self.metadata.user_type(project).await?.unwrap_or(FieldType::STRING);
        let mut columns = base_columns(id_type);
        columns.extend(self.metadata.user_columns(project).await?);
        Ok(columns)
    }

    /// Checks every operation, then applies them all in one transaction;
    /// returns the ids as stored. Nothing is written when one is invalid.
    pub async fn apply(&self, project: &str, ops: &[Operation], now_ms: i64) -> Result<Vec<Scalar<'static>>> {
        let Some(first) = ops.first() else { return Ok(Vec::new()) };
        let first_kind = if first.id.as_i64().is_some() { FieldType::LONG } else { FieldType::STRING };
        let id_type = self.registry.user_type(project, first_kind).await?;
        let ids = ops.iter().map(|op| user_id(&op.id, id_type)).collect::<Result<Vec<_>>>()?;
        let mut columns = self.property_columns(project).await?;
        let new = new_columns(ops, &columns)?;
        if !new.is_empty() {
            if columns.len() + new.len() > self.max_columns {
                return Err(Error::Invalid(format!(
                    "users would have {} properties, more than the {} allowed (projects.max_fields)",
                    columns.len() + new.len(),
                    self.max_columns
                )));
            }
            let all = self.metadata.add_user_columns(project, &new, now_ms).await?;
            columns = all.into_iter().map(|f| (f.name.clone(), f)).collect();
        }
        let now_micros = now_ms.saturating_mul(1000);
        let changes = ops
            .iter()
            .zip(ids.iter())
            .map(|(op, id)| change(op, id.clone(), &columns, now_micros))
            .collect::<Result<Vec<_>>>()?;
        let mut all = base_columns(id_type);
        all.extend(columns.into_values());
        self.store.ensure_columns(project, id_type, &all).await?;
        self.store.apply(project, id_type, &changes).await?;
        Ok(ids)
    }

    /// A user's properties that are not null, with `id` apart; `None` when
    /// there is no such user.
    pub async fn get(&self, project: &str, id: &Json) -> Result<Option<(Json, Map<String, Json>)>> {
        let Some(id_type) = self.metadata.user_type(project).await? else { return Ok(None) };
        let Ok(id) = user_id(id, id_type) else { return Ok(None) };
        let columns = self.columns(project).await?;
        self.store.ensure_columns(project, id_type, &columns).await?;
        let row = match self.store.get(project, &columns, &id).await {
            Ok(row) => row,
            // A column another gateway registered and is adding still.
            Err(_) => {
                self.store.ensure_columns(project, id_type, &columns).await?;
                self.store.get(project, &columns, &id).await?
            }
        };
        Ok(row.map(|row| {
            let mut properties = Map::new();
            for (c, v) in columns.iter().zip(row).skip(1) {
                if let Some(v) = v {
                    properties.insert(c.name.clone(), v.to_json());
                }
            }
            (id.to_json(), properties)
        }))
    }

    /// Every user's row over `columns` (from [`Users::columns`]).
    pub async fn rows(&self, project: &str, columns: &[Field]) -> Result<Vec<Row>> {
        let Some(id_type) = self.metadata.user_type(project).await? else { return Ok(Vec::new()) };
        self.store.ensure_columns(project, id_type, columns).await?;
        match self.store.rows(project, columns).await {
            Ok(rows) => Ok(rows),
            Err(_) => {
                self.store.ensure_columns(project, id_type, columns).await?;
                self.store.rows(project, columns).await
            }
        }
    }

    async fn property_columns(&self, project: &str) -> Result<HashMap<String, Field>> {
        Ok(self.metadata.user_columns(project).await?.into_iter().map(|f| (f.name.clone(), f)).collect())
    }
}

fn base_columns(id_type: FieldType) -> Vec<Field> {
    vec![Field::new(ID_COLUMN, id_type), Field::new(CREATED_AT_COLUMN, FieldType::TIMESTAMP)]
}

/// An id as the project keeps them.
fn user_id(id: &Json, id_type: FieldType) -> Result<Scalar<'static>> {
    if id.is_null() {
        return Err(Error::Invalid("the user's id is missing".to_owned()));
    }
    if id_type == FieldType::LONG {
        return infer::scalar(id, ScalarType::Long).map(Scalar::into_owned).ok_or_else(|| {
            Error::Invalid(format!(
                "user id {id} is not an integer: this project's user ids are numbers (its first id was one)"
            ))
        });
    }
    let text = match id {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return Err(Error::Invalid(format!("user id {id} must be a string or a number"))),
    };
    if text.is_empty() || text.len() > MAX_ID_LEN {
        return Err(Error::Invalid(format!("a user id has 1 to {MAX_ID_LEN} bytes")));
    }
    Ok(Scalar::String(text.into()))
}

/// A property's column name: as events' fields are named, with `id` as
/// `_id` (the table's own `id` is the user's).
fn column_name(raw: &str) -> Result<String> {
    let name = names::field_name(raw).map_err(|e| Error::Invalid(e.to_string()))?;
    if name.len() > MAX_COLUMN_LEN {
        return Err(Error::Invalid(format!("user property name {raw:?} is longer than {MAX_COLUMN_LEN} characters")));
    }
    Ok(if name == ID_COLUMN { "_id".to_owned() } else { name })
}

/// The columns the operations need that the project does not have, typed
/// by the first value of each.
fn new_columns(ops: &[Operation], known: &HashMap<String, Field>) -> Result<Vec<Field>> {
    let mut new: Vec<Field> = Vec::new();
    let mut add = |name: String, t: FieldType| {
        if name != CREATED_AT_COLUMN && !known.contains_key(&name) && !new.iter().any(|f| f.name == name) {
            new.push(Field::new(name, t));
        }
    };
    for op in ops {
        match &op.kind {
            OperationKind::Set(map) | OperationKind::SetOnce(map) => {
                for (raw, value) in map {
                    if let Some(t) = infer::infer(value) {
                        add(column_name(raw)?, t);
                    }
                }
            }
            OperationKind::Increment { property, .. } => add(column_name(property)?, FieldType::DOUBLE),
            OperationKind::Unset(_) => {}
        }
    }
    Ok(new)
}

fn column(columns: &HashMap<String, Field>, name: &str) -> Option<Field> {
    if name == CREATED_AT_COLUMN {
        return Some(Field::new(CREATED_AT_COLUMN, FieldType::TIMESTAMP));
    }
    columns.get(name).cloned()
}

fn assignments(map: &Map<String, Json>, columns: &HashMap<String, Field>) -> Result<Vec<Assignment>> {
    let mut out: Vec<Assignment> = Vec::with_capacity(map.len());
    for (raw, value) in map {
        let name = column_name(raw)?;
        if out.iter().any(|a| a.column.name == name) {
            return Err(Error::Invalid(format!("two properties become user column {name:?}; send one of them")));
        }
        // A null for a property no user has yet needs no column.
        let Some(column) = column(columns, &name) else { continue };
        let value = infer::coerce(value, column.field_type)
            .map_err(|e| Error::Invalid(format!("user property {raw:?}: {e}")))?
            .map(crate::schema::value::Value::into_owned);
        if name == CREATED_AT_COLUMN && value.is_none() {
            return Err(Error::Invalid("created_at cannot be null".to_owned()));
        }
        out.push(Assignment { column, value });
    }
    Ok(out)
}

fn change(op: &Operation, id: Scalar<'static>, columns: &HashMap<String, Field>, now_micros: i64) -> Result<Change> {
    let kind = match &op.kind {
        OperationKind::Set(map) => ChangeKind::Set(assignments(map, columns)?),
        OperationKind::SetOnce(map) => ChangeKind::SetOnce(assignments(map, columns)?),
        OperationKind::Unset(raw) => {
            let mut names = Vec::new();
            for raw in raw {
                let name = column_name(raw)?;
                if name == CREATED_AT_COLUMN {
                    return Err(Error::Invalid("created_at cannot be unset".to_owned()));
                }
                // A property no user has is unset already.
                if columns.contains_key(&name) && !names.contains(&name) {
                    names.push(name);
                }
            }
            ChangeKind::Unset(names)
        }
        OperationKind::Increment { property, value } => {
            let name = column_name(property)?;
            let column = column(columns, &name)
                .filter(|c| c.name != CREATED_AT_COLUMN)
                .ok_or_else(|| Error::Invalid(format!("user property {property:?} cannot be incremented")))?;
            let Some(number) = value.as_f64() else {
                return Err(Error::Invalid(format!("the increment of {property:?} must be a number, not {value}")));
            };
            let value = match column.field_type {
                FieldType::Scalar(ScalarType::Double) => Scalar::Double(number),
                FieldType::Scalar(ScalarType::Long | ScalarType::Integer) => match value.as_i64() {
                    Some(n) => Scalar::Long(n),
                    None => {
                        return Err(Error::Invalid(format!(
                            "user property {property:?} holds integers; it cannot be incremented by {value}"
                        )));
                    }
                },
                other => {
                    return Err(Error::Invalid(format!(
                        "user property {property:?} is {other}; only numbers can be incremented"
                    )));
                }
            };
            ChangeKind::Increment(Assignment { column, value: Some(crate::schema::value::Value::Scalar(value)) })
        }
    };
    let created_at = match &kind {
        ChangeKind::Set(a) | ChangeKind::SetOnce(a) => a
            .iter()
            .find(|a| a.column.name == CREATED_AT_COLUMN)
            .and_then(|a| match &a.value {
                Some(crate::schema::value::Value::Scalar(Scalar::Timestamp(t))) => Some(*t),
                _ => None,
            })
            .unwrap_or(now_micros),
        _ => now_micros,
    };
    Ok(Change { id, created_at, kind })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn known(fields: &[(&str, FieldType)]) -> HashMap<String, Field> {
        fields.iter().map(|(n, t)| ((*n).to_owned(), Field::new(*n, *t))).collect()
    }

    fn set(id: Json, props: Json) -> Operation {
        Operation { id, kind: OperationKind::Set(props.as_object().expect("object").clone()) }
    }

    #[test]
    fn new_properties_get_columns_typed_by_their_first_value() {
        let ops = [
            set(json!(1), json!({"plan": "pro", "id": "ext-9", "seats": 3, "gone": null, "createdAt": "2024-01-02"})),
            set(json!(2), json!({"plan": 5, "trial": true})),
        ];
        let new = new_columns(&ops, &known(&[("seats", FieldType::LONG)])).expect("columns");
        let names: Vec<(&str, FieldType)> = new.iter().map(|f| (f.name.as_str(), f.field_type)).collect();
        assert_eq!(names, [("_id", FieldType::STRING), ("plan", FieldType::STRING), ("trial", FieldType::BOOLEAN)]);
    }

    #[test]
    fn ids_take_the_projects_type() {
        assert_eq!(user_id(&json!(42), FieldType::LONG).expect("id"), Scalar::Long(42));
        assert_eq!(user_id(&json!("42"), FieldType::LONG).expect("id"), Scalar::Long(42));
        assert!(user_id(&json!("ann"), FieldType::LONG).is_err());
        assert_eq!(user_id(&json!(42), FieldType::STRING).expect("id"), Scalar::String("42".into()));
        assert!(user_id(&json!(null), FieldType::STRING).is_err());
        assert!(user_id(&json!(""), FieldType::STRING).is_err());
        assert!(user_id(&json!("x".repeat(256)), FieldType::STRING).is_err());
        assert!(user_id(&json!({"a": 1}), FieldType::STRING).is_err());
    }

    #[test]
    fn values_that_do_not_fit_their_column_are_refused() {
        let columns = known(&[("seats", FieldType::DOUBLE)]);
        let op = set(json!(1), json!({"seats": "many"}));
        assert!(matches!(change(&op, Scalar::Long(1), &columns, 0), Err(Error::Invalid(_))));
        let inc =
            Operation { id: json!(1), kind: OperationKind::Increment { property: "seats".into(), value: json!("x") } };
        assert!(matches!(change(&inc, Scalar::Long(1), &columns, 0), Err(Error::Invalid(_))));
    }

    #[test]
    fn created_at_is_taken_from_the_properties() {
        let op = set(json!(1), json!({"created_at": 1_700_000_000_000_i64}));
        let c = change(&op, Scalar::Long(1), &HashMap::new(), 5).expect("change");
        assert_eq!(c.created_at, 1_700_000_000_000_000);
        let plain = change(&set(json!(1), json!({})), Scalar::Long(1), &HashMap::new(), 5).expect("change");
        assert_eq!(plain.created_at, 5);
    }
}
