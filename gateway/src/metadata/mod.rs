//! The metadata seam: projects, API keys and collection schemas.
//!
//! One trait, [`MetadataStore`], with one SQL implementation over sqlx for
//! SQLite (the embedded default), PostgreSQL and MySQL/MariaDB; [`open`] is
//! the one place that picks the database from the URL.

mod continuous;
mod crm;
mod event_ids;
mod fence;
mod plugins;
pub(crate) mod sql;
mod user_columns;
mod views;
mod voids;

use std::sync::Arc;

use async_trait::async_trait;

use crate::schema::types::{Field, FieldType};

pub use continuous::history_mark;
pub use sql::SqlMetadataStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported metadata URL {0:?}: use sqlite://, postgres:// or mysql://")]
    UnsupportedUrl(String),
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("metadata migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("metadata holds a corrupt value: {0}")]
    Corrupt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The three kinds of project API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Master,
    Read,
    Write,
}

impl KeyKind {
    pub const ALL: [KeyKind; 3] = [KeyKind::Master, KeyKind::Read, KeyKind::Write];

    /// The header, query parameter and JSON name of the key.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Master => "master_key",
            KeyKind::Read => "read_key",
            KeyKind::Write => "write_key",
        }
    }

    pub fn from_name(name: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A stored API key, found by the hash of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub project: String,
    pub kind: KeyKind,
    /// The id shared by the master, read and write keys created together.
    pub key_set: String,
}

/// One version of a collection's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Globally unique; written into every record encoded with this version.
    pub id: i64,
    pub project: String,
    pub collection: String,
    /// 1 for the first version of the collection, then +1 per change.
    pub version: i64,
    pub fields: Vec<Field>,
    /// The Avro record schema, as JSON text.
    pub avro_schema: String,
}

/// A schema version to insert.
#[derive(Debug, Clone)]
pub struct NewSchemaVersion<'a> {
    pub project: &'a str,
    pub collection: &'a str,
    pub version: i64,
    pub fields: &'a [Field],
    pub avro_schema: &'a str,
}

/// A log partition, by topic name and partition number.
pub type LogPartition = (String, u32);

/// A Parquet file of a collection's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetFile {
    /// Path inside the warehouse.
    pub path: String,
    pub project: String,
    pub collection: String,
    /// `YYYY-MM-DD` of the `_time` of its rows.
    pub day: String,
    pub topic: String,
    pub partition: u32,
    /// The log offsets of the batch the file was written from.
    pub first_offset: u64,
    pub last_offset: u64,
    pub rows: u64,
    pub bytes: u64,
}

/// A file in the manifest, with the epoch of the master that committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub path: String,
    pub topic: String,
    pub partition: u32,
    pub first_offset: u64,
    pub last_offset: u64,
    pub epoch: i64,
}

/// A partition moved from `from` (the offset committed before) to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAdvance {
    pub topic: String,
    pub partition: u32,
    pub from: u64,
    pub to: u64,
}

/// The stored fence of master work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterEpoch {
    /// The epoch of the newest lead; 0 before any.
    pub epoch: i64,
    /// The node that claimed it; empty once released.
    pub holder: String,
    /// When the holder last renewed it (milliseconds since the epoch).
    pub renewed_at: i64,
}

/// What a master's commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Done,
    /// Nothing changed: an offset or a file moved meanwhile.
    Conflict,
    /// Nothing changed: a newer master has claimed the fence.
    Fenced,
}

/// A project's plugin as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRecord {
    pub project: String,
    pub name: String,
    /// `enrich` or `rewrite`.
    pub hook: String,
    /// Plugins of a hook run in ascending position, then name.
    pub position: i64,
    /// `pass` or `reject`.
    pub on_error: String,
    pub memory_mb: i64,
    pub timeout_ms: i64,
    /// The component, by the SHA-256 of its bytes (lowercase hex).
    pub sha256: String,
    /// 1 for the first upload of the name, then +1 per upload.
    pub version: i64,
    /// +1 for every change of any kind.
    pub revision: i64,
    /// The project's configuration of the plugin, as JSON text.
    pub config: String,
    pub enabled: bool,
    pub updated_at: i64,
}

/// What an upload sets; the configuration and the enabled flag of an
/// existing plugin are kept.
#[derive(Debug, Clone)]
pub struct PluginUpload<'a> {
    pub project: &'a str,
    pub name: &'a str,
    pub hook: &'a str,
    pub position: i64,
    pub on_error: &'a str,
    pub memory_mb: i64,
    pub timeout_ms: i64,
    pub sha256: &'a str,
}

/// One append to a shared event log: its writer (a gateway process, by a
/// random number it draws at start) and the writer's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppendId {
    pub writer: u64,
    pub seq: u64,
}

