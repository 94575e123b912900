//! Columnar storage: collection rows as Arrow record batches written to
//! Parquet files in a warehouse (an `object_store` location: a local
//! folder or S3).

mod arrow_types;
mod parquet_file;
mod s3;
mod store;

pub use arrow_types::{arrow_schema, arrow_type};
pub use parquet_file::{Rows, parquet_bytes, record_batch};
pub use s3::S3Config;
pub use store::{ENGINE_URL, PART_BYTES, Warehouse};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported warehouse URL {0:?}: use file://<folder> or s3://<bucket>[/<prefix>]")]
    UnsupportedUrl(String),
    #[error("warehouse: {0}")]
    Store(#[from] object_store::Error),
    #[error("warehouse I/O on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
