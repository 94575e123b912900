//! `[plugins]`: limits of the plugin runtime and defaults of each plugin.

use serde::{Deserialize, Serialize};

/// The plugin runtime (`[plugins]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Largest component accepted by `/plugin/upload`, in bytes.
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: usize,
    /// Memory cap of a plugin whose upload names none, in MiB.
    #[serde(default = "default_memory_mb")]
    pub default_memory_mb: u64,
    /// The largest memory cap an upload may ask for, in MiB.
    #[serde(default = "default_max_memory_mb")]
    pub max_memory_mb: u64,
    /// Deadline of one call (a batch, or a query) of a plugin whose upload
    /// names none, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub default_timeout_ms: u64,
    /// The longest deadline an upload may ask for, in milliseconds.
    #[serde(default = "default_max_timeout_ms")]
    pub max_timeout_ms: u64,
    /// Plugin instances alive at once, across projects; calls beyond it wait.
    #[serde(default = "default_instances")]
    pub instances: u32,
    /// Plugin calls of one project running at once; more wait. Keeps a
    /// tenant's slow plugin to its share of the cores.
    #[serde(default = "default_project_calls")]
    pub project_calls: usize,
    /// Milliseconds between checks of the metadata store for plugins
    /// changed by other gateways.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Lines a call may log; more are counted, not kept.
    #[serde(default = "default_log_lines")]
    pub log_lines: usize,
    /// Bytes a call may log.
    #[serde(default = "default_log_bytes")]
    pub log_bytes: usize,
    /// Folder of the read-only files plugins may open (a GeoIP database...).
    /// Default: `<data_dir>/plugin-assets`.
    #[serde(default)]
    pub asset_dir: Option<std::path::PathBuf>,
}

fn default_max_upload_bytes() -> usize {
    16 << 20
}
fn default_memory_mb() -> u64 {
    64
}
fn default_max_memory_mb() -> u64 {
    512
}
fn default_timeout_ms() -> u64 {
    20
}
fn default_max_timeout_ms() -> u64 {
    10_000
}
fn default_instances() -> u32 {
    128
}
fn default_project_calls() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}
fn default_poll_ms() -> u64 {
    2_000
}
fn default_log_lines() -> usize {
    100
}
fn default_log_bytes() -> usize {
    16 << 10
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            max_upload_bytes: default_max_upload_bytes(),
            default_memory_mb: default_memory_mb(),
            max_memory_mb: default_max_memory_mb(),
            default_timeout_ms: default_timeout_ms(),
            max_timeout_ms: default_max_timeout_ms(),
            instances: default_instances(),
            project_calls: default_project_calls(),
            poll_ms: default_poll_ms(),
            log_lines: default_log_lines(),
            log_bytes: default_log_bytes(),
            asset_dir: None,
        }
    }
}

impl PluginsConfig {
    /// Why the settings cannot work, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if self.default_memory_mb == 0 || self.default_memory_mb > self.max_memory_mb || self.max_memory_mb > 4096 {
            return Some("plugins.default_memory_mb must be between 1 and plugins.max_memory_mb (at most 4096)".into());
        }
        if self.default_timeout_ms == 0 || self.default_timeout_ms > self.max_timeout_ms {
            return Some("plugins.default_timeout_ms must be between 1 and plugins.max_timeout_ms".into());
        }
        if self.instances == 0 || self.instances > 10_000 {
            return Some("plugins.instances must be between 1 and 10000".into());
        }
        if self.project_calls == 0 {
            return Some("plugins.project_calls must be above 0".into());
        }
        if self.poll_ms < 100 {
            return Some("plugins.poll_ms must be at least 100".into());
        }
        if self.max_upload_bytes == 0 {
            return Some("plugins.max_upload_bytes must be above 0".into());
        }
        None
    }
}
