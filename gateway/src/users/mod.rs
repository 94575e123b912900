//! The user database (Rakam's `/user/*`): one table per project, a row per
//! user, a typed column per property.
//!
//! [`UserStore`] is the seam: [`open`] picks the implementation from the
//! `users` URL (by default the metadata store's database; `postgres://…`
//! for an external one, as Rakam's deployment had). Column types are kept
//! in the metadata store and inferred from values as events' are (see
//! [`Users`]); the store only holds the rows.

mod columns;
mod operation;
pub mod search;
mod service;
mod sql;

use std::sync::Arc;

use async_trait::async_trait;

use crate::schema::types::{Field, FieldType};
use crate::schema::value::{Scalar, Value};

pub use operation::{Operation, OperationKind, from_object};
pub use service::{CREATED_AT_COLUMN, ID_COLUMN, Users};
pub use sql::SqlUserStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported users URL {0:?}: use sqlite://, postgres:// or mysql://")]
    UnsupportedUrl(String),
    #[error("user database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::Error),
    /// The request cannot be applied as given (the client's mistake).
    #[error("{0}")]
    Invalid(String),
    #[error("the user database holds a corrupt value: {0}")]
    Corrupt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use crate::schema::value::Row;

/// A column set to a value (`None`: null).
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub column: Field,
    pub value: Option<Value<'static>>,
}

/// One checked write to one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub id: Scalar<'static>,
    /// The user's `created_at` if this change creates it (microseconds).
    pub created_at: i64,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    /// Creates the user if absent and sets the columns.
    Set(Vec<Assignment>),
    /// Creates the user if absent and sets the columns that are null.
    SetOnce(Vec<Assignment>),
    /// Sets the columns to null (of a user that exists).
    Unset(Vec<String>),
    /// Creates the user if absent and adds to a numeric column (null as 0).
    Increment(Assignment),
}

/// Where a project's users are.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Makes the project's table exist with these columns (`id` of
    /// `id_type` and `created_at` besides).
    async fn ensure_columns(&self, project: &str, id_type: FieldType, columns: &[Field]) -> Result<()>;
    /// Applies the changes in order, all or none; returns once they are
    /// durable.
    async fn apply(&self, project: &str, id_type: FieldType, changes: &[Change]) -> Result<()>;
    /// One user's values of `columns` (which start with `id`).
    async fn get(&self, project: &str, columns: &[Field], id: &Scalar<'_>) -> Result<Option<Row>>;
    /// Every user's values of `columns`, by id.
    async fn rows(&self, project: &str, columns: &[Field]) -> Result<Vec<Row>>;
    /// Drops the project's table.
    async fn drop_project(&self, project: &str) -> Result<()>;
}

/// Opens the user database named by `url`.
pub async fn open(url: &str) -> Result<Arc<dyn UserStore>> {
    Ok(Arc::new(SqlUserStore::connect(url).await?))
}
