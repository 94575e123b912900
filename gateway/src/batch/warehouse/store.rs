//! Where Parquet files go: an `object_store` location chosen by URL, a
//! local folder (`file://`, the default) or S3 (`s3://bucket/prefix`). A
//! local folder is also fsynced, since `object_store` only renames a
//! finished temporary file into place. Paths are relative to the
//! warehouse's root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use super::s3::{self, S3Config};
use super::{Error, Result};

/// Files larger than this go to S3 in parts of this size (S3 takes at most
/// 5 GB in one request and retries a failed request whole).
pub const PART_BYTES: usize = 8 << 20;

/// The URL the query engine reads the warehouse under (its object store
/// registry keys stores by scheme and host).
pub const ENGINE_URL: &str = "warehouse://weir";

#[derive(Clone)]
pub struct Warehouse {
    store: Arc<dyn ObjectStore>,
    /// The store the query engine reads, and the prefix of the warehouse's
    /// files in it (empty or ending in `/`).
    engine_store: Arc<dyn ObjectStore>,
    engine_prefix: String,
    /// The folder of a local warehouse.
    local_root: Option<PathBuf>,
    url: String,
}

impl Warehouse {
    /// Opens the warehouse at `url`; `s3` holds the settings of an S3 one.
    pub fn open(url: &str, s3: &S3Config) -> Result<Warehouse> {
        match url.split_once("://") {
            Some(("file", path)) if !path.is_empty() => {
                let root = PathBuf::from(path);
                std::fs::create_dir_all(&root).map_err(io(&root))?;
                let root = root.canonicalize().map_err(io(&root))?;
                let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&root)?);
                Ok(Warehouse {
                    engine_store: store.clone(),
                    engine_prefix: String::new(),
                    store,
                    local_root: Some(root),
                    url: url.to_owned(),
                })
            }
            Some(("s3", rest)) => {
                let (store, engine_store, engine_prefix) = s3::open(url, rest, s3)?;
                Ok(Warehouse { store, engine_store, engine_prefix, local_root: None, url: url.to_owned() })
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

    /// The store the query engine reads under [`ENGINE_URL`].
    pub fn engine_store(&self) -> &Arc<dyn ObjectStore> {
        &self.engine_store
    }

    /// Where the query engine finds a file: a local one by its own
    /// `file://` URL, one on S3 under [`ENGINE_URL`].
    pub fn engine_url(&self, path: &str) -> String {
        match &self.local_root {
            Some(root) => format!("file://{}", root.join(path).display()),
            None => format!("{ENGINE_URL}/{}{path}", self.engine_prefix),
        }
    }

    /// What the engine's paths start with beyond the warehouse's root.
    pub fn engine_prefix(&self) -> &str {
        &self.engine_prefix
    }

    /// Writes a whole file and returns once it is durable and complete (a
    /// large one in parts, visible only once all are in). Writing the same
    /// path again replaces the file.
    pub async fn put_durable(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        let location = ObjectPath::from(path);
        if self.local_root.is_none() && bytes.len() > PART_BYTES {
            self.put_in_parts(&location, bytes).await?;
        } else {
            self.store.put(&location, bytes.into()).await?;
        }
        if let Some(root) = &self.local_root {
            let file = root.join(path);
            let root = root.clone();
            tokio::task::spawn_blocking(move || sync_file_and_folders(&root, &file))
                .await
                .map_err(|e| Error::Io { path: e.to_string(), source: std::io::Error::other("sync task failed") })??;
        }
        Ok(())
    }

    async fn put_in_parts(&self, location: &ObjectPath, bytes: Vec<u8>) -> Result<()> {
        let upload = self.store.put_multipart(location).await?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        parts.put(bytes.into());
        if let Err(e) = parts.wait_for_capacity(0).await {
            if let Err(abort) = parts.abort().await {
                tracing::warn!(path = %location, error = %abort, "could not abort a failed upload");
            }
            return Err(e.into());
        }
        // Aborts the upload itself when the last step fails.
        parts.finish().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_or_bucketless_urls_are_refused_naming_both_forms() {
        for url in ["s3://", "s3:///prefix", "gs://bucket", "warehouse"] {
            let Err(e) = Warehouse::open(url, &S3Config::default()) else { panic!("{url} opened") };
            let message = e.to_string();
            assert!(message.contains("file://<folder>") && message.contains("s3://<bucket>"), "{url}: {message}");
        }
    }
}
