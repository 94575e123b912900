//! Collection schemas: the registry of versions, inference from event
//! values, the type system, Avro encoding, and name normalization.

pub mod avro;
pub mod avro_import;
pub mod infer;
pub mod names;
mod registry;
pub mod timefmt;
pub mod types;
pub mod value;

pub use registry::{CollectionSchema, DeclareError, SchemaRegistry, TIME_FIELD, USER_FIELD};
