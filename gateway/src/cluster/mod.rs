//! The cluster: which gateway does master work (the batch loop,
//! compaction, the janitor) and the fence that keeps a deposed master's
//! commits out whatever the election believes. [`open`] picks the election
//! from its URL; [`master::MasterWork`] runs the work while this node leads.

mod election;
pub mod master;
mod single;
mod zookeeper;

use std::path::Path;
use std::sync::Arc;

pub use election::{Election, Role};
pub use single::{SingleConfig, SingleElection};
pub use zookeeper::{ZooKeeperConfig, ZooKeeperElection};

use crate::metadata::{self, MetadataStore};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported election {0:?}: use single or zookeeper://host:port[,host:port…]/chroot")]
    UnsupportedUrl(String),
    #[error(
        "another gateway ({holder}) leads on this metadata store; it renewed its lead {ago_ms} ms ago. \
         Stop it first, or run several gateways on a shared log (Kafka)"
    )]
    AlreadyLed { holder: String, ago_ms: i64 },
    #[error(
        "election = \"zookeeper://…\" needs a log every gateway shares (log = \"kafka://…\"): \
         a master could not load what another gateway acknowledged into a log of its own"
    )]
    LocalLog,
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
    #[error("node id in {path}: {source}")]
    NodeId { path: String, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The settings of every election backend.
pub struct ElectionSettings<'a> {
    pub single: &'a SingleConfig,
    pub zookeeper: &'a ZooKeeperConfig,
    /// Whether every gateway reads the same log (Kafka), so that any of
    /// them can load what another acknowledged.
    pub shared_log: bool,
}

/// Joins the election named by `url`.
pub async fn open(
    url: &str,
    settings: ElectionSettings<'_>,
    store: Arc<dyn MetadataStore>,
    data_dir: &Path,
) -> Result<Arc<dyn Election>> {
    match url {
        "single" => Ok(SingleElection::start(store, node_id(data_dir)?, settings.single, settings.shared_log).await?),
        _ if url.starts_with("zookeeper://") => {
            if !settings.shared_log {
                return Err(Error::LocalLog);
            }
            Ok(ZooKeeperElection::start(url, settings.zookeeper, store, node_id(data_dir)?).await?)
        }
        _ => Err(Error::UnsupportedUrl(url.to_owned())),
    }
}

/// This node's name in the election: drawn once and kept in the data
/// folder, so that a restart is known as the same node.
pub fn node_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("node-id");
    let error = |source| Error::NodeId { path: path.display().to_string(), source };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    let id = format!("{}-{}", hostname(), &uuid::Uuid::new_v4().simple().to_string()[..12]);
    std::fs::write(&path, &id).map_err(error)?;
    Ok(id)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "weir".to_owned())
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
