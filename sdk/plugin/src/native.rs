//! The host's side when a plugin is compiled natively (its unit tests, a
//! benchmark): configuration from [`testing::set_config`], log lines kept
//! for [`testing::take_log`], the system clock.

use std::cell::RefCell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

thread_local! {
    static CONFIG: RefCell<String> = RefCell::new("null".to_owned());
    static LOG: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    static ASSET_DIR: RefCell<std::path::PathBuf> = RefCell::new(std::path::PathBuf::from("."));
}

pub fn open_asset(path: &str) -> Result<Vec<u8>, String> {
    let full = ASSET_DIR.with(|d| d.borrow().join(path));
    std::fs::read(&full).map_err(|e| format!("asset {path:?}: {e}"))
}

pub fn config() -> String {
    CONFIG.with(|c| c.borrow().clone())
}

pub fn log(level: Level, message: &str) {
    LOG.with(|l| l.borrow_mut().push((level, message.to_owned())));
}

pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Running a plugin's code natively, as its unit tests do.
pub mod testing {
    pub use super::Level;

    /// Sets the configuration [`crate::config`] answers on this thread.
    pub fn set_config(config: &serde_json::Value) {
        super::CONFIG.with(|c| *c.borrow_mut() = config.to_string());
    }

    /// Sets the folder [`crate::Asset::open`] reads from on this thread.
    pub fn set_asset_dir(dir: &std::path::Path) {
        super::ASSET_DIR.with(|d| *d.borrow_mut() = dir.to_owned());
    }

    /// The lines logged on this thread since the last call.
    pub fn take_log() -> Vec<(Level, String)> {
        super::LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
}
