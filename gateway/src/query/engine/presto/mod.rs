//! Presto and Trino, the cluster engine (`engine = "presto://…"` or
//! `"trino://…"`), through the `trino-rust-client` crate: the rewritten
//! query runs on the cluster over its tables of the same warehouse, read
//! page by page into Arrow; a query dropped at its deadline is cancelled
//! on the cluster.

mod convert;
pub mod tables;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlparser::ast::{Ident, ObjectName, Statement};
use trino_rust_client::{Client, ClientBuilder, QueryResult, Row};

use self::tables::{TableDdl, TablePlace};
use super::{EngineError, QueryEngine, QueryOutput};
use crate::batch::warehouse::Warehouse;
use crate::metadata::MetadataStore;
use crate::query::Tables;

/// The Presto/Trino engine (`[presto]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrestoConfig {
    /// A project's schema on the cluster; `{project}` stands for the
    /// project's name.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// A collection's table in it; `{collection}` stands for its name.
    #[serde(default = "default_table")]
    pub table: String,
    /// The project's user table in its schema (`users` in SQL); the
    /// operator maps it to the user database (a connector or a view).
    #[serde(default = "default_users_table")]
    pub users_table: String,
    /// Whether the gateway creates the tables and keeps them current after
    /// each load and compaction; false leaves them to the operator.
    #[serde(default = "default_manage_tables")]
    pub manage_tables: bool,
    /// How tables are made: `hive` (external tables of the Hive connector,
    /// partitioned by `_day`) or `duckdb` (views over the manifest's files,
    /// for DuckDB behind the Presto protocol).
    #[serde(default = "default_table_ddl")]
    pub table_ddl: TableDdl,
    /// The warehouse's place as the cluster reads it (`s3://bucket/prefix`,
    /// `file:///folder`); default: the warehouse's own URL.
    #[serde(default)]
    pub warehouse_location: Option<String>,
    /// The password of HTTP Basic auth (the user is the URL's).
    #[serde(default)]
    pub password: Option<String>,
}

fn default_schema() -> String {
    "{project}".to_owned()
}
fn default_table() -> String {
    "{collection}".to_owned()
}
fn default_users_table() -> String {
    "users".to_owned()
}
fn default_manage_tables() -> bool {
    true
}
fn default_table_ddl() -> TableDdl {
    TableDdl::Hive
}

impl Default for PrestoConfig {
    fn default() -> Self {
        PrestoConfig {
            schema: default_schema(),
            table: default_table(),
            users_table: default_users_table(),
            manage_tables: default_manage_tables(),
            table_ddl: default_table_ddl(),
            warehouse_location: None,
            password: None,
        }
    }
}

/// Where the cluster is: `presto://user@host:port/catalog`.
struct ClusterUrl {
    user: String,
    host: String,
    port: u16,
    catalog: String,
    secure: bool,
}

fn parse_url(text: &str) -> Result<ClusterUrl, EngineError> {
    let bad = |why: &str| EngineError::Storage(format!("engine URL {text:?}: {why}"));
    let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "presto" | "trino") {
        return Err(bad("use presto://user@host:port/catalog or trino://…"));
    }
    let catalog = url.path().trim_matches('/').to_owned();
    if catalog.is_empty() || catalog.contains('/') {
        return Err(bad("name one catalog as its path"));
    }
    let secure = url.query_pairs().any(|(k, v)| k == "ssl" && v == "true");
    Ok(ClusterUrl {
        user: if url.username().is_empty() { "weir".to_owned() } else { url.username().to_owned() },
        host: url.host_str().ok_or_else(|| bad("no host"))?.to_owned(),
        port: url.port().unwrap_or(if secure { 443 } else { 8080 }),
        catalog,
        secure,
    })
}

pub struct PrestoEngine {
    client: Arc<Client>,
    catalog: String,
    config: PrestoConfig,
    /// Bytes of answer one query may hold.
    max_bytes: usize,
}

