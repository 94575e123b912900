//! Configuration: one serde struct per component, read from defaults, then
//! an optional TOML file, then `WEIR_*` environment variables (`__`
//! separates nesting: `WEIR_FILE_LOG__SEGMENT_BYTES`), then command-line
//! flags. Validated and turned into ready parts once, at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::log::file::FileLogConfig;
use crate::log::kafka::KafkaLogConfig;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on (`host:port`; port 0 picks a free one).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Folder where the embedded backends keep their data.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Key that guards `/project/create` and `/project/list`. Without one,
    /// only loopback clients may use them.
    #[serde(default)]
    pub lock_key: Option<String>,
    /// Metadata store URL: `sqlite://<file>`, `postgres://…` or `mysql://…`.
    /// Default: `sqlite://<data_dir>/metadata.db`.
    #[serde(default)]
    pub metadata: Option<String>,
    /// Event log URL: `file://<folder>` or `kafka://<host:port>[,<host:port>]`.
    /// Default: `file://<data_dir>/log`.
    #[serde(default)]
    pub log: Option<String>,
    /// Columnar storage URL: `file://<folder>`. Default:
    /// `file://<data_dir>/warehouse`.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// The batch loop that moves the log into columnar storage.
    #[serde(default)]
    pub batch: BatchConfig,
    /// The Analysis API.
    #[serde(default)]
    pub query: QueryConfig,
    /// HTTP limits.
    #[serde(default)]
    pub http: HttpConfig,
    /// Project and key settings.
    #[serde(default)]
    pub projects: ProjectsConfig,
    /// Settings of the embedded file log.
    #[serde(default)]
    pub file_log: FileLogConfig,
    /// Settings of the Kafka log.
    #[serde(default)]
    pub kafka: KafkaLogConfig,
    /// The WebAssembly plugin runtime.
    #[serde(default)]
    pub plugins: crate::plugin::config::PluginsConfig,
    /// The read-only Schema Registry API (`/subjects`, `/schemas/ids/…`).
    #[serde(default)]
    pub schema_registry: SchemaRegistryConfig,
}

/// The Schema Registry API (`[schema_registry]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Whether loopback clients may read every project's schemas without a
    /// key. Others always need a project's read key.
    #[serde(default = "default_true")]
    pub open_on_loopback: bool,
}

fn default_true() -> bool {
    true
}

impl Default for SchemaRegistryConfig {
    fn default() -> Self {
        SchemaRegistryConfig { open_on_loopback: true }
    }
}

/// HTTP limits (`[http]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest body accepted by `/event/collect`, `/event/pixel` and the
    /// project endpoints, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest body accepted by `/event/batch`, in bytes (Rakam's 500,000).
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// Largest body accepted by `/event/bulk`, in bytes (the whole body is
    /// parsed in memory before anything is stored).
    #[serde(default = "default_bulk_max_bytes")]
    pub bulk_max_bytes: usize,
}

/// The batch loop (`[batch]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Milliseconds between runs of the batch loop.
    #[serde(default = "default_batch_interval_ms")]
    pub interval_ms: u64,
    /// At most this many records of one partition go into one set of files.
    #[serde(default = "default_batch_max_records")]
    pub max_records: usize,
    /// Milliseconds between compaction runs.
    #[serde(default = "default_compact_interval_ms")]
    pub compact_interval_ms: u64,
    /// A day of a collection is compacted once it has this many small files.
    #[serde(default = "default_compact_min_files")]
    pub compact_min_files: usize,
    /// Milliseconds replaced files are kept for queries still reading them.
    #[serde(default = "default_compact_grace_ms")]
    pub compact_grace_ms: u64,
}

fn default_compact_interval_ms() -> u64 {
    60_000
}
fn default_compact_min_files() -> usize {
    8
}
fn default_compact_grace_ms() -> u64 {
    300_000
}

fn default_batch_interval_ms() -> u64 {
    2_000
}
fn default_batch_max_records() -> usize {
    500_000
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            interval_ms: default_batch_interval_ms(),
            max_records: default_batch_max_records(),
            compact_interval_ms: default_compact_interval_ms(),
            compact_min_files: default_compact_min_files(),
            compact_grace_ms: default_compact_grace_ms(),
        }
    }
}

