//! What a plugin's store holds for one call: the empty WASI context its
//! standard library links against, the memory cap, its configuration and
//! the call's log.

use std::sync::Arc;

use serde::Serialize;
use wasmtime::ResourceLimiter;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::assets::{Asset, Assets};
use super::bindings::host::{self, Level};

/// Caps on a call's log.
#[derive(Debug, Clone, Copy)]
pub struct LogCaps {
    pub lines: usize,
    pub bytes: usize,
}

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// A call's log: the lines within the caps, and how many were left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallLog {
    pub lines: Vec<LogLine>,
    pub dropped: usize,
    #[serde(skip)]
    bytes: usize,
}

impl CallLog {
    /// A production call's log goes to the gateway's log at debug level.
    pub fn forward(&self, project: &str, plugin: &str) {
        for line in &self.lines {
            tracing::debug!(project, plugin, level = line.level, "{}", line.message);
        }
    }

    fn push(&mut self, caps: LogCaps, level: &'static str, message: String) {
        if self.lines.len() >= caps.lines || self.bytes + message.len() > caps.bytes {
            self.dropped += 1;
            return;
        }
        self.bytes += message.len();
        self.lines.push(LogLine { level, message });
    }
}

/// Refuses linear memory beyond the plugin's cap, and remembers that it did
/// so the failure can be named.
#[derive(Debug)]
pub struct MemoryCap {
    pub bytes: usize,
    pub hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.bytes {
            self.hit = true;
            return Err(wasmtime::format_err!("the plugin's memory cap of {} MiB was reached", self.bytes >> 20));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The state of one call's store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub memory: MemoryCap,
    config: Arc<str>,
    log: CallLog,
    caps: LogCaps,
    stderr: MemoryOutputPipe,
    assets: Arc<Assets>,
}

impl HostState {
    pub fn new(memory_bytes: usize, config: Arc<str>, caps: LogCaps, assets: Arc<Assets>) -> HostState {
        // No preopened folders, no environment, no arguments, no sockets:
        // the defaults of an empty WASI context. Standard error is kept for
        // the call's log (a panic's message lands there).
        let stderr = MemoryOutputPipe::new(caps.bytes);
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap { bytes: memory_bytes, hit: false },
            config,
            log: CallLog::default(),
            caps,
            stderr,
            assets,
        }
    }

    /// The call's log, with what the plugin wrote to standard error last.
    pub fn into_log(self) -> CallLog {
        let mut log = self.log;
        let stderr = self.stderr.contents();
        if !stderr.is_empty() {
            for line in String::from_utf8_lossy(&stderr).lines().filter(|l| !l.trim().is_empty()) {
                log.push(self.caps, "stderr", line.to_owned());
            }
        }
        log
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log.push(self.caps, level, message);
    }

    fn config(&mut self) -> String {
        self.config.to_string()
    }

    fn now_millis(&mut self) -> u64 {
        u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
    }

    fn open_asset(&mut self, path: String) -> Result<Resource<Asset>, String> {
        let asset = self.assets.open(&path)?;
        self.table.push(asset).map_err(|e| format!("too many open assets: {e}"))
    }
}

impl host::HostAsset for HostState {
    fn size(&mut self, asset: Resource<Asset>) -> u64 {
        self.table.get(&asset).map_or(0, |a| a.0.len() as u64)
    }

    fn read(&mut self, asset: Resource<Asset>, offset: u64, len: u32) -> Vec<u8> {
        self.table.get(&asset).map_or_else(|_| Vec::new(), |a| a.read(offset, len))
    }

    fn drop(&mut self, asset: Resource<Asset>) -> wasmtime::Result<()> {
        self.table.delete(asset)?;
        Ok(())
    }
}

impl super::bindings::types::Host for HostState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_what_fits_and_counts_the_rest() {
        let caps = LogCaps { lines: 2, bytes: 10 };
        let mut log = CallLog::default();
        log.push(caps, "info", "12345".into());
        log.push(caps, "info", "1234567".into());
        log.push(caps, "info", "12".into());
        log.push(caps, "info", "3".into());
        assert_eq!(log.lines.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["12345", "12"]);
        assert_eq!(log.dropped, 2);
    }

    #[test]
    fn memory_beyond_the_cap_is_refused() {
        let mut cap = MemoryCap { bytes: 1 << 20, hit: false };
        assert!(cap.memory_growing(0, 1 << 20, None).is_ok_and(|ok| ok));
        assert!(!cap.hit);
        assert!(cap.memory_growing(1 << 20, 2 << 20, None).is_err());
        assert!(cap.hit);
    }
}