/// Cancels a statement on the cluster unless it was read to its end.
struct CancelOnDrop {
    client: Arc<Client>,
    id: String,
    ended: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let (client, id) = (self.client.clone(), std::mem::take(&mut self.id));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = client.cancel(&id).await {
                    tracing::warn!(id, error = %e, "a statement could not be cancelled on the cluster");
                }
            });
        }
    }
}

fn cluster_error(e: trino_rust_client::error::Error) -> EngineError {
    match e {
        trino_rust_client::error::Error::Query(q) => EngineError::Query(q.message.clone()),
        other => EngineError::Storage(format!("the Presto cluster: {other}")),
    }
}

impl PrestoEngine {
    pub fn new(url: &str, config: PrestoConfig, max_bytes: usize) -> Result<Self, EngineError> {
        let cluster = parse_url(url)?;
        let mut builder = ClientBuilder::new(&cluster.user, &cluster.host)
            .port(cluster.port)
            .secure(cluster.secure)
            .catalog(&cluster.catalog)
            .source("weir");
        if let Some(password) = &config.password {
            builder = builder
                .auth(trino_rust_client::auth::Auth::new_basic(&cluster.user, Some(password)))
                .auth_http_insecure(!cluster.secure);
        }
        let client = builder.build().map_err(cluster_error)?;
        Ok(PrestoEngine { client: Arc::new(client), catalog: cluster.catalog, config, max_bytes })
    }

    fn schema(&self, project: &str) -> String {
        self.config.schema.replace("{project}", project)
    }

    fn table(&self, collection: &str) -> String {
        self.config.table.replace("{collection}", collection)
    }

    /// Runs SQL on the cluster and reads every page.
    async fn query(&self, sql: String) -> Result<QueryOutput, EngineError> {
        let mut page: QueryResult<Row> = self.client.get(sql).await.map_err(cluster_error)?;
        let mut cancel = CancelOnDrop { client: self.client.clone(), id: page.id.clone(), ended: false };
        let mut schema = None;
        let mut batches = Vec::new();
        let mut bytes = 0usize;
        loop {
            if let Some(error) = page.error.take() {
                cancel.ended = true;
                return Err(EngineError::Query(error.message));
            }
            if schema.is_none()
                && let Some(columns) = &page.columns
            {
                let columns: Vec<(String, String)> = columns.iter().map(|c| (c.name.clone(), c.ty.clone())).collect();
                schema = Some(convert::schema(&columns));
            }
            if let Some(data) = page.data.take() {
                let rows: Vec<Vec<serde_json::Value>> = data.into_vec().into_iter().map(Row::into_json).collect();
                bytes += rows.iter().flatten().map(|v| v.to_string().len()).sum::<usize>();
                if bytes > self.max_bytes {
                    return Err(EngineError::TooMuchMemory(format!(
                        "the answer is larger than {} bytes (query.max_memory_bytes)",
                        self.max_bytes
                    )));
                }
                let schema = schema.as_ref().ok_or_else(|| EngineError::Query("rows came before columns".into()))?;
                batches.push(convert::batch(schema, rows).map_err(EngineError::Query)?);
            }
            match page.next_uri.take() {
                None => break,
                Some(next) => page = self.client.get_next(&next).await.map_err(cluster_error)?,
            }
        }
        cancel.ended = true;
        let schema = schema.unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
        Ok(QueryOutput { batches, schema, views: Default::default() })
    }

    /// Makes the cluster's table of a collection current.
    pub async fn sync_table(
        &self,
        store: &dyn MetadataStore,
        location: &str,
        project: &str,
        collection: &str,
    ) -> Result<(), EngineError> {
        let Some(schema) = store.latest_schemas(project).await?.into_iter().find(|s| s.collection == collection) else {
            return Ok(());
        };
        let files: Vec<String> =
            store.parquet_files(project, collection).await?.into_iter().map(|f| join(location, &f.path)).collect();
        let folder = join(location, &format!("{project}/{collection}"));
        let (schema_name, table) = (self.schema(project), self.table(collection));
        let place = TablePlace {
            catalog: &self.catalog,
            schema: &schema_name,
            table: &table,
            location: &folder,
            files: &files,
        };
        for statement in tables::statements(self.config.table_ddl, &place, &schema.fields) {
            self.query(statement).await?;
        }
        Ok(())
    }
}

