//! The Analysis API's query path: the per-project rewrite and the engine.

use std::collections::BTreeMap;

use crate::schema::types::Field;

/// A project's collections and their fields, read once per query so that
/// the rewrite and the engine see the same schemas.
pub type Collections = BTreeMap<String, Vec<Field>>;

/// What a query of one project reads, as the rewrite and the engine see it.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub collections: Collections,
    /// The columns of the project's user table (`users` in SQL).
    pub users: Vec<Field>,
    /// Tables over given files (views' snapshots, the collection files a
    /// view's refresh reads), by the name [`engine::QueryEngine::derived_table_name`]
    /// gives them.
    pub derived: BTreeMap<String, DerivedTable>,
}

/// A table over exactly these warehouse files.
#[derive(Debug, Clone, Default)]
pub struct DerivedTable {
    pub files: Vec<String>,
    /// The table's columns; `None`: the files' own (there is at least one).
    pub fields: Option<Vec<Field>>,
    /// Rows computed for the query instead of files (a continuous query's
    /// answer).
    pub answer: Option<(datafusion::arrow::datatypes::SchemaRef, Vec<datafusion::arrow::record_batch::RecordBatch>)>,
}

pub mod engine;
pub mod lanes;
mod nesting;
pub mod result;
pub mod rewrite;
pub mod run;
pub mod trino;
