//! Materialized views: a project's query whose answer is kept as a Parquet
//! snapshot in the warehouse and read as `materialized.<table_name>`.
//!
//! A refresh runs the view's query through the same rewrite, engine and
//! query lanes as `/query/execute`, over exactly the collection files it
//! chose, writes the answer beside the current snapshot and swaps the two
//! in one metadata transaction: a reader sees the old snapshot or the new,
//! never an empty or half one. An incremental refresh reads only the
//! collection files no earlier refresh read (the view's sources, tracked by
//! file, carried through compaction) and adds its answer to the snapshot.
//! Reads refresh a view older than its interval first (incremental views in
//! the background after their first build), and the master refreshes due
//! views ahead of readers.

mod background;
pub mod continuous;
pub mod definition;
mod read;
pub mod realtime;
mod refresh;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use read::PreparedViews;
pub use refresh::fields_of;

use crate::query::run::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("Materialized view does not exist")]
    NotFound,
    #[error("Materialized view already exists")]
    Exists,
    #[error("{0}")]
    Invalid(String),
    #[error("There is another process that updates materialized view")]
    Busy,
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::Error),
    #[error("storage: {0}")]
    Storage(#[from] crate::batch::warehouse::Error),
    #[error("a newer master has claimed the fence: epoch {0} may no longer commit")]
    Deposed(i64),
    #[error("the view's sources kept changing while it was refreshed; it will be refreshed again")]
    Conflict,
}

/// A view's refresh lock, by project and table name.
type RefreshLocks = HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

/// This process's refreshes in flight: one per view at a time.
#[derive(Default)]
pub struct Views {
    refreshing: Mutex<RefreshLocks>,
}

impl Views {
    /// The lock a refresh of the view holds.
    fn lock(&self, project: &str, table_name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refreshing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.retain(|_, lock| Arc::strong_count(lock) > 1 || lock.try_lock().is_err());
        locks.entry((project.to_owned(), table_name.to_owned())).or_default().clone()
    }
}

/// A collection's committed files, but those in `read` (a view's sources).
async fn unread_files(
    store: &dyn crate::metadata::MetadataStore,
    project: &str,
    collection: &str,
    read: &std::collections::HashSet<String>,
) -> crate::metadata::Result<Vec<String>> {
    let files = store.parquet_files(project, collection).await?;
    Ok(files.into_iter().map(|f| f.path).filter(|path| !read.contains(path)).collect())
}

/// The engine's names of a view's tables in a query's session.
fn snapshot_table(table_name: &str) -> String {
    format!("$view:{table_name}")
}

fn source_table(collection: &str) -> String {
    format!("$source:{collection}")
}

fn newer_table(table_name: &str, collection: &str) -> String {
    format!("$newer:{table_name}:{collection}")
}
