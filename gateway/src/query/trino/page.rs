//! The JSON of a statement's answers: its columns, a page of rows, and the
//! `stats` clients read.

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use serde_json::{Value as Json, json};

use super::types::{trino_type, value};

/// The columns of a result.
pub fn columns(schema: &Schema) -> Json {
    schema
        .fields()
        .iter()
        .map(|f| {
            let t = trino_type(f.data_type());
            json!({"name": f.name(), "type": t.name, "typeSignature": t.signature})
        })
        .collect()
}

/// Where the next page starts.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cursor {
    pub batch: usize,
    pub row: usize,
}

/// The rows from `cursor` on, up to `max_bytes` of JSON (at least one row);
/// the cursor moves past them.
pub fn take(batches: &[RecordBatch], cursor: &mut Cursor, max_bytes: usize) -> Vec<Json> {
    let mut rows = Vec::new();
    let mut bytes = 0;
    while let Some(batch) = batches.get(cursor.batch) {
        if cursor.row >= batch.num_rows() {
            cursor.batch += 1;
            cursor.row = 0;
            continue;
        }
        if !rows.is_empty() && bytes >= max_bytes {
            break;
        }
        let row: Vec<Json> = batch.columns().iter().map(|c| value(c.as_ref(), cursor.row)).collect();
        bytes += row.iter().map(|v| v.to_string().len() + 1).sum::<usize>();
        rows.push(Json::Array(row));
        cursor.row += 1;
    }
    rows
}

/// Whether rows remain after the cursor.
pub fn more(batches: &[RecordBatch], cursor: &Cursor) -> bool {
    batches
        .iter()
        .skip(cursor.batch)
        .enumerate()
        .any(|(i, b)| if i == 0 { cursor.row < b.num_rows() } else { b.num_rows() > 0 })
}

/// What a statement has done so far.
pub struct Progress<'a> {
    pub state: &'a str,
    pub elapsed_ms: u64,
    pub rows: u64,
    pub bytes: u64,
}

/// Trino's `stats` object, with every field clients read.
pub fn stats(p: &Progress<'_>) -> Json {
    let done = matches!(p.state, "FINISHED" | "FAILED");
    let splits = u64::from(p.state != "QUEUED");
    json!({
        "state": p.state,
        "queued": p.state == "QUEUED",
        "scheduled": p.state != "QUEUED",
        "progressPercentage": if done { 100.0 } else { 0.0 },
        "runningPercentage": 0.0,
        "nodes": 1,
        "totalSplits": splits,
        "queuedSplits": 0,
        "runningSplits": if done { 0 } else { splits },
        "completedSplits": if done { splits } else { 0 },
        "cpuTimeMillis": p.elapsed_ms,
        "wallTimeMillis": p.elapsed_ms,
        "queuedTimeMillis": 0,
        "elapsedTimeMillis": p.elapsed_ms,
        "finishingTimeMillis": 0,
        "physicalInputTimeMillis": 0,
        "processedRows": p.rows,
        "processedBytes": p.bytes,
        "physicalInputBytes": p.bytes,
        "physicalWrittenBytes": 0,
        "internalNetworkInputBytes": 0,
        "peakMemoryBytes": 0,
        "spilledBytes": 0,
    })
}
