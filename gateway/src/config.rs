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
    /// User database URL (`/user/*` and the `users` table in SQL):
    /// `sqlite://<file>`, `postgres://…` or `mysql://…`, one table per
    /// project. Default: the metadata store's database.
    #[serde(default)]
    pub users: Option<String>,
    /// Columnar storage URL: `file://<folder>` or `s3://<bucket>[/<prefix>]`
    /// (gateways on several hosts share it; the prefix is Weir's alone).
    /// Default: `file://<data_dir>/warehouse`.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// Query engine: `datafusion` (embedded), or a Presto/Trino cluster
    /// reading the same warehouse, `presto://user@host:port/catalog` or
    /// `trino://…` (`?ssl=true` for HTTPS). Default: `datafusion`.
    #[serde(default)]
    pub engine: Option<String>,
    /// Settings of a Presto/Trino `engine`.
    #[serde(default)]
    pub presto: crate::query::engine::PrestoConfig,
    /// Settings of `warehouse = "s3://…"`.
    #[serde(default)]
    pub s3: crate::batch::warehouse::S3Config,
    /// Who does master work (the batch loop, compaction, the janitor):
    /// `single` (this gateway; a second one on the same metadata store
    /// follows on a shared log, is refused on a log of its own) or
    /// `zookeeper://host:port[,host:port…]/chroot` (one elected master among
    /// gateways that share a Kafka log).
    #[serde(default = "default_election")]
    pub election: String,
    /// Settings of `election = "single"`.
    #[serde(default)]
    pub single: crate::cluster::SingleConfig,
    /// Settings of `election = "zookeeper://…"`.
    #[serde(default)]
    pub zookeeper: crate::cluster::ZooKeeperConfig,
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
    /// The event stream (`/stream/subscribe`).
    #[serde(default)]
    pub stream: crate::stream::StreamConfig,
    /// The CRM pass-through (`/crm/…`).
    #[serde(default)]
    pub crm: crate::crm::CrmConfig,
    /// The Trino client protocol (`/v1/statement`).
    #[serde(default)]
    pub trino: crate::query::trino::TrinoConfig,
}

/// The Schema Registry API (`[schema_registry]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Whether loopback clients may read every project's schemas without a
    /// key, where no `lock_key` is set. Others always need a project's read
    /// key.
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
    /// Largest body accepted from other SDKs (`/v1/batch`, PostHog's
    /// `/batch`, Snowplow's `tp2`), in bytes, both as sent and inflated
    /// (RudderStack's Python SDK sends batches of up to 4 MB).
    #[serde(default = "default_sdk_max_bytes")]
    pub sdk_max_bytes: usize,
    /// Connections served at once; more are answered 503 and closed. Lowered
    /// to what the file descriptor limit allows after `reserved_fds`.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// File descriptors kept from connections for the event log, the
    /// metadata store, the batch loop and queries (at most half the limit).
    #[serde(default = "default_reserved_fds")]
    pub reserved_fds: usize,
    /// Milliseconds a client has to send a request's headers, counted from
    /// the connection's start or the previous response; so also how long a
    /// kept-alive connection may sit idle.
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// Milliseconds a client has to send a request's whole body; a slower
    /// body is answered 408.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or ranges,
    /// `10.0.0.0/8`): from the connection backwards, the first address that
    /// is not a trusted proxy is the client. Empty: the connection's peer.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// The batch loop (`[batch]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Milliseconds between runs of the batch loop.
    #[serde(default = "default_batch_interval_ms")]
    pub interval_ms: u64,
    /// At most this many records of one partition are read, decoded and
    /// written at once (the batch loop's memory follows it); as many
    /// appended records also start the loop before its next tick.
    #[serde(default = "default_batch_max_records")]
    pub max_records: usize,
    /// Milliseconds between compaction runs.
    #[serde(default = "default_compact_interval_ms")]
    pub compact_interval_ms: u64,
    /// A day of a collection is compacted once it has this many small files.
    #[serde(default = "default_compact_min_files")]
    pub compact_min_files: usize,
    /// Milliseconds files no manifest names are kept before the janitor
    /// deletes them: compacted-away files from when they were replaced,
    /// leftovers from when they were written. At least twice
    /// `query.timeout_s` is kept whatever this says, so that no running
    /// query loses a file.
    #[serde(default = "default_compact_grace_ms")]
    pub compact_grace_ms: u64,
    /// Milliseconds between janitor runs.
    #[serde(default = "default_janitor_interval_ms")]
    pub janitor_interval_ms: u64,
    /// Milliseconds between the master's checks for materialized views due
    /// a refresh (a view is refreshed once three quarters of its
    /// `update_interval` have passed); 0: views are refreshed only when
    /// read or asked.
    #[serde(default = "default_views_interval_ms")]
    pub views_interval_ms: u64,
    /// Milliseconds an event's id (`_id`, or an SDK's message id) is
    /// remembered after its event was stored: an event with that id in the
    /// same collection is stored again only after this. 0 stores every
    /// event as sent.
    #[serde(default = "default_dedup_window_ms")]
    pub dedup_window_ms: u64,
}

