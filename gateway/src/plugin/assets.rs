//! Read-only files plugins may read: reference data (a GeoIP database, a
//! lookup table) that the operator places in the asset folder and a
//! project's plugin configuration names. Each file is loaded once and
//! shared by every call; whether it changed is checked at most once a
//! second, so a call that opens an asset costs no file system calls.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long an opened asset is served without looking at its file again.
const RECHECK: Duration = Duration::from_secs(1);

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
    /// By the path a plugin asked for.
    loaded: Mutex<HashMap<String, Loaded>>,
}

struct Loaded {
    modified: Option<SystemTime>,
    checked: Instant,
    asset: Asset,
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
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(l) = loaded.get(path)
            && l.checked.elapsed() < RECHECK
        {
            return Ok(l.asset.clone());
        }
        let dir = self.dir.canonicalize().map_err(|e| format!("the asset folder {}: {e}", self.dir.display()))?;
        let full = dir.join(relative).canonicalize().map_err(|e| format!("asset {path:?}: {e}"))?;
        if !full.starts_with(&dir) {
            return Err(format!("asset {path:?} leads outside the asset folder"));
        }
        let modified = std::fs::metadata(&full).and_then(|m| m.modified()).ok();
        if let Some(l) = loaded.get_mut(path)
            && l.modified == modified
        {
            l.checked = Instant::now();
            return Ok(l.asset.clone());
        }
        let bytes = std::fs::read(&full).map_err(|e| format!("asset {path:?}: {e}"))?;
        let asset = Asset(Arc::from(bytes));
        loaded.insert(path.to_owned(), Loaded { modified, checked: Instant::now(), asset: asset.clone() });
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

    #[test]
    fn a_changed_file_is_read_again_after_the_recheck_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("table.bin");
        std::fs::write(&file, b"old").expect("write");
        let assets = Assets::new(dir.path().to_owned());
        assert_eq!(assets.open("table.bin").expect("open").read(0, 10), b"old");
        std::fs::write(&file, b"newer").expect("rewrite");
        // Make the change visible even on file systems with coarse times.
        let later = std::time::SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options().write(true).open(&file).and_then(|f| f.set_modified(later)).expect("touch");
        assert_eq!(assets.open("table.bin").expect("open").read(0, 10), b"old", "served from memory within a second");
        std::thread::sleep(RECHECK + Duration::from_millis(100));
        assert_eq!(assets.open("table.bin").expect("open").read(0, 10), b"newer");
    }
}
