//! Records of a collection's topic back into rows, each read with the
//! collection's newest schema (as the batch loop reads them), keeping only
//! the fields the feeds read.

use std::collections::{HashMap, HashSet};
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
    read: Option<&HashSet<String>>,
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
    let kept: Vec<usize> = (0..reader.len()).filter(|&i| read.is_none_or(|r| r.contains(&reader[i].name))).collect();
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        let (id, body) = avro::split_header(&record.value).map_err(|e| e.to_string())?;
        let writer = writers.get(&id).ok_or_else(|| format!("no schema {id}"))?;
        let mut values = avro::decode(body, &writer.fields, &reader).map_err(|e| e.to_string())?;
        rows.push(kept.iter().map(|&i| values.get_mut(i).and_then(Option::take).map(Value::into_owned)).collect());
    }
    Ok((kept.into_iter().map(|i| reader[i].clone()).collect(), rows))
}
