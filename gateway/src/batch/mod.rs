//! Moving the event log into columnar storage: the batch loop, compaction,
//! and the Parquet warehouse both write to and the engine reads.

pub mod compaction;
pub mod loader;
pub mod warehouse;
