//! Records of a collection's topic back into rows, each read with the
//! collection's newest schema (as the batch loop reads them).

use std::collections::HashMap;
use std::sync::Arc;

use crate::log::StoredRecord;
use crate::metadata::SchemaVersion;
use crate::schema::types::Field;
use crate::schema::value::{Row, Value};
use crate::schema::{SchemaRegistry, avro};

pub async fn decode_records(
    registry: &SchemaRegistry,
    project: &str,
    collection: &str,
    records: &[StoredRecord],
) -> Result<(Vec<Field>, Vec<Row>), String> {
    let mut reader: Vec<Field> = registry
        .current(project, collection)
        .await
        .map_err(|e| e.to_string())?
        .map(|s| s.fields.clone())
        .unwrap_or_default();
    let mut writers: HashMap<u32, Arc<SchemaVersion>> = HashMap::new();
    for record in records {
        let (id, _) = avro::split_header(&record.value).map_err(|e| e.to_string())?;
        if let std::collections::hash_map::Entry::Vacant(slot) = writers.entry(id) {
            let v = registry
                .by_id(i64::from(id))
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no schema {id}"))?;
            if v.fields.len() > reader.len() {
                reader = v.fields.clone();
            }
            slot.insert(v);
        }
    }
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        let (id, body) = avro::split_header(&record.value).map_err(|e| e.to_string())?;
        let writer = writers.get(&id).ok_or_else(|| format!("no schema {id}"))?;
        let values = avro::decode(body, &writer.fields, &reader).map_err(|e| e.to_string())?;
        rows.push(values.into_iter().map(|v| v.map(Value::into_owned)).collect());
    }
    Ok((reader, rows))
}