fn default_dedup_window_ms() -> u64 {
    86_400_000
}

fn default_views_interval_ms() -> u64 {
    1_000
}

fn default_janitor_interval_ms() -> u64 {
    60_000
}

fn default_election() -> String {
    "single".to_owned()
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
    32_768
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            interval_ms: default_batch_interval_ms(),
            max_records: default_batch_max_records(),
            compact_interval_ms: default_compact_interval_ms(),
            compact_min_files: default_compact_min_files(),
            compact_grace_ms: default_compact_grace_ms(),
            janitor_interval_ms: default_janitor_interval_ms(),
            views_interval_ms: default_views_interval_ms(),
            dedup_window_ms: default_dedup_window_ms(),
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
    /// Lanes queries run on, each with threads of its own that the
    /// operating system shares the cores between (0: as many as cores,
    /// from 2 to 4).
    #[serde(default)]
    pub lanes: usize,
    /// Threads of each lane (0: as many as cores).
    #[serde(default)]
    pub threads_per_lane: usize,
    /// Queries one project runs at once; never every lane.
    #[serde(default = "default_project_concurrency")]
    pub project_concurrency: usize,
    /// Queries of one project that may wait for their turn; more are
    /// refused with 429.
    #[serde(default = "default_project_queue")]
    pub project_queue: usize,
    /// Memory one query may hold (sorts, aggregations, joins, its result,
    /// any single value), in bytes; past it the engine spills what it can
    /// to disk, and a query that still needs more is refused with 413.
    #[serde(default = "default_query_max_memory_bytes")]
    pub max_memory_bytes: usize,
    /// Memory all queries may hold together, in bytes; a query that would
    /// pass it is refused with 503.
    #[serde(default = "default_query_total_memory_bytes")]
    pub total_memory_bytes: usize,
}