/// The Analysis API (`[query]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// A query running longer than this many seconds is stopped.
    #[serde(default = "default_query_timeout_s")]
    pub timeout_s: u64,
    /// Results larger than this many bytes of JSON are refused.
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: usize,
    /// Rows returned when the query names no LIMIT.
    #[serde(default = "default_query_limit")]
    pub default_limit: u64,
    /// The most rows any query returns.
    #[serde(default = "default_query_max_limit")]
    pub max_limit: u64,
}

fn default_query_timeout_s() -> u64 {
    60
}
fn default_max_result_bytes() -> usize {
    64 << 20
}
fn default_query_limit() -> u64 {
    50_000
}
fn default_query_max_limit() -> u64 {
    1_000_000
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout_s: default_query_timeout_s(),
            max_result_bytes: default_max_result_bytes(),
            default_limit: default_query_limit(),
            max_limit: default_query_max_limit(),
        }
    }
}

/// Project and key settings (`[projects]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectsConfig {
    /// Whether `/project/delete` may delete a project.
    #[serde(default)]
    pub allow_deletion: bool,
    /// How long a key looked up in the metadata store is trusted before it is
    /// looked up again (milliseconds). Revocation on this node takes effect
    /// at once; on other nodes within this time.
    #[serde(default = "default_key_cache_ms")]
    pub key_cache_ms: u64,
}

fn default_listen() -> String {
    "127.0.0.1:9999".to_owned()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./weir-data")
}
fn default_max_body_bytes() -> usize {
    1 << 20
}
fn default_batch_max_bytes() -> usize {
    500_000
}
fn default_bulk_max_bytes() -> usize {
    64 << 20
}
fn default_key_cache_ms() -> u64 {
    5_000
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: default_max_body_bytes(),
            batch_max_bytes: default_batch_max_bytes(),
            bulk_max_bytes: default_bulk_max_bytes(),
        }
    }
}

impl Default for ProjectsConfig {
    fn default() -> Self {
        ProjectsConfig { allow_deletion: false, key_cache_ms: default_key_cache_ms() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: default_listen(),
            data_dir: default_data_dir(),
            lock_key: None,
            metadata: None,
            log: None,
            warehouse: None,
            batch: BatchConfig::default(),
            query: QueryConfig::default(),
            http: HttpConfig::default(),
            projects: ProjectsConfig::default(),
            file_log: FileLogConfig::default(),
            kafka: KafkaLogConfig::default(),
            plugins: crate::plugin::config::PluginsConfig::default(),
            schema_registry: SchemaRegistryConfig::default(),
        }
    }
}

/// What an unset optional setting means.
fn unset_meaning(key: &str) -> &'static str {
    match key {
        "lock_key" => "(unset: loopback clients only)",
        "metadata" => "(unset: SQLite in data_dir)",
        "log" => "(unset: files in data_dir)",
        "warehouse" => "(unset: a folder in data_dir)",
        "plugins.asset_dir" => "(unset: data_dir/plugin-assets)",
        _ => "(unset)",
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(fields) if fields.is_empty() && !prefix.is_empty() => {
            rows.push((prefix.to_owned(), "(none)".to_owned()));
        }
        serde_json::Value::Object(fields) => {
            for (name, v) in fields {
                let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                flatten(&key, v, rows);
            }
        }
        serde_json::Value::Null => rows.push((prefix.to_owned(), unset_meaning(prefix).to_owned())),
        serde_json::Value::String(s) => rows.push((prefix.to_owned(), s.clone())),
        other => rows.push((prefix.to_owned(), other.to_string())),
    }
}

fn env_name(key: &str) -> String {
    format!("WEIR_{}", key.replace('.', "__").to_ascii_uppercase())
}

