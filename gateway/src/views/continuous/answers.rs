//! Continuous queries' answers kept by the state files they were computed
//! from: reads between two loads are answered without merging the states
//! again (merging sketches is most of an answer's cost).

use std::collections::HashMap;
use std::sync::Mutex;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

/// Answers larger than this are computed on every read.
const MAX_ANSWER_BYTES: usize = 16 << 20;
/// Queries whose answers are kept at once.
const MAX_ANSWERS: usize = 256;

struct Kept {
    query: String,
    files: Vec<String>,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

#[derive(Default)]
pub(super) struct Answers {
    kept: Mutex<HashMap<(String, String), Kept>>,
}

impl Answers {
    /// The answer computed from exactly `files` for this query text.
    pub(super) fn get(
        &self,
        key: &(String, String),
        query: &str,
        files: &[String],
    ) -> Option<(SchemaRef, Vec<RecordBatch>)> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(key).filter(|k| k.query == query && k.files == files).map(|k| (k.schema.clone(), k.batches.clone()))
    }

    pub(super) fn put(
        &self,
        key: (String, String),
        query: &str,
        files: Vec<String>,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) {
        let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if bytes > MAX_ANSWER_BYTES {
            kept.remove(&key);
            return;
        }
        if kept.len() >= MAX_ANSWERS && !kept.contains_key(&key) {
            kept.clear();
        }
        let answer = Kept { query: query.to_owned(), files, schema: schema.clone(), batches: batches.to_vec() };
        kept.insert(key, answer);
    }
}
