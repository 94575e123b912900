//! Where Parquet files go: an `object_store` location chosen by URL. A
//! local folder (`file://`, the default) is also fsynced, since
//! `object_store` only renames a finished temporary file into place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::{Error, Result};

#[derive(Clone)]
pub struct Warehouse {
    store: Arc<dyn ObjectStore>,
    /// The folder of a local warehouse.
    local_root: Option<PathBuf>,
    url: String,
}

impl Warehouse {
    pub fn open(url: &str) -> Result<Warehouse> {
        match url.split_once("://") {
            Some(("file", path)) if !path.is_empty() => {
                let root = PathBuf::from(path);
                std::fs::create_dir_all(&root).map_err(io(&root))?;
                let root = root.canonicalize().map_err(io(&root))?;
                let store = LocalFileSystem::new_with_prefix(&root)?;
                Ok(Warehouse { store: Arc::new(store), local_root: Some(root), url: url.to_owned() })
            }
            _ => Err(Error::UnsupportedUrl(url.to_owned())),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The folder of a local warehouse.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Writes a whole file and returns once it is durable. Writing the same
    /// path again replaces the file.
    pub async fn put_durable(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        self.store.put(&ObjectPath::from(path), bytes.into()).await?;
        if let Some(root) = &self.local_root {
            let file = root.join(path);
            let root = root.clone();
            tokio::task::spawn_blocking(move || sync_file_and_folders(&root, &file))
                .await
                .map_err(|e| Error::Io { path: e.to_string(), source: std::io::Error::other("sync task failed") })??;
        }
        Ok(())
    }

    /// Deletes every file under a folder.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        use futures::StreamExt as _;
        let prefix = ObjectPath::from(prefix);
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            self.store.delete(&meta?.location).await?;
        }
        Ok(())
    }

    /// Every file in the warehouse, with when it was last written
    /// (milliseconds since the epoch).
    pub async fn list_all(&self) -> Result<Vec<(String, i64)>> {
        use futures::StreamExt as _;
        let mut listing = self.store.list(None);
        let mut files = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            files.push((meta.location.to_string(), meta.last_modified.timestamp_millis()));
        }
        Ok(files)
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.store.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get(&self, path: &str) -> Result<bytes::Bytes> {
        Ok(self.store.get(&ObjectPath::from(path)).await?.bytes().await?)
    }
}

/// Syncs a file and every folder from it up to the root, so that the
/// file's name is durable too.
fn sync_file_and_folders(root: &Path, file: &Path) -> Result<()> {
    std::fs::File::open(file).and_then(|f| f.sync_all()).map_err(io(file))?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        std::fs::File::open(d).and_then(|f| f.sync_all()).map_err(io(d))?;
        if d == root {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}