/// Values given on the command line; they override everything else.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl Config {
    /// Reads the configuration: defaults, the TOML file if given, `WEIR_*`
    /// variables, then the command-line overrides.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.exists() {
                return Err(Error::Invalid(format!("config file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file(file));
        }
        let figment = figment
            .merge(Env::prefixed("WEIR_").split("__").ignore(&["config"]))
            .merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        self.listen_addr()?;
        if self.lock_key.as_deref() == Some("") {
            return Err(Error::Invalid("lock_key is empty; leave it unset instead".to_owned()));
        }
        if self.http.batch_max_bytes == 0 || self.http.max_body_bytes == 0 || self.http.bulk_max_bytes == 0 {
            return Err(Error::Invalid("http body limits must be above 0".to_owned()));
        }
        if self.file_log.partitions == 0 || self.file_log.partitions > 1024 {
            return Err(Error::Invalid("file_log.partitions must be between 1 and 1024".to_owned()));
        }
        if self.batch.interval_ms < 10 || self.batch.max_records == 0 {
            return Err(Error::Invalid(
                "batch.interval_ms must be at least 10 and batch.max_records above 0".to_owned(),
            ));
        }
        if let Some(problem) = self.plugins.problem() {
            return Err(Error::Invalid(problem));
        }
        self.kafka.validate().map_err(Error::Invalid)?;
        if self.file_log.segment_bytes < 1024 {
            return Err(Error::Invalid("file_log.segment_bytes must be at least 1024".to_owned()));
        }
        Ok(())
    }

    /// Every setting with its environment variable and default, generated
    /// from the defaults so that `--help` cannot drift from the code.
    pub fn settings_table() -> String {
        let defaults = serde_json::to_value(Config::default()).unwrap_or_default();
        let mut rows = Vec::new();
        flatten("", &defaults, &mut rows);
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let env_width = rows.iter().map(|(k, _)| env_name(k).len()).max().unwrap_or(0);
        rows.iter().map(|(key, default)| format!("  {key:width$}  {:env_width$}  {default}\n", env_name(key))).collect()
    }

    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.listen.parse().map_err(|e| Error::Invalid(format!("listen address {:?}: {e}", self.listen)))
    }

    pub fn metadata_url(&self) -> String {
        self.metadata.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("metadata.db").display()))
    }

    pub fn log_url(&self) -> String {
        self.log.clone().unwrap_or_else(|| format!("file://{}", self.data_dir.join("log").display()))
    }

    pub fn warehouse_url(&self) -> String {
        self.warehouse.clone().unwrap_or_else(|| format!("file://{}", self.data_dir.join("warehouse").display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_nothing_installed() {
        let config: Config = Figment::new().extract().expect("defaults");
        assert_eq!(config.listen, "127.0.0.1:9999");
        assert_eq!(config.metadata_url(), "sqlite://./weir-data/metadata.db");
        assert_eq!(config.log_url(), "file://./weir-data/log");
        assert_eq!(config.http.batch_max_bytes, 500_000);
        assert!(!config.projects.allow_deletion);
    }

    #[test]
    fn the_settings_table_lists_every_setting_with_its_variable() {
        let table = Config::settings_table();
        for (key, env) in [
            ("listen", "WEIR_LISTEN"),
            ("lock_key", "WEIR_LOCK_KEY"),
            ("http.batch_max_bytes", "WEIR_HTTP__BATCH_MAX_BYTES"),
            ("file_log.segment_bytes", "WEIR_FILE_LOG__SEGMENT_BYTES"),
            ("projects.allow_deletion", "WEIR_PROJECTS__ALLOW_DELETION"),
            ("plugins.default_timeout_ms", "WEIR_PLUGINS__DEFAULT_TIMEOUT_MS"),
            ("plugins.asset_dir", "WEIR_PLUGINS__ASSET_DIR"),
            ("kafka.topic_prefix", "WEIR_KAFKA__TOPIC_PREFIX"),
            ("kafka.producer", "WEIR_KAFKA__PRODUCER"),
        ] {
            let line = table.lines().find(|l| l.split_whitespace().next() == Some(key)).expect(key);
            assert!(line.contains(env), "{line}");
        }
        assert!(table.contains("500000"));
        assert_eq!(table.lines().count(), 48, "{table}");
    }

    #[test]
    fn files_are_checked_for_unknown_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("weir.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\n[file_log]\nsegment_bytes = 4096\n").expect("write");
        let config = Config::load(Some(&path), &Overrides::default()).expect("load");
        assert_eq!(config.file_log.segment_bytes, 4096);
        std::fs::write(&path, "[file_log]\nsegment_size = 4096\n").expect("write");
        let err = Config::load(Some(&path), &Overrides::default()).expect_err("unknown key");
        assert!(err.to_string().contains("segment_size"), "{err}");
        let overrides = Overrides { listen: Some("nonsense".into()), ..Overrides::default() };
        assert!(Config::load(None, &overrides).is_err());
    }
}
