//! The running gateway: every part built once from the configuration. This
//! is the one place that turns backend URLs into implementations.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::batch::compaction::Compactor;
use crate::batch::janitor::Janitor;
use crate::batch::loader::Loader;
use crate::batch::warehouse::Warehouse;
use crate::cluster::master::{Intervals, MasterWork};
use crate::config::Config;
use crate::ingest::Ingestor;
use crate::keys::KeyService;
use crate::log::{self, EventLog};
use crate::metadata::{self, MetadataStore};
use crate::plugin::Plugins;
use crate::query::engine::{DataFusionEngine, MemorySettings, PrestoEngine, QueryEngine, TableSync};
use crate::query::lanes::Lanes;
use crate::schema::SchemaRegistry;
use crate::schema::names;
use crate::users::{self, Users};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
    #[error(transparent)]
    Log(#[from] log::Error),
    #[error(transparent)]
    Columnar(#[from] crate::batch::warehouse::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("cannot create the data folder {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Plugin(#[from] crate::plugin::Error),
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error("query engine: {0}")]
    Engine(#[from] crate::query::engine::EngineError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),
    #[error(transparent)]
    Users(#[from] users::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub struct App {
    pub config: Config,
    pub store: Arc<dyn MetadataStore>,
    pub log: Arc<dyn EventLog>,
    pub keys: KeyService,
    pub ingest: Ingestor,
    pub loader: Arc<Loader>,
    /// The batch loop, compaction and the janitor, while this node leads.
    pub master: Arc<MasterWork>,
    pub engine: Arc<dyn QueryEngine>,
    /// Where queries run.
    pub queries: Lanes,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::http::proxies::Cidr>,
    pub plugins: Arc<Plugins>,
    pub users: Arc<Users>,
    pub streams: Arc<crate::stream::Streams>,
    pub crm: crate::crm::Crm,
    /// Statements of the Trino protocol in flight.
    pub trino: Arc<crate::query::trino::Statements>,
    /// Materialized views' refreshes in flight here.
    pub views: crate::views::Views,
    /// What keeps continuous queries current and answers them.
    pub continuous: Arc<crate::views::continuous::Continuous>,
    /// When this gateway started.
    pub started: std::time::Instant,
}

impl App {
    pub async fn build(config: Config) -> Result<App> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| Error::DataDir { path: config.data_dir.display().to_string(), source })?;
        let store = metadata::open(&config.metadata_url()).await?;
        let settings = log::LogSettings { file: &config.file_log, kafka: &config.kafka };
        let log = log::open(&config.log_url(), settings, store.clone()).await?;
        let keys = KeyService::new(store.clone(), Duration::from_millis(config.projects.key_cache_ms));
        let registry = Arc::new(SchemaRegistry::new(store.clone()));
        let warehouse = Warehouse::open(&config.warehouse_url(), &config.s3)?;
        let users = Arc::new(Users::new(
            users::open(&config.users_url()).await?,
            store.clone(),
            registry.clone(),
            config.projects.max_fields,
        ));
        let memory = MemorySettings::from_config(&config.query, &config.data_dir);
        let (engine, table_sync) = open_engine(&config, &store, &warehouse, &users, &memory)?;
        let queries = Lanes::new(config.query.lane_settings()).map_err(Error::Serve)?;
        // Continuous queries' states are the embedded engine's, whichever
        // engine answers queries.
        let folding = Arc::new(DataFusionEngine::new(store.clone(), warehouse.clone(), users.clone(), &memory)?);
        let continuous = crate::views::continuous::Continuous::new(store.clone(), folding, warehouse.clone());
        let mut loader = Loader::new(log.clone(), store.clone(), registry.clone(), warehouse, config.batch.max_records)
            .with_fold(Arc::new(crate::views::continuous::Folder(continuous.clone())))
            .with_dedup_window(config.batch.dedup_window_ms);
        if let Some(sync) = &table_sync {
            loader = loader.with_listener(sync.clone());
        }
        let loader = Arc::new(loader);
        let asset_dir = config.plugins.asset_dir.clone().unwrap_or_else(|| config.data_dir.join("plugin-assets"));
        let plugins = Arc::new(Plugins::new(config.plugins.clone(), asset_dir, store.clone())?);
        plugins.refresh_all().await?;
        let crm = crate::crm::Crm::new(store.clone(), config.crm.clone());
        let streams = crate::stream::Streams::new(log.clone(), registry.clone(), config.stream.clone());
        let ingest = Ingestor::new(registry, log.clone())
            .with_backlog(loader.backlog())
            .with_plugins(plugins.clone())
            .with_max_fields(config.projects.max_fields);
        let trusted_proxies = config.trusted_proxies()?;
        let trino = crate::query::trino::Statements::new(config.trino.clone());
        let election = crate::cluster::open(
            &config.election,
            crate::cluster::ElectionSettings {
                single: &config.single,
                zookeeper: &config.zookeeper,
                shared_log: log.shared(),
            },
            store.clone(),
            &config.data_dir,
        )
        .await?;
        let batch = &config.batch;
        let mut compactor = Compactor::new(store.clone(), loader.warehouse().clone(), batch.compact_min_files);
        if let Some(sync) = &table_sync {
            compactor = compactor.with_listener(sync.clone());
            let sync = sync.clone();
            tokio::spawn(async move { sync.sync_all().await });
        }
        let compactor = Arc::new(compactor);
        // No running query may lose a file: the grace outlasts the longest.
        let grace = Duration::from_millis(batch.compact_grace_ms.max(config.query.timeout_s * 2_000));
        let janitor = Arc::new(Janitor::new(store.clone(), loader.clone(), grace));
        let intervals = Intervals {
            batch: Duration::from_millis(batch.interval_ms),
            compaction: Duration::from_millis(batch.compact_interval_ms.max(10)),
            janitor: Duration::from_millis(batch.janitor_interval_ms.max(10)),
        };
        let master = Arc::new(MasterWork::new(
            election,
            log.clone(),
            store.clone(),
            loader.clone(),
            compactor,
            janitor,
            intervals,
        ));
        Ok(App {
            config,
            store,
            log,
            keys,
            ingest,
            loader,
            master,
            engine,
            queries,
            trusted_proxies,
            plugins,
            users,
            streams,
            crm,
            trino,
            views: crate::views::Views::default(),
            continuous,
            started: std::time::Instant::now(),
        })
    }

    pub fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// Deletes a project: its metadata, keys, topics and users.
    pub async fn delete_project(&self, project: &str) -> Result<(), crate::ingest::IngestError> {
        self.store.delete_project(project).await?;
        if let Err(e) = self.users.store().drop_project(project).await {
            tracing::warn!(project, error = %e, "could not drop the user table of a deleted project");
        }
        self.keys.forget_project(project);
        self.ingest.registry().forget_project(project);
        if let Err(e) = self.plugins.refresh_project(project).await {
            tracing::warn!(project, error = %e, "could not unload the plugins of a deleted project");
        }
        self.streams.stop_project(project);
        {
            // Not while this process's loader is loading them.
            let _no_loads = self.loader.exclusive().await;
            self.log.delete_topics(&names::topic_name(project, "")).await?;
        }
        if let Err(e) = self.loader.warehouse().delete_prefix(project).await {
            tracing::warn!(project, error = %e, "could not delete the files of a deleted project");
        }
        Ok(())
    }
}

