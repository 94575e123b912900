//! Moving the event log into columnar storage: the batch loop, compaction,
//! the janitor, and the Parquet warehouse they write to and the engine
//! reads.

pub mod compaction;
pub mod dedup;
pub mod janitor;
pub mod loader;
pub mod warehouse;

/// Told when a collection's committed files changed (a load or a compaction
/// committed), so that an engine's own tables over the warehouse follow.
#[async_trait::async_trait]
pub trait FilesChanged: Send + Sync {
    async fn changed(&self, project: &str, collection: &str);
}

/// Folds a load's new files into what is kept current from them (continuous
/// queries' states), before the load commits: what it returns is committed
/// in the load's transaction.
#[async_trait::async_trait]
pub trait FoldLoads: Send + Sync {
    async fn fold(
        &self,
        project: &str,
        collection: &str,
        files: &[crate::metadata::ParquetFile],
    ) -> Result<crate::metadata::Folded, String>;
    /// Forgets what a fold wrote for a load that did not commit.
    async fn discard(&self, folded: &crate::metadata::Folded);
}