/// A change to a stored plugin.
#[derive(Debug, Clone)]
pub enum PluginChange {
    Config(String),
    Enabled(bool),
}

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Creates a project; `false` if one of that name exists.
    async fn create_project(&self, name: &str, now_ms: i64) -> Result<bool>;
    async fn projects(&self) -> Result<Vec<String>>;
    /// Deletes a project with its keys and schemas; `false` if there was none.
    async fn delete_project(&self, name: &str) -> Result<bool>;

    /// Stores the hashes of a new key set.
    async fn insert_keys(&self, project: &str, key_set: &str, hashes: &[(KeyKind, String)], now_ms: i64) -> Result<()>;
    async fn find_key(&self, key_hash: &str) -> Result<Option<StoredKey>>;
    /// Deletes every key of a key set; returns how many there were.
    async fn delete_key_set(&self, project: &str, key_set: &str) -> Result<u64>;

    /// The type of `_user` in this project, once chosen.
    async fn user_type(&self, project: &str) -> Result<Option<FieldType>>;
    /// Chooses the type of `_user` unless it was chosen already; returns the
    /// type in force afterwards.
    async fn choose_user_type(&self, project: &str, wanted: FieldType) -> Result<FieldType>;

    /// The newest schema version of a collection.
    async fn latest_schema(&self, project: &str, collection: &str) -> Result<Option<SchemaVersion>>;
    /// The newest schema version of every collection of a project.
    async fn latest_schemas(&self, project: &str) -> Result<Vec<SchemaVersion>>;
    /// Every version of a collection, oldest first.
    async fn schema_versions(&self, project: &str, collection: &str) -> Result<Vec<SchemaVersion>>;
    async fn schema_by_id(&self, id: i64) -> Result<Option<SchemaVersion>>;
    /// Inserts a version; `None` when that version number exists already
    /// (another writer got there first), else the new version's id.
    async fn insert_schema_version(&self, new: NewSchemaVersion<'_>, now_ms: i64) -> Result<Option<i64>>;

    /// The fence of master work as stored.
    async fn master_epoch(&self) -> Result<MasterEpoch>;
    /// Claims `epoch` for `holder` when the stored epoch is lower; `false`,
    /// with nothing changed, otherwise.
    async fn claim_epoch(&self, epoch: i64, holder: &str, now_ms: i64) -> Result<bool>;
    /// Claims the next epoch for `holder` unless another holder renewed the
    /// fence at or after `live_since`; the epoch claimed.
    async fn claim_next_epoch(&self, holder: &str, now_ms: i64, live_since: i64) -> Result<Option<i64>>;
    /// Records that the holder of `epoch` still leads; `false` when the
    /// stored epoch is another.
    async fn renew_epoch(&self, epoch: i64, now_ms: i64) -> Result<bool>;
    /// Gives the fence up, so that another node may claim it at once.
    async fn release_epoch(&self, epoch: i64) -> Result<()>;
    /// Runs `work` while holding the fence of `epoch`: no newer epoch can
    /// be claimed meanwhile. `false`, without running it, when the stored
    /// epoch is another.
    async fn while_fenced(&self, epoch: i64, work: futures::future::BoxFuture<'_, ()>) -> Result<bool>;

    /// The next offset to load of every partition the batch loop has moved.
    async fn committed_offsets(&self) -> Result<std::collections::HashMap<LogPartition, u64>>;
    /// Records files (replacing any of the same path) and moves offsets, in
    /// one transaction fenced on `epoch`, and records the epoch with them.
    /// [`Commit::Conflict`] when an offset was no longer at `from`: another
    /// loader moved it first.
    async fn commit_load(
        &self,
        epoch: i64,
        files: &[ParquetFile],
        advances: &[OffsetAdvance],
        now_ms: i64,
    ) -> Result<Commit>;
    /// The files of a collection's table, by path.
    async fn parquet_files(&self, project: &str, collection: &str) -> Result<Vec<ParquetFile>>;
    /// Every file of every table, by path.
    async fn manifest(&self) -> Result<Vec<ManifestEntry>>;
    /// Replaces files with one that holds their rows, in one transaction
    /// fenced on `epoch`, and records the old ones as retired;
    /// [`Commit::Conflict`] when one of them is no longer there.
    async fn replace_files(&self, epoch: i64, old: &[String], new: &ParquetFile, now_ms: i64) -> Result<Commit>;
    /// Files taken out of the manifest, with when (milliseconds).
    async fn retired_files(&self) -> Result<Vec<(String, i64)>>;
    /// Forgets retired files once deleted.
    async fn forget_retired(&self, paths: &[String]) -> Result<()>;

    /// Stores a component's bytes under their SHA-256 (once).
    async fn put_component(&self, sha256: &str, bytes: &[u8], now_ms: i64) -> Result<()>;
    async fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
    /// Creates a plugin, or points an existing one at a new upload.
    async fn save_plugin(&self, upload: PluginUpload<'_>, now_ms: i64) -> Result<PluginRecord>;
    /// The plugins of a project, or of every project.
    async fn plugins(&self, project: Option<&str>) -> Result<Vec<PluginRecord>>;
    /// Changes a plugin; `None` when there is no such plugin.
    async fn change_plugin(
        &self,
        project: &str,
        name: &str,
        change: PluginChange,
        now_ms: i64,
    ) -> Result<Option<PluginRecord>>;
    /// Deletes a plugin (and its component, when nothing else uses it);
    /// `false` when there was none.
    async fn delete_plugin(&self, project: &str, name: &str) -> Result<bool>;

    /// Records appends that their writer answered as failed (each once).
    async fn void_appends(&self, appends: &[AppendId], now_ms: i64) -> Result<()>;
    /// The voided appends of these writers.
    async fn voided_appends(&self, writers: &[u64]) -> Result<std::collections::HashSet<AppendId>>;
    /// Forgets voids (and writers' marks) recorded before `before_ms`;
    /// returns how many voids.
    async fn prune_voided_appends(&self, before_ms: i64) -> Result<u64>;
    /// Records that every append of `writer` below sequence number `below`
    /// is decided: answered as stored, or voided.
    async fn mark_decided(&self, writer: u64, below: u64, now_ms: i64) -> Result<()>;
    /// The decided marks of these writers (writers with none are left out).
    async fn decided_marks(&self, writers: &[u64]) -> Result<std::collections::HashMap<u64, u64>>;

    /// The columns of the project's user table (besides `id` and
    /// `created_at`), in the order they were added.
    async fn user_columns(&self, project: &str) -> Result<Vec<Field>>;
    /// Registers user columns (a name registered already keeps its type);
    /// every column afterwards.
    async fn add_user_columns(&self, project: &str, fields: &[Field], now_ms: i64) -> Result<Vec<Field>>;

    /// The project's CRM upstream, if one is configured.
    async fn crm_upstream(&self, project: &str) -> Result<Option<CrmUpstream>>;
    /// Configures (or replaces) the project's CRM upstream.
    async fn save_crm_upstream(&self, project: &str, upstream: &CrmUpstream, now_ms: i64) -> Result<()>;

    /// Creates a materialized view; `false` when the project has one of
    /// that table name.
    async fn create_view(&self, view: &ViewRecord) -> Result<bool>;
    async fn view(&self, project: &str, table_name: &str) -> Result<Option<ViewRecord>>;
    /// The views of a project, or of every project.
    async fn views(&self, project: Option<&str>) -> Result<Vec<ViewRecord>>;
    /// Sets whether reads add the rows newer than the snapshot; `false`
    /// when there is no such view.
    async fn change_view(&self, project: &str, table_name: &str, real_time: bool) -> Result<bool>;
    /// Deletes a view, retiring its files; `false` when there was none.
    async fn delete_view(&self, project: &str, table_name: &str, now_ms: i64) -> Result<bool>;
    /// The files of a view's current snapshot.
    async fn view_files(&self, project: &str, table_name: &str) -> Result<Vec<ViewFile>>;
    /// The collection files a view's snapshot has read.
    async fn view_sources(&self, project: &str, table_name: &str) -> Result<std::collections::HashSet<String>>;
    /// Swaps in a view's new snapshot in one transaction (fenced on `epoch`
    /// when it is master work); [`Commit::Conflict`] when the view is no
    /// longer at `from_version` or a file it read has left the manifest.
    async fn swap_view(&self, epoch: Option<i64>, swap: ViewSwap<'_>, now_ms: i64) -> Result<Commit>;
    /// For each collection file of a project some view has read, the views
    /// (by table name).
    async fn source_marks(
        &self,
        project: &str,
    ) -> Result<std::collections::HashMap<String, std::collections::BTreeSet<String>>>;
    /// Every file of every view's snapshot and continuous query's state.
    async fn derived_files(&self) -> Result<Vec<String>>;

    /// [`MetadataStore::commit_load`], with the state files the load's
    /// records were folded into and the ids of the events it stored;
    /// [`Commit::Conflict`] as well when continuous queries came or went
    /// since `folded.generation`.
    async fn commit_load_folded(
        &self,
        epoch: i64,
        files: &[ParquetFile],
        advances: &[OffsetAdvance],
        folded: Option<&Folded>,
        ids: Option<&LoadedIds>,
        now_ms: i64,
    ) -> Result<Commit>;
    /// The ids of the events loaded since `since_ms`, per load.
    async fn loaded_event_ids(&self, since_ms: i64) -> Result<Vec<StoredIds>>;
    /// Forgets the ids of events loaded before `before_ms`; how many loads'.
    async fn forget_event_ids(&self, before_ms: i64) -> Result<u64>;
    /// Creates a continuous query and marks the files of `replayed` (its
    /// collections, for a replay) committed before it as its history;
    /// `false` when the project has one of that table name.
    async fn create_continuous(&self, query: &ContinuousRecord, replayed: &[String]) -> Result<bool>;
    async fn continuous_query(&self, project: &str, table_name: &str) -> Result<Option<ContinuousRecord>>;
    /// The continuous queries of a project, or of every project.
    async fn continuous_queries(&self, project: Option<&str>) -> Result<Vec<ContinuousRecord>>;
    /// Deletes a continuous query, retiring its state; `false` when there
    /// was none.
    async fn delete_continuous(&self, project: &str, table_name: &str, now_ms: i64) -> Result<bool>;
    /// +1 whenever a continuous query is created or deleted.
    async fn continuous_generation(&self) -> Result<i64>;
    async fn continuous_state(&self, project: &str, table_name: &str) -> Result<Vec<StateFile>>;
    /// The collection files still marked as a continuous query's history.
    async fn continuous_history(&self, project: &str, table_name: &str) -> Result<Vec<String>>;
    /// Replaces state files of a continuous query in one transaction
    /// (fenced on `epoch` when it is master work); with `history`, the
    /// query's history marks are consumed (they must be exactly those). [`Commit::Conflict`] when an old file or the query is
    /// gone, or the history moved.
    async fn replace_state(&self, epoch: Option<i64>, swap: StateSwap<'_>, now_ms: i64) -> Result<Commit>;
}

/// State files of a continuous query replaced by others.
#[derive(Debug, Clone, Copy)]
pub struct StateSwap<'a> {
    pub project: &'a str,
    pub table_name: &'a str,
    pub old: &'a [String],
    pub new: &'a [StateFile],
    /// The history marks the new files fold in, consumed with the swap.
    pub history: Option<&'a [String]>,
}

/// A project's continuous query as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinuousRecord {
    pub project: String,
    pub table_name: String,
    pub name: String,
    pub query: String,
    pub partition_keys: Vec<String>,
    /// The client's options, as JSON text.
    pub options: String,
    /// The answer's columns.
    pub fields: Vec<Field>,
    /// Its history is still to be folded in.
    pub replaying: bool,
    pub created_at: i64,
}

/// A Parquet file of partial aggregation states of a continuous query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    pub path: String,
    pub table_name: String,
    /// The values of the query's partition keys its rows have ("" without
    /// partition keys).
    pub partition: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The ids of the events one load stored (see `batch::dedup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedIds {
    pub project: String,
    pub topic: String,
    pub partition: u32,
    pub first_offset: u64,
    /// 16-byte keys, one after another.
    pub keys: Vec<u8>,
}

/// [`LoadedIds`] as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIds {
    pub project: String,
    pub keys: Vec<u8>,
    /// When the load committed (milliseconds).
    pub loaded_ms: i64,
}

/// What a load's records were folded into, committed with the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    /// The generation of continuous queries the fold saw.
    pub generation: i64,
    pub project: String,
    pub states: Vec<StateFile>,
}

/// A project's materialized view as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRecord {
    pub project: String,
    pub table_name: String,
    pub name: String,
    pub query: String,
    /// `None`: refreshed when asked, and on the first read.
    pub update_interval_ms: Option<i64>,
    pub incremental: bool,
    pub real_time: bool,
    /// The client's options, as JSON text.
    pub options: String,
    /// The snapshot's columns.
    pub fields: Vec<Field>,
    /// +1 per refresh; 0 before the first.
    pub version: i64,
    /// When the last refresh finished (milliseconds).
    pub last_update: Option<i64>,
    pub created_at: i64,
}

/// A Parquet file of a view's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewFile {
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// A refresh's new snapshot of a view.
#[derive(Debug, Clone, Copy)]
pub struct ViewSwap<'a> {
    pub project: &'a str,
    pub table_name: &'a str,
    /// The version the refresh started from.
    pub from_version: i64,
    /// The files written.
    pub files: &'a [ViewFile],
    /// Keep the current files and sources and add these (an incremental
    /// fold); else they replace them.
    pub keep: bool,
    /// The collection files the refresh read.
    pub sources: &'a [String],
    pub fields: &'a [Field],
}

/// Where a project's `/crm/…` requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmUpstream {
    /// The base URL (`http://` or `https://`).
    pub url: String,
    /// Headers added to every forwarded request (secrets among them).
    pub headers: Vec<(String, String)>,
    /// How long the upstream may take to start answering.
    pub timeout_ms: u64,
}

/// Opens (and migrates) the metadata store named by `url`.
pub async fn open(url: &str) -> Result<Arc<dyn MetadataStore>> {
    Ok(Arc::new(SqlMetadataStore::connect(url).await?))
}