impl QueryConfig {
    /// Lanes and threads, with the cores of this machine filled in.
    pub fn lane_settings(&self) -> crate::query::lanes::LaneSettings {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        crate::query::lanes::LaneSettings {
            lanes: if self.lanes == 0 { cores.clamp(2, 4) } else { self.lanes },
            threads_per_lane: if self.threads_per_lane == 0 { cores } else { self.threads_per_lane },
            project_concurrency: self.project_concurrency,
            project_queue: self.project_queue,
        }
    }
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
fn default_project_concurrency() -> usize {
    4
}
fn default_project_queue() -> usize {
    64
}
fn default_query_max_memory_bytes() -> usize {
    256 << 20
}
fn default_query_total_memory_bytes() -> usize {
    1 << 30
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout_s: default_query_timeout_s(),
            max_result_bytes: default_max_result_bytes(),
            default_limit: default_query_limit(),
            max_limit: default_query_max_limit(),
            lanes: 0,
            threads_per_lane: 0,
            project_concurrency: default_project_concurrency(),
            project_queue: default_project_queue(),
            max_memory_bytes: default_query_max_memory_bytes(),
            total_memory_bytes: default_query_total_memory_bytes(),
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
    /// Fields one collection may have; a request that would add more is
    /// refused with 400.
    #[serde(default = "default_max_fields")]
    pub max_fields: usize,
}

fn default_max_fields() -> usize {
    crate::ingest::DEFAULT_MAX_FIELDS
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
fn default_max_connections() -> usize {
    10_000
}
fn default_reserved_fds() -> usize {
    256
}
fn default_header_timeout_ms() -> u64 {
    15_000
}
fn default_body_timeout_ms() -> u64 {
    60_000
}
fn default_batch_max_bytes() -> usize {
    500_000
}
fn default_sdk_max_bytes() -> usize {
    5 << 20
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
            sdk_max_bytes: default_sdk_max_bytes(),
            max_connections: default_max_connections(),
            reserved_fds: default_reserved_fds(),
            header_timeout_ms: default_header_timeout_ms(),
            body_timeout_ms: default_body_timeout_ms(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for ProjectsConfig {
    fn default() -> Self {
        ProjectsConfig { allow_deletion: false, key_cache_ms: default_key_cache_ms(), max_fields: default_max_fields() }
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
            users: None,
            warehouse: None,
            s3: crate::batch::warehouse::S3Config::default(),
            election: default_election(),
            single: crate::cluster::SingleConfig::default(),
            zookeeper: crate::cluster::ZooKeeperConfig::default(),
            batch: BatchConfig::default(),
            query: QueryConfig::default(),
            http: HttpConfig::default(),
            projects: ProjectsConfig::default(),
            file_log: FileLogConfig::default(),
            kafka: KafkaLogConfig::default(),
            plugins: crate::plugin::config::PluginsConfig::default(),
            schema_registry: SchemaRegistryConfig::default(),
            stream: crate::stream::StreamConfig::default(),
            crm: crate::crm::CrmConfig::default(),
            trino: crate::query::trino::TrinoConfig::default(),
            engine: None,
            presto: crate::query::engine::PrestoConfig::default(),
        }
    }
}

/// What an unset optional setting means.
fn unset_meaning(key: &str) -> &'static str {
    match key {
        "lock_key" => "(unset: loopback clients only)",
        "metadata" => "(unset: SQLite in data_dir)",
        "log" => "(unset: files in data_dir)",
        "users" => "(unset: the metadata database)",
        "warehouse" => "(unset: a folder in data_dir)",
        "plugins.asset_dir" => "(unset: data_dir/plugin-assets)",
        "s3.endpoint" => "(unset: AWS_ENDPOINT, else AWS)",
        "s3.region" => "(unset: AWS_REGION, else us-east-1)",
        "s3.access_key_id" => "(unset: AWS_ACCESS_KEY_ID, else the instance's role)",
        "s3.secret_access_key" => "(unset: AWS_SECRET_ACCESS_KEY)",
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

/// Whether an environment variable's key (lowercase, nesting as `.`) names
/// a setting or an entry of one (`kafka.producer.<property>`).
fn is_setting(known: &[String], key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    known.iter().any(|k| key == *k || key.strip_prefix(k.as_str()).is_some_and(|rest| rest.starts_with('.')))
}

/// Unknown `WEIR_*` variables are not the operator's mistake alone:
/// orchestrators inject some (Kubernetes sets `WEIR_PORT`,
/// `WEIR_SERVICE_HOST`… for a service named `weir`), so they are named and
/// left alone rather than refused.
fn warn_unknown_variable(known: &[String], key: &str) {
    let variable = env_name(key);
    let closest = known.iter().map(|k| env_name(k)).min_by_key(|k| edit_distance(k, &variable));
    tracing::warn!(
        variable,
        closest = closest.as_deref().unwrap_or(""),
        "ignoring an environment variable that names no setting"
    );
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            previous = current;
        }
    }
    row[b.len()]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub election: Option<String>,
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
        let known: Vec<String> = Config::settings().into_iter().map(|(key, _)| key).collect();
        let env = Env::prefixed("WEIR_").split("__").ignore(&["config"]);
        for (key, _) in env.iter() {
            if !is_setting(&known, key.as_str()) {
                warn_unknown_variable(&known, key.as_str());
            }
        }
        let env = env.filter(move |key| is_setting(&known, key.as_str()));
        let figment = figment.merge(env).merge(Serialized::defaults(overrides));
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
        if self.http.max_connections == 0 || self.http.header_timeout_ms == 0 || self.http.body_timeout_ms == 0 {
            return Err(Error::Invalid(
                "http.max_connections, http.header_timeout_ms and http.body_timeout_ms must be above 0".to_owned(),
            ));
        }
        if self.file_log.partitions == 0 || self.file_log.partitions > 1024 {
            return Err(Error::Invalid("file_log.partitions must be between 1 and 1024".to_owned()));
        }
        if self.batch.interval_ms < 10 || self.batch.max_records == 0 {
            return Err(Error::Invalid(
                "batch.interval_ms must be at least 10 and batch.max_records above 0".to_owned(),
            ));
        }
        if self.query.max_memory_bytes < (1 << 20) || self.query.total_memory_bytes < self.query.max_memory_bytes {
            return Err(Error::Invalid(
                "query.max_memory_bytes must be at least 1 MiB and query.total_memory_bytes at least as large"
                    .to_owned(),
            ));
        }
        self.trusted_proxies()?;
        if let Some(problem) = self.plugins.problem() {
            return Err(Error::Invalid(problem));
        }
        self.kafka.validate().map_err(Error::Invalid)?;
        self.zookeeper.validate().map_err(Error::Invalid)?;
        if self.election != "single" && !self.election.starts_with("zookeeper://") {
            return Err(Error::Invalid(format!(
                "election {:?}: use single or zookeeper://host:port[,host:port…]/chroot",
                self.election
            )));
        }
        if self.file_log.segment_bytes < 1024 {
            return Err(Error::Invalid("file_log.segment_bytes must be at least 1024".to_owned()));
        }
        Ok(())
    }

    /// Every setting's key and default.
    fn settings() -> Vec<(String, String)> {
        let defaults = serde_json::to_value(Config::default()).unwrap_or_default();
        let mut rows = Vec::new();
        flatten("", &defaults, &mut rows);
        rows
    }

    /// Every setting with its environment variable and default, generated
    /// from the defaults so that `--help` cannot drift from the code.
    pub fn settings_table() -> String {
        let rows = Config::settings();
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let env_width = rows.iter().map(|(k, _)| env_name(k).len()).max().unwrap_or(0);
        rows.iter().map(|(key, default)| format!("  {key:width$}  {:env_width$}  {default}\n", env_name(key))).collect()
    }

    /// `http.trusted_proxies`, parsed.
    pub fn trusted_proxies(&self) -> Result<Vec<crate::http::proxies::Cidr>> {
        self.http
            .trusted_proxies
            .iter()
            .map(|p| p.parse().map_err(|e| Error::Invalid(format!("http.trusted_proxies: {e}"))))
            .collect()
    }

    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.listen.parse().map_err(|e| Error::Invalid(format!("listen address {:?}: {e}", self.listen)))
    }