/// Builds the gateway and serves until SIGINT or SIGTERM. Prints the bound
/// address on standard output once it accepts connections.
/// The query engine, and what keeps a cluster's tables current when the
/// gateway manages them.
type Engines = (Arc<dyn QueryEngine>, Option<Arc<TableSync>>);

/// The query engine the configuration names, and what keeps a cluster's
/// tables current when the gateway manages them.
fn open_engine(
    config: &Config,
    store: &Arc<dyn MetadataStore>,
    warehouse: &Warehouse,
    users: &Arc<Users>,
    memory: &MemorySettings,
) -> Result<Engines> {
    let url = config.engine_url();
    if url == "datafusion" {
        let engine = DataFusionEngine::new(store.clone(), warehouse.clone(), users.clone(), memory)?;
        return Ok((Arc::new(engine), None));
    }
    let engine = Arc::new(PrestoEngine::new(&url, config.presto.clone(), config.query.max_memory_bytes)?);
    let sync = config
        .presto
        .manage_tables
        .then(|| TableSync::new(engine.clone(), store.clone(), warehouse, &config.warehouse_url()));
    Ok((engine, sync))
}

pub async fn serve(config: Config) -> Result<()> {
    let addr = config.listen_addr()?;
    let listener = TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr: addr.to_string(), source })?;
    let local = listener.local_addr().map_err(Error::Serve)?;
    if config.lock_key.is_none() {
        tracing::warn!("no lock_key is set: projects can be created and listed from loopback clients only");
        println!("weir: no lock_key is set; project creation is allowed from loopback clients only");
    }
    let app = Arc::new(App::build(config).await?);
    tracing::info!(
        metadata = %app.config.metadata_url(),
        log = %app.config.log_url(),
        warehouse = %app.config.warehouse_url(),
        "backends ready"
    );
    app.plugins.clone().spawn_poller();
    app.master.clone().spawn();
    app.spawn_view_refresher();
    let election = app.master.election().clone();
    let log = app.log.clone();
    let http = &app.config.http;
    let limits = crate::http::server::ConnectionLimits {
        max_connections: crate::http::server::connection_budget(http.max_connections, http.reserved_fds),
        header_timeout: Duration::from_millis(http.header_timeout_ms),
    };
    let router = crate::http::router(app);
    println!("weir listening on http://{local}");
    let served = crate::http::server::serve(listener, router, limits, shutdown_signal()).await.map_err(Error::Serve);
    election.close().await;
    log.close().await;
    served
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}
