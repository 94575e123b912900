//! Weir: an analytics event gateway that speaks Rakam's HTTP API.

pub mod avro;
pub mod infer;
pub mod log;
pub mod metadata;
pub mod names;
pub mod timefmt;
pub mod types;
pub mod value;
