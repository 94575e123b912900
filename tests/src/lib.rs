//! Harness for end-to-end tests: the real `weir` binary, started on each
//! metadata backend against real servers, driven over HTTP, and its event
//! log read back through the [`EventLog`] trait once it has stopped.
//!
//! PostgreSQL and MariaDB come from `WEIRTEST_POSTGRES_URL` and
//! `WEIRTEST_MYSQL_URL` (admin URLs; each test gets a database of its own),
//! which `scripts/test.sh` sets after starting the servers. The Kafka
//! backend starts a broker of its own per test from `WEIRTEST_TANSU`.

pub mod broker;

pub mod lossy;
pub mod mmdb;
pub mod sse;
pub mod zookeeper;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use weir_gateway::batch::warehouse::{S3Config, Warehouse};
use weir_gateway::log::LogSettings;
use weir_gateway::log::file::FileLogConfig;
use weir_gateway::log::kafka::KafkaLogConfig;
use weir_gateway::metadata::{self, MetadataStore};
use weir_gateway::schema::avro;
pub use weir_sdk::{BatchOutcome, Client, Response};

/// A deployment to run a suite on: the embedded log with each metadata
/// store, and the cluster's Kafka log (with PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
    Kafka,
}

/// Generates one `#[tokio::test]` per backend for each named test function,
/// each of which takes a [`Backend`]: `on_every_backend!(a, b);`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::Backend::Postgres).await } )*
        }
        mod mysql {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::Backend::MySql).await } )*
        }
        mod kafka {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::Backend::Kafka).await } )*
        }
    };
}

fn random_suffix() -> String {
    use rand::Rng as _;
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(12).map(|c| char::from(c).to_ascii_lowercase()).collect()
}

impl Backend {
    /// A fresh, empty metadata database for one test.
    pub async fn fresh_metadata_url(self, dir: &Path) -> String {
        match self {
            Backend::Sqlite => format!("sqlite://{}", dir.join("metadata.db").display()),
            Backend::Postgres | Backend::Kafka => create_database("WEIRTEST_POSTGRES_URL").await,
            Backend::MySql => create_database("WEIRTEST_MYSQL_URL").await,
        }
    }
}

/// The bucket the S3-compatible server `scripts/test.sh` starts holds the
/// Kafka backend's warehouses, one prefix each.
const S3_BUCKET: &str = "weir-tests";

/// The settings of the S3-compatible server `scripts/test.sh` starts
/// (`WEIRTEST_S3`, its endpoint), as a gateway's `[s3]` table.
pub fn s3_config() -> Option<S3Config> {
    let endpoint = std::env::var("WEIRTEST_S3").ok()?;
    Some(S3Config {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        access_key_id: Some("weir".into()),
        secret_access_key: Some("weir-secret".into()),
        allow_http: true,
    })
}

impl Backend {
    /// A fresh, empty warehouse for one test: on the Kafka backend a prefix
    /// of its own on S3 (when `WEIRTEST_S3` names a server), else a folder.
    pub fn fresh_warehouse(self, dir: &Path) -> Warehouse {
        match (self, s3_config()) {
            (Backend::Kafka, Some(s3)) => {
                Warehouse::open(&format!("s3://{S3_BUCKET}/{}", random_suffix()), &s3).expect("S3 warehouse")
            }
            _ => Warehouse::open(&format!("file://{}", dir.join("warehouse").display()), &S3Config::default())
                .expect("warehouse"),
        }
    }
}

async fn create_database(var: &str) -> String {
    let admin = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with scripts/test.sh, which starts PostgreSQL and MariaDB")
    });
    sqlx::any::install_default_drivers();
    let name = format!("weir_{}", random_suffix());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connect to {var}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    let (base, _) = admin.rsplit_once('/').expect("admin URL ends in /<database>");
    format!("{base}/{name}")
}

/// The `weir` binary built beside this test.
pub fn weir_binary() -> PathBuf {
    if let Ok(path) = std::env::var("WEIR_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target folder");
    let bin = dir.join("weir");
    assert!(bin.exists(), "{} is missing: run `cargo build -p weir-gateway --bin weir` first", bin.display());
    bin
}