    pub fn metadata_url(&self) -> String {
        self.metadata.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("metadata.db").display()))
    }

    pub fn users_url(&self) -> String {
        self.users.clone().unwrap_or_else(|| self.metadata_url())
    }

    pub fn log_url(&self) -> String {
        self.log.clone().unwrap_or_else(|| format!("file://{}", self.data_dir.join("log").display()))
    }

    pub fn engine_url(&self) -> String {
        self.engine.clone().unwrap_or_else(|| "datafusion".to_owned())
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
            ("kafka.fetch_wait_ms", "WEIR_KAFKA__FETCH_WAIT_MS"),
        ] {
            let line = table.lines().find(|l| l.split_whitespace().next() == Some(key)).expect(key);
            assert!(line.contains(env), "{line}");
        }
        assert!(table.contains("500000"));
        assert_eq!(table.lines().count(), 97, "{table}");
    }

    #[test]
    fn variables_are_matched_to_settings() {
        let known: Vec<String> = Config::settings().into_iter().map(|(k, _)| k).collect();
        assert!(is_setting(&known, "query.timeout_s"));
        assert!(is_setting(&known, "QUERY.TIMEOUT_S"));
        assert!(is_setting(&known, "kafka.producer.compression.type"));
        assert!(!is_setting(&known, "service_host"));
        assert!(!is_setting(&known, "port_9999_tcp"));
        assert!(!is_setting(&known, "query.timeout"));
        assert_eq!(edit_distance("WEIR_LISTN", "WEIR_LISTEN"), 1);
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
