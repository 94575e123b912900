//! Moving the event log into columnar storage: the batch loop, compaction,
//! the janitor, and the Parquet warehouse they write to and the engine
//! reads.

pub mod compaction;
pub mod janitor;
pub mod loader;
pub mod warehouse;