/// The bytes of a component built from `plugins/` (`crate_name` with `-`
/// as `_`), from `WEIRTEST_PLUGINS_DIR` or the target folder beside this
/// test (`scripts/test.sh` builds them).
pub fn plugin_component(crate_name: &str) -> Vec<u8> {
    let dir = match std::env::var("WEIRTEST_PLUGINS_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => {
            let exe = std::env::current_exe().expect("current_exe");
            let target = exe.parent().and_then(Path::parent).and_then(Path::parent).expect("target folder");
            target.join("wasm32-wasip2").join("release")
        }
    };
    let path = dir.join(format!("{}.wasm", crate_name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the plugins with `cd plugins && cargo build --release --target wasm32-wasip2`",
            path.display()
        )
    })
}

/// Options for starting a gateway.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra `WEIR_*` settings.
    pub env: Vec<(String, String)>,
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// A limit on the process's open files (soft and hard), set with
    /// `prlimit`.
    pub max_open_files: Option<u64>,
}

/// A running `weir serve`.
pub struct Gateway {
    child: Option<Child>,
    pub client: Client,
    pub data_dir: PathBuf,
    pub metadata_url: String,
    /// The event log's URL.
    pub log_url: String,
    /// The gateway's own Kafka broker, on the Kafka backend (shared with
    /// its siblings).
    pub broker: Option<std::sync::Arc<broker::Broker>>,
    options: Options,
    _dir: Option<tempfile::TempDir>,
}

/// A project's keys.
#[derive(Debug, Clone)]
pub struct Keys {
    pub master: String,
    pub read: String,
    pub write: String,
}

