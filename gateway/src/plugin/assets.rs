//! Read-only files plugins may read: reference data (a GeoIP database, a
//! lookup table) that the operator places in the asset folder and a
//! project's plugin configuration names. Each file is loaded once and
//! shared by every call; a changed file is loaded again.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// An open asset: the whole file, shared.
#[derive(Debug, Clone)]
pub struct Asset(pub Arc<[u8]>);

impl Asset {
    /// Up to `len` bytes from `offset`.
    pub fn read(&self, offset: u64, len: u32) -> Vec<u8> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.0.len());
        let end = start.saturating_add(len as usize).min(self.0.len());
        self.0[start..end].to_vec()
    }
}

pub struct Assets {
    dir: PathBuf,
    loaded: Mutex<HashMap<PathBuf, (Option<SystemTime>, Asset)>>,
}

impl Assets {
    pub fn new(dir: PathBuf) -> Assets {
        Assets { dir, loaded: Mutex::default() }
    }

    /// The asset at `path` inside the folder. Absolute paths, `..` and
    /// links that lead outside the folder are refused.
    pub fn open(&self, path: &str) -> Result<Asset, String> {
        let relative = Path::new(path);
        if path.is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(format!("asset path {path:?} must be relative to the asset folder, without .."));
        }
        let dir = self.dir.canonicalize().map_err(|e| format!("the asset folder {}: {e}", self.dir.display()))?;
        let full = dir.join(relative).canonicalize().map_err(|e| format!("asset {path:?}: {e}"))?;
        if !full.starts_with(&dir) {
            return Err(format!("asset {path:?} leads outside the asset folder"));
        }
        let modified = std::fs::metadata(&full).and_then(|m| m.modified()).ok();
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((when, asset)) = loaded.get(&full)
            && *when == modified
        {
            return Ok(asset.clone());
        }
        let bytes = std::fs::read(&full).map_err(|e| format!("asset {path:?}: {e}"))?;
        let asset = Asset(Arc::from(bytes));
        loaded.insert(full, (modified, asset.clone()));
        Ok(asset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_the_folder_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("geo")).expect("mkdir");
        std::fs::write(dir.path().join("geo/db.mmdb"), b"0123456789").expect("write");
        std::fs::write(dir.path().join("../outside-weir-asset"), b"secret").ok();
        let assets = Assets::new(dir.path().to_owned());
        let asset = assets.open("geo/db.mmdb").expect("open");
        assert_eq!(asset.read(2, 3), b"234");
        assert_eq!(asset.read(8, 100), b"89");
        assert!(asset.read(100, 1).is_empty());
        for bad in ["", "/etc/passwd", "../outside-weir-asset", "geo/../../x", "missing"] {
            assert!(assets.open(bad).is_err(), "{bad} opened");
        }
    }
}
