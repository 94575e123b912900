//! The Analysis API's query path: the per-project rewrite and the engine.

pub mod engine;
pub mod result;
pub mod rewrite;