impl Gateway {
    /// Starts a gateway with a fresh data folder and metadata database.
    pub async fn start(backend: Backend) -> Gateway {
        Self::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, options: Options) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let metadata_url = backend.fresh_metadata_url(dir.path()).await;
        let data_dir = dir.path().to_owned();
        let broker = match backend {
            Backend::Kafka => Some(std::sync::Arc::new(broker::Broker::start().await)),
            _ => None,
        };
        let mut gw = Self::spawn(data_dir, metadata_url, broker, options).await;
        gw._dir = Some(dir);
        gw
    }

    /// Starts another gateway on the same metadata store (and broker), with
    /// a data folder of its own.
    pub async fn sibling(&self, options: Options) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut gw = Self::spawn(dir.path().to_owned(), self.metadata_url.clone(), self.broker.clone(), options).await;
        gw._dir = Some(dir);
        gw
    }

    async fn spawn(
        data_dir: PathBuf,
        metadata_url: String,
        broker: Option<std::sync::Arc<broker::Broker>>,
        mut options: Options,
    ) -> Gateway {
        let log_url = match &broker {
            Some(b) => {
                // The broker's settings first, so that a test's own win.
                let mut env = b.gateway_env();
                env.extend(shared_election(&metadata_url));
                env.extend(shared_warehouse(&metadata_url));
                env.append(&mut options.env);
                options.env = env;
                b.url()
            }
            None => format!("file://{}", data_dir.join("log").display()),
        };
        let (child, base) = launch(&data_dir, &metadata_url, &options, "127.0.0.1:0").await;
        Gateway {
            child: Some(child),
            client: Client::new(&base).expect("client"),
            data_dir,
            metadata_url,
            log_url,
            broker,
            options,
            _dir: None,
        }
    }

    /// A log topic's name for Kafka consumers (and in Schema Registry
    /// subjects): with the gateway's topic prefix on the Kafka log.
    pub fn broker_topic(&self, topic: &str) -> String {
        match &self.broker {
            Some(_) => format!("{}{topic}", weir_gateway::log::kafka::KafkaLogConfig::default().topic_prefix),
            None => topic.to_owned(),
        }
    }

    pub fn base(&self) -> &str {
        self.client.base()
    }

    /// The process id of the running gateway.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(Child::id).expect("the gateway is running")
    }

    /// What the gateway wrote to standard error so far.
    /// The gateway's warehouse, opened beside it.
    pub fn warehouse(&self) -> Warehouse {
        let url = (self.options.env.iter().rev().find(|(k, _)| k == "WEIR_WAREHOUSE").map(|(_, v)| v.clone()))
            .unwrap_or_else(|| format!("file://{}", self.data_dir.join("warehouse").display()));
        let s3 = if url.starts_with("s3://") { s3_config().expect("WEIRTEST_S3") } else { S3Config::default() };
        Warehouse::open(&url, &s3).expect("warehouse")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("weir.stderr")).unwrap_or_default()
    }

    /// `kill -9`: no chance to flush or clean up.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill -9");
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
            match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
                Ok(status) => {
                    let status = status.expect("wait");
                    assert!(status.success(), "weir exited with an error ({status}):\n{}", self.stderr());
                }
                Err(_) => {
                    child.kill().await.expect("kill");
                    panic!("weir did not stop within 20 s of SIGTERM");
                }
            }
        }
    }

    /// Starts the gateway again on the same data folder and metadata store,
    /// on the same address.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the gateway before restarting it");
        let addr = self.base().trim_start_matches("http://").to_owned();
        let (child, _) = launch(&self.data_dir, &self.metadata_url, &self.options, &addr).await;
        self.child = Some(child);
    }

    /// [`Gateway::restart`] with other options (the broker's settings kept).
    pub async fn restart_with(&mut self, mut options: Options) {
        if let Some(broker) = &self.broker {
            let mut env = broker.gateway_env();
            env.extend(shared_election(&self.metadata_url));
            env.extend(shared_warehouse(&self.metadata_url));
            env.append(&mut options.env);
            options.env = env;
        }
        self.options = options;
        self.restart().await;
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Response {
        self.client.post(path, headers, body).await.expect("request")
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<bytes::Bytes>,
    ) -> Response {
        self.client.send(method, path, headers, body).await.expect("request")
    }

    /// Uploads a component as a plugin of the project; `params` is the rest
    /// of the query string (`hook=enrich&on_error=pass`...). Answers the
    /// response as it came.
    pub async fn upload_plugin(&self, master: &str, name: &str, params: &str, component: Vec<u8>) -> Response {
        let path = format!("/plugin/upload?name={name}&{params}");
        self.send("POST", &path, &[("master_key", master), ("content-type", "application/wasm")], component).await
    }

    /// Creates a project from loopback (no lock key configured).
    pub async fn create_project(&self, name: &str) -> Keys {
        let r = self.post("/project/create", &[], &json!({"name": name})).await;
        assert_eq!(r.status, 200, "create project: {}", r.text());
        keys_of(&r.json())
    }

    /// Stops the gateway and reads every event in its log.
    pub async fn stop_and_read(&mut self) -> Vec<LoggedEvent> {
        self.stop().await;
        read_log(&self.log_url, &self.metadata_url).await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// CPU seconds a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

/// Waits (up to 20 s) for a process to use almost no CPU for two seconds:
/// no query runs on in it.
pub async fn goes_quiet(pid: u32) {
    let mut spent = f64::MAX;
    for _ in 0..10 {
        let before = cpu_seconds(pid);
        tokio::time::sleep(Duration::from_secs(2)).await;
        spent = cpu_seconds(pid) - before;
        if spent < 0.5 {
            return;
        }
    }
    panic!("the process used {spent} CPU seconds in 2 s after its queries were stopped");
}

pub fn keys_of(v: &Value) -> Keys {
    let get = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}")).to_owned();
    Keys { master: get("master_key"), read: get("read_key"), write: get("write_key") }
}

/// On a shared log, gateways elect their master with the ZooKeeper server
/// `scripts/test.sh` starts (`WEIRTEST_ZOOKEEPER`), so that every suite on
/// the Kafka backend runs on the ZooKeeper election too; gateways on one
/// metadata store share a chroot.
fn shared_election(metadata_url: &str) -> Vec<(String, String)> {
    let Ok(hosts) = std::env::var("WEIRTEST_ZOOKEEPER") else { return Vec::new() };
    let chroot = database_name(metadata_url);
    vec![
        ("WEIR_ELECTION".into(), format!("zookeeper://{hosts}/weir-tests/{chroot}")),
        ("WEIR_ZOOKEEPER__SESSION_TIMEOUT_MS".into(), "2000".into()),
    ]
}

/// On a shared log, gateways keep their files on the S3-compatible server
/// `scripts/test.sh` starts (`WEIRTEST_S3`), so that every suite on the
/// Kafka backend runs on S3 too; gateways on one metadata store share a
/// prefix.
fn shared_warehouse(metadata_url: &str) -> Vec<(String, String)> {
    let Some(s3) = s3_config() else { return Vec::new() };
    let mut env = vec![
        ("WEIR_WAREHOUSE".into(), format!("s3://{S3_BUCKET}/{}", database_name(metadata_url))),
        ("WEIR_S3__ALLOW_HTTP".into(), "true".into()),
    ];
    for (key, value) in [
        ("ENDPOINT", s3.endpoint),
        ("REGION", s3.region),
        ("ACCESS_KEY_ID", s3.access_key_id),
        ("SECRET_ACCESS_KEY", s3.secret_access_key),
    ] {
        env.extend(value.map(|v| (format!("WEIR_S3__{key}"), v)));
    }
    env
}

/// A metadata database's name, as letters and digits.
fn database_name(metadata_url: &str) -> String {
    metadata_url.rsplit('/').next().unwrap_or("weir").chars().filter(char::is_ascii_alphanumeric).collect()
}

async fn launch(data_dir: &Path, metadata_url: &str, options: &Options, listen: &str) -> (Child, String) {
    let mut command = match options.max_open_files {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg("--").arg(weir_binary());
            c
        }
        None => Command::new(weir_binary()),
    };
    command
        .arg("serve")
        .arg("--listen")
        .arg(listen)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--metadata")
        .arg(metadata_url)
        .args(&options.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data_dir.join("weir.stderr"))
                .expect("stderr file"),
        )
        .kill_on_drop(true);
    for (key, _) in std::env::vars() {
        if key.starts_with("WEIR_") {
            command.env_remove(key);
        }
    }
    command.env("RUST_LOG", std::env::var("WEIRTEST_LOG").unwrap_or_else(|_| "warn".into()));
    for (k, v) in &options.env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn weir");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(addr) = line.strip_prefix("weir listening on ") {
                return addr.to_owned();
            }
        }
        let log = std::fs::read_to_string(data_dir.join("weir.stderr")).unwrap_or_default();
        panic!("weir exited before listening:\n{log}");
    })
    .await
    .expect("weir did not start listening within 60 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    // Wait until it answers.
    let client = Client::new(&base).expect("client");
    for _ in 0..100 {
        // 503 is an answer too: the log may be down on purpose.
        if client.send("GET", "/health", &[], "").await.is_ok_and(|r| r.status == 200 || r.status == 503) {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("weir at {base} does not answer /health");
}

/// An event read back from the log.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub topic: String,
    pub collection: String,
    pub partition: u32,
    pub offset: u64,
    pub schema_id: u32,
    /// Every field of the collection's newest schema, as JSON.
    pub fields: Map<String, Value>,
}

/// Reads every record of a stopped gateway's log, decoded with the schemas
/// in its metadata store. Records of voided appends are left out, as the
/// batch loop leaves them out.
pub async fn read_log(log_url: &str, metadata_url: &str) -> Vec<LoggedEvent> {
    let store = metadata::open(metadata_url).await.expect("open metadata");
    // Every append of a stopped gateway is decided: no need to wait for
    // the Kafka log's settle time, only for its shortest read delay.
    let kafka = KafkaLogConfig { delivery_timeout_ms: 100, settle_ms: 0, ..KafkaLogConfig::default() };
    let settings = LogSettings { file: &FileLogConfig::default(), kafka: &kafka };
    let log = weir_gateway::log::open(log_url, settings, store.clone()).await.expect("open log");
    tokio::time::sleep(log.read_delay()).await;
    let mut events = Vec::new();
    for topic in log.topics().await.expect("topics") {
        let (project, collection) = weir_gateway::schema::names::split_topic(&topic.name).expect("topic name");
        let latest = store.latest_schema(project, &collection).await.expect("schema").expect("a schema for the topic");
        for partition in 0..topic.partitions {
            let mut from = 0;
            loop {
                let batch = log.read(&topic.name, partition, from, 10_000).await.expect("read");
                for record in &batch.records {
                    events.push(decode(&*store, &topic.name, &collection, partition, record, &latest.fields).await);
                }
                if batch.resume_at <= from {
                    break;
                }
                from = batch.resume_at;
            }
        }
    }
    events
}

async fn decode(
    store: &dyn MetadataStore,
    topic: &str,
    collection: &str,
    partition: u32,
    record: &weir_gateway::log::StoredRecord,
    reader: &[weir_gateway::schema::types::Field],
) -> LoggedEvent {
    let (schema_id, body) = avro::split_header(&record.value).expect("wire header");
    let writer = store.schema_by_id(i64::from(schema_id)).await.expect("schema").expect("writer schema");
    assert_eq!(writer.collection, collection, "record of {topic} written with another collection's schema");
    let values = avro::decode(body, &writer.fields, reader).expect("avro");
    let fields =
        reader.iter().zip(values).map(|(f, v)| (f.name.clone(), v.map_or(Value::Null, |v| v.to_json()))).collect();
    LoggedEvent {
        topic: topic.to_owned(),
        collection: collection.to_owned(),
        partition,
        offset: record.offset,
        schema_id,
        fields,
    }
}

/// The events of one collection.
pub fn of(events: &[LoggedEvent], collection: &str) -> Vec<Map<String, Value>> {
    events.iter().filter(|e| e.collection == collection).map(|e| e.fields.clone()).collect()
}