/// A warehouse path under the cluster's location of the warehouse.
fn join(location: &str, path: &str) -> String {
    format!("{}/{}", location.trim_end_matches('/'), path.trim_start_matches('/'))
}

#[async_trait]
impl QueryEngine for PrestoEngine {
    fn table_name(&self, project: &str, collection: &str) -> ObjectName {
        ObjectName::from(vec![
            Ident::with_quote('"', &self.catalog),
            Ident::with_quote('"', self.schema(project)),
            Ident::with_quote('"', self.table(collection)),
        ])
    }

    fn users_table_name(&self, project: &str) -> ObjectName {
        ObjectName::from(vec![
            Ident::with_quote('"', &self.catalog),
            Ident::with_quote('"', self.schema(project)),
            Ident::with_quote('"', &self.config.users_table),
        ])
    }

    fn derived_table_name(&self, project: &str, name: &str) -> ObjectName {
        ObjectName::from(vec![
            Ident::with_quote('"', &self.catalog),
            Ident::with_quote('"', self.schema(project)),
            Ident::with_quote('"', name),
        ])
    }

    async fn run(&self, _project: &str, tables: &Tables, statement: Statement) -> Result<QueryOutput, EngineError> {
        if !tables.derived.is_empty() {
            return Err(EngineError::Query(
                "materialized views and continuous queries are answered by the embedded engine only (engine = \"datafusion\")".to_owned(),
            ));
        }
        self.query(statement.to_string()).await
    }
}

/// Keeps the cluster's tables current: told of every load and compaction,
/// and once at start for every collection.
pub struct TableSync {
    engine: Arc<PrestoEngine>,
    store: Arc<dyn MetadataStore>,
    location: String,
}

impl TableSync {
    pub fn new(
        engine: Arc<PrestoEngine>,
        store: Arc<dyn MetadataStore>,
        warehouse: &Warehouse,
        url: &str,
    ) -> Arc<Self> {
        let location = engine.config.warehouse_location.clone().unwrap_or_else(|| match warehouse.local_root() {
            Some(root) => match engine.config.table_ddl {
                TableDdl::Duckdb => root.display().to_string(),
                TableDdl::Hive => format!("file://{}", root.display()),
            },
            None => url.to_owned(),
        });
        Arc::new(TableSync { engine, store, location })
    }

    /// Every collection of every project, once.
    pub async fn sync_all(&self) {
        let projects = match self.store.projects().await {
            Ok(p) => p,
            Err(e) => return tracing::warn!(error = %e, "the cluster's tables could not be listed"),
        };
        let mut seen = HashSet::new();
        for project in projects {
            let Ok(schemas) = self.store.latest_schemas(&project).await else { continue };
            for schema in schemas {
                if seen.insert((project.clone(), schema.collection.clone())) {
                    crate::batch::FilesChanged::changed(self, &project, &schema.collection).await;
                }
            }
        }
    }
}

#[async_trait]
impl crate::batch::FilesChanged for TableSync {
    async fn changed(&self, project: &str, collection: &str) {
        if let Err(e) = self.engine.sync_table(self.store.as_ref(), &self.location, project, collection).await {
            tracing::warn!(project, collection, error = %e, "the cluster's table could not be made current");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_urls_name_user_host_port_and_catalog() {
        let url = parse_url("trino://ana@cluster.local:8443/hive?ssl=true").expect("a URL");
        assert_eq!(
            (url.user.as_str(), url.host.as_str(), url.port, url.catalog.as_str(), url.secure),
            ("ana", "cluster.local", 8443, "hive", true)
        );
        let url = parse_url("presto://127.0.0.1/memory").expect("a URL");
        assert_eq!((url.user.as_str(), url.port, url.secure), ("weir", 8080, false));
        assert!(parse_url("presto://host:1/").is_err());
        assert!(parse_url("http://host:1/hive").is_err());
    }
}
