//! Weir: an analytics event gateway that speaks Rakam's HTTP API.

pub mod app;
pub mod avro;
pub mod avro_import;
pub mod columnar;
pub mod compaction;
pub mod config;
pub mod http;
pub mod infer;
pub mod ingest;
pub mod keys;
pub mod loader;
pub mod log;
pub mod metadata;
pub mod names;
pub mod plugin;
pub mod query;
pub mod schema;
pub mod timefmt;
pub mod types;
pub mod value;
