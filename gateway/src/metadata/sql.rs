//! [`MetadataStore`] over sqlx's `Any` driver. The SQL is written once with
//! `?` placeholders; [`Dialect`] holds the few differences between the
//! databases and is chosen from the URL scheme.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

use super::continuous::ContinuousStatements;
use super::crm::CrmStatements;
use super::event_ids::EventIdStatements;
use super::fence::FenceStatements;
use super::plugins::PluginStatements;
use super::user_columns::UserColumnStatements;
use super::views::ViewStatements;
use super::voids::VoidStatements;
use super::{
    AppendId, Commit, ContinuousRecord, Error, Folded, KeyKind, LoadedIds, LogPartition, ManifestEntry, MasterEpoch,
    MetadataStore, NewSchemaVersion, OffsetAdvance, ParquetFile, PluginChange, PluginRecord, PluginUpload, Result,
    SchemaVersion, StateFile, StateSwap, StoredIds, StoredKey, ViewFile, ViewRecord, ViewSwap,
};
use crate::schema::types::{Field, FieldType};

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static MYSQL: Migrator = sqlx::migrate!("migrations/mysql");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

impl Dialect {
    pub(crate) fn of(url: &str) -> Result<Dialect> {
        let scheme = url.split_once(':').map_or("", |(s, _)| s);
        match scheme {
            "sqlite" => Ok(Dialect::Sqlite),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "mysql" | "mariadb" => Ok(Dialect::MySql),
            _ => Err(Error::UnsupportedUrl(url.to_owned())),
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Dialect::Sqlite => &SQLITE,
            Dialect::Postgres => &POSTGRES,
            Dialect::MySql => &MYSQL,
        }
    }

    /// Rewrites `?` placeholders to `$1, $2, ..` where the database wants them.
    pub(crate) fn sql(self, query: &str) -> String {
        if self != Dialect::Postgres {
            return query.to_owned();
        }
        let mut out = String::with_capacity(query.len() + 8);
        let mut n = 0;
        for c in query.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// How a transaction that writes begins. SQLite's default (deferred)
    /// transaction takes the write lock only at its first write, and if
    /// another connection wrote in between it fails busy instead of waiting;
    /// `BEGIN IMMEDIATE` takes the lock at once and waits for it.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres | Dialect::MySql => "BEGIN",
        }
    }

    /// A pool of connections to `url`, a database of this dialect; SQLite
    /// files are created when missing, in WAL mode, and wait for locks.
    pub(crate) async fn pool(self, url: &str) -> sqlx::Result<AnyPool> {
        sqlx::any::install_default_drivers();
        let url = match self {
            Dialect::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let mut options = AnyPoolOptions::new().max_connections(8);
        if self == Dialect::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                    Ok(())
                })
            });
        }
        options.connect(&url).await
    }

    /// An INSERT that does nothing when a unique key exists already.
    pub(crate) fn insert_ignore(self, rest: &str) -> String {
        match self {
            Dialect::Sqlite => format!("INSERT OR IGNORE INTO {rest}"),
            Dialect::Postgres => format!("INSERT INTO {rest} ON CONFLICT DO NOTHING"),
            Dialect::MySql => format!("INSERT IGNORE INTO {rest}"),
        }
    }
}

/// Every statement, rendered for the dialect once at start.
struct Statements {
    create_project: String,
    list_projects: String,
    delete_project: String,
    delete_project_keys: String,
    delete_project_schemas: String,
    insert_key: String,
    find_key: String,
    delete_key_set: String,
    user_type: String,
    choose_user_type: String,
    latest_schema: String,
    latest_schemas: String,
    schema_versions: String,
    schema_by_id: String,
    insert_schema: String,
    schema_id: String,
    committed_offsets: String,
    advance_offset: String,
    insert_offset: String,
    delete_file: String,
    insert_file: String,
    parquet_files: String,
    manifest: String,
    retire_file: String,
    retired_files: String,
    forget_retired: String,
    delete_project_offsets: String,
    delete_project_files: String,
}

const FILE_COLUMNS: &str =
    "path, project, collection, day, topic, log_partition, first_offset, last_offset, row_count, byte_count";

const SCHEMA_COLUMNS: &str = "id, project, collection, version, fields, avro_schema";

impl Statements {
    fn new(d: Dialect) -> Self {
        Statements {
            create_project: d.sql(&d.insert_ignore("projects (name, created_at) VALUES (?, ?)")),
            list_projects: d.sql("SELECT name FROM projects ORDER BY name"),
            delete_project: d.sql("DELETE FROM projects WHERE name = ?"),
            delete_project_keys: d.sql("DELETE FROM api_keys WHERE project = ?"),
            delete_project_schemas: d.sql("DELETE FROM schema_versions WHERE project = ?"),
            insert_key: d.sql("INSERT INTO api_keys (key_hash, project, kind, key_set, created_at) VALUES (?, ?, ?, ?, ?)"),
            find_key: d.sql("SELECT project, kind, key_set FROM api_keys WHERE key_hash = ?"),
            delete_key_set: d.sql("DELETE FROM api_keys WHERE project = ? AND key_set = ?"),
            user_type: d.sql("SELECT user_type FROM projects WHERE name = ?"),
            choose_user_type: d.sql("UPDATE projects SET user_type = ? WHERE name = ? AND user_type IS NULL"),
            latest_schema: d.sql(&format!(
                "SELECT {SCHEMA_COLUMNS} FROM schema_versions WHERE project = ? AND collection = ? \
                 ORDER BY version DESC LIMIT 1"
            )),
            latest_schemas: d.sql(&format!(
                "SELECT {SCHEMA_COLUMNS} FROM schema_versions s WHERE project = ? AND version = \
                 (SELECT MAX(version) FROM schema_versions m WHERE m.project = s.project AND m.collection = s.collection) \
                 ORDER BY collection"
            )),
            schema_versions: d.sql(&format!(
                "SELECT {SCHEMA_COLUMNS} FROM schema_versions WHERE project = ? AND collection = ? ORDER BY version"
            )),
            schema_by_id: d.sql(&format!("SELECT {SCHEMA_COLUMNS} FROM schema_versions WHERE id = ?")),
            insert_schema: d.sql(&d.insert_ignore(
                "schema_versions (project, collection, version, fields, avro_schema, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )),
            schema_id: d.sql("SELECT id FROM schema_versions WHERE project = ? AND collection = ? AND version = ?"),
            committed_offsets: d.sql("SELECT topic, log_partition, next_offset FROM log_offsets"),
            advance_offset: d.sql(
                "UPDATE log_offsets SET next_offset = ?, epoch = ? \
                 WHERE topic = ? AND log_partition = ? AND next_offset = ?",
            ),
            insert_offset: d.sql(&d.insert_ignore(
                "log_offsets (project, topic, log_partition, next_offset, epoch) VALUES (?, ?, ?, ?, ?)",
            )),
            delete_file: d.sql("DELETE FROM parquet_files WHERE path = ?"),
            insert_file: d.sql(&format!(
                "INSERT INTO parquet_files ({FILE_COLUMNS}, created_at, epoch) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )),
            parquet_files: d.sql(&format!(
                "SELECT {FILE_COLUMNS} FROM parquet_files WHERE project = ? AND collection = ? ORDER BY path"
            )),
            manifest: d
                .sql("SELECT path, topic, log_partition, first_offset, last_offset, epoch FROM parquet_files ORDER BY path"),
            retire_file: d.sql(&d.insert_ignore("retired_files (path, retired_at) VALUES (?, ?)")),
            retired_files: d.sql("SELECT path, retired_at FROM retired_files ORDER BY path"),
            forget_retired: d.sql("DELETE FROM retired_files WHERE path = ?"),
            delete_project_offsets: d.sql("DELETE FROM log_offsets WHERE project = ?"),
            delete_project_files: d.sql("DELETE FROM parquet_files WHERE project = ?"),
        }
    }
}

pub struct SqlMetadataStore {
    pub(super) pool: AnyPool,
    pub(super) dialect: Dialect,
    sql: Statements,
    pub(super) plugin_sql: PluginStatements,
    pub(super) void_sql: VoidStatements,
    pub(super) fence_sql: FenceStatements,
    pub(super) user_column_sql: UserColumnStatements,
    pub(super) crm_sql: CrmStatements,
    pub(super) view_sql: ViewStatements,
    pub(super) continuous_sql: ContinuousStatements,
    pub(super) event_id_sql: EventIdStatements,
}

impl SqlMetadataStore {
    /// A transaction that writes (every transaction here does).
    pub(super) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(self.pool.begin_with(self.dialect.begin_write()).await?)
    }

    /// Connects to the database named by `url` and applies its migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let dialect = Dialect::of(url)?;
        let pool = dialect.pool(url).await?;
        dialect.migrator().run(&pool).await?;
        Ok(SqlMetadataStore {
            pool,
            dialect,
            sql: Statements::new(dialect),
            plugin_sql: PluginStatements::new(dialect),
            void_sql: VoidStatements::new(dialect),
            fence_sql: FenceStatements::new(dialect),
            user_column_sql: UserColumnStatements::new(dialect),
            crm_sql: CrmStatements::new(dialect),
            view_sql: ViewStatements::new(dialect),
            continuous_sql: ContinuousStatements::new(dialect),
            event_id_sql: EventIdStatements::new(dialect),
        })
    }

    fn schema_row(row: &AnyRow) -> Result<SchemaVersion> {
        let fields = long_text(row, "fields")?;
        let fields: Vec<Field> =
            serde_json::from_str(&fields).map_err(|e| Error::Corrupt(format!("schema fields: {e}")))?;
        Ok(SchemaVersion {
            id: row.try_get("id")?,
            project: row.try_get("project")?,
            collection: row.try_get("collection")?,
            version: row.try_get("version")?,
            fields,
            avro_schema: long_text(row, "avro_schema")?,
        })
    }
}

/// A TEXT column. Through sqlx's `Any` driver MySQL reports every TEXT
/// column as a BLOB, so the bytes are accepted too.
pub(super) fn long_text(row: &AnyRow, column: &str) -> Result<String> {
    match row.try_get::<String, _>(column) {
        Ok(text) => Ok(text),
        Err(_) => {
            let bytes: Vec<u8> = row.try_get(column)?;
            String::from_utf8(bytes).map_err(|e| Error::Corrupt(format!("{column} is not UTF-8: {e}")))
        }
    }
}

impl SqlMetadataStore {
    async fn insert_file(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        f: &ParquetFile,
        epoch: i64,
        now_ms: i64,
    ) -> Result<()> {
        sqlx::query(&self.sql.insert_file)
            .bind(f.path.as_str())
            .bind(f.project.as_str())
            .bind(f.collection.as_str())
            .bind(f.day.as_str())
            .bind(f.topic.as_str())
            .bind(i64::from(f.partition))
            .bind(signed(f.first_offset))
            .bind(signed(f.last_offset))
            .bind(signed(f.rows))
            .bind(signed(f.bytes))
            .bind(now_ms)
            .bind(epoch)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl SqlMetadataStore {
    /// Records a file taken out of a manifest, for the janitor.
    pub(super) async fn retire_path(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        path: &str,
        now_ms: i64,
    ) -> Result<()> {
        sqlx::query(&self.sql.retire_file).bind(path).bind(now_ms).execute(&mut **tx).await?;
        Ok(())
    }
}

fn offset(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::Corrupt(format!("negative {what} {value}")))
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn kind_of(name: &str) -> Result<KeyKind> {
    KeyKind::from_name(name).ok_or_else(|| Error::Corrupt(format!("key kind {name:?}")))
}

#[async_trait]
impl MetadataStore for SqlMetadataStore {
    async fn create_project(&self, name: &str, now_ms: i64) -> Result<bool> {
        let done = sqlx::query(&self.sql.create_project).bind(name).bind(now_ms).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn projects(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(&self.sql.list_projects).fetch_all(&self.pool).await?;
        rows.iter().map(|r| r.try_get::<String, _>(0).map_err(Error::from)).collect()
    }

    async fn delete_project(&self, name: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&self.sql.delete_project_keys).bind(name).execute(&mut *tx).await?;
        sqlx::query(&self.sql.delete_project_schemas).bind(name).execute(&mut *tx).await?;
        sqlx::query(&self.sql.delete_project_offsets).bind(name).execute(&mut *tx).await?;
        sqlx::query(&self.sql.delete_project_files).bind(name).execute(&mut *tx).await?;
        sqlx::query(&self.plugin_sql.delete_project_plugins).bind(name).execute(&mut *tx).await?;
        sqlx::query(&self.user_column_sql.delete_project_columns).bind(name).execute(&mut *tx).await?;
        sqlx::query(&self.crm_sql.delete_project_upstream).bind(name).execute(&mut *tx).await?;
        sqlx::query(&self.event_id_sql.delete_project).bind(name).execute(&mut *tx).await?;
        for statement in self.view_sql.delete_project_views.iter().chain(&self.continuous_sql.delete_project) {
            sqlx::query(statement).bind(name).execute(&mut *tx).await?;
        }
        let done = sqlx::query(&self.sql.delete_project).bind(name).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_keys(&self, project: &str, key_set: &str, hashes: &[(KeyKind, String)], now_ms: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (kind, hash) in hashes {
            sqlx::query(&self.sql.insert_key)
                .bind(hash.as_str())
                .bind(project)
                .bind(kind.name())
                .bind(key_set)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_key(&self, key_hash: &str) -> Result<Option<StoredKey>> {
        let row = sqlx::query(&self.sql.find_key).bind(key_hash).fetch_optional(&self.pool).await?;
        row.map(|row| {
            Ok(StoredKey {
                project: row.try_get("project")?,
                kind: kind_of(&row.try_get::<String, _>("kind")?)?,
                key_set: row.try_get("key_set")?,
            })
        })
        .transpose()
    }

    async fn delete_key_set(&self, project: &str, key_set: &str) -> Result<u64> {
        let done = sqlx::query(&self.sql.delete_key_set).bind(project).bind(key_set).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn user_type(&self, project: &str) -> Result<Option<FieldType>> {
        let row = sqlx::query(&self.sql.user_type).bind(project).fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(None) };
        let name: Option<String> = row.try_get(0)?;
        name.map(|n| n.parse::<FieldType>().map_err(|e| Error::Corrupt(e.to_string()))).transpose()
    }

    async fn choose_user_type(&self, project: &str, wanted: FieldType) -> Result<FieldType> {
        sqlx::query(&self.sql.choose_user_type).bind(wanted.to_string()).bind(project).execute(&self.pool).await?;
        Ok(self.user_type(project).await?.unwrap_or(wanted))
    }

    async fn latest_schema(&self, project: &str, collection: &str) -> Result<Option<SchemaVersion>> {
        let row =
            sqlx::query(&self.sql.latest_schema).bind(project).bind(collection).fetch_optional(&self.pool).await?;
        row.as_ref().map(Self::schema_row).transpose()
    }

    async fn latest_schemas(&self, project: &str) -> Result<Vec<SchemaVersion>> {
        let rows = sqlx::query(&self.sql.latest_schemas).bind(project).fetch_all(&self.pool).await?;
        rows.iter().map(Self::schema_row).collect()
    }

    async fn schema_versions(&self, project: &str, collection: &str) -> Result<Vec<SchemaVersion>> {
        let rows = sqlx::query(&self.sql.schema_versions).bind(project).bind(collection).fetch_all(&self.pool).await?;
        rows.iter().map(Self::schema_row).collect()
    }

    async fn schema_by_id(&self, id: i64) -> Result<Option<SchemaVersion>> {
        let row = sqlx::query(&self.sql.schema_by_id).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(Self::schema_row).transpose()
    }

    async fn insert_schema_version(&self, new: NewSchemaVersion<'_>, now_ms: i64) -> Result<Option<i64>> {
        let fields = serde_json::to_string(new.fields).map_err(|e| Error::Corrupt(e.to_string()))?;
        let done = sqlx::query(&self.sql.insert_schema)
            .bind(new.project)
            .bind(new.collection)
            .bind(new.version)
            .bind(fields)
            .bind(new.avro_schema)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let row = sqlx::query(&self.sql.schema_id)
            .bind(new.project)
            .bind(new.collection)
            .bind(new.version)
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(row.try_get(0)?))
    }

    async fn committed_offsets(&self) -> Result<HashMap<LogPartition, u64>> {
        let rows = sqlx::query(&self.sql.committed_offsets).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let partition: i64 = row.try_get("log_partition")?;
                let partition =
                    u32::try_from(partition).map_err(|_| Error::Corrupt(format!("partition {partition}")))?;
                let next = offset(row.try_get("next_offset")?, "offset")?;
                Ok(((row.try_get::<String, _>("topic")?, partition), next))
            })
            .collect()
    }

    async fn master_epoch(&self) -> Result<MasterEpoch> {
        self.master_epoch_sql().await
    }

    async fn claim_epoch(&self, epoch: i64, holder: &str, now_ms: i64) -> Result<bool> {
        self.claim_epoch_sql(epoch, holder, now_ms).await
    }

    async fn claim_next_epoch(&self, holder: &str, now_ms: i64, live_since: i64) -> Result<Option<i64>> {
        self.claim_next_epoch_sql(holder, now_ms, live_since).await
    }

    async fn renew_epoch(&self, epoch: i64, now_ms: i64) -> Result<bool> {
        self.renew_epoch_sql(epoch, now_ms).await
    }

    async fn release_epoch(&self, epoch: i64) -> Result<()> {
        self.release_epoch_sql(epoch).await
    }

    async fn while_fenced(&self, epoch: i64, work: futures::future::BoxFuture<'_, ()>) -> Result<bool> {
        self.while_fenced_sql(epoch, work).await
    }

    async fn commit_load(
        &self,
        epoch: i64,
        files: &[ParquetFile],
        advances: &[OffsetAdvance],
        now_ms: i64,
    ) -> Result<Commit> {
        self.commit_load_folded(epoch, files, advances, None, None, now_ms).await
    }

    async fn commit_load_folded(
        &self,
        epoch: i64,
        files: &[ParquetFile],
        advances: &[OffsetAdvance],
        folded: Option<&Folded>,
        ids: Option<&LoadedIds>,
        now_ms: i64,
    ) -> Result<Commit> {
        let mut tx = self.begin_write().await?;
        if !self.check_fence(&mut tx, epoch).await? {
            tx.rollback().await?;
            return Ok(Commit::Fenced);
        }
        if let Some(folded) = folded {
            if !self.same_generation(&mut tx, folded.generation).await? {
                tx.rollback().await?;
                return Ok(Commit::Conflict);
            }
            self.insert_states(&mut tx, &folded.project, &folded.states, now_ms).await?;
        }
        for a in advances {
            let moved = sqlx::query(&self.sql.advance_offset)
                .bind(signed(a.to))
                .bind(epoch)
                .bind(a.topic.as_str())
                .bind(i64::from(a.partition))
                .bind(signed(a.from))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            let inserted = !moved && a.from == 0 && {
                let project =
                    crate::schema::names::split_topic(&a.topic).map(|(p, _)| p.to_owned()).unwrap_or_default();
                sqlx::query(&self.sql.insert_offset)
                    .bind(project)
                    .bind(a.topic.as_str())
                    .bind(i64::from(a.partition))
                    .bind(signed(a.to))
                    .bind(epoch)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1
            };
            if !moved && !inserted {
                tx.rollback().await?;
                return Ok(Commit::Conflict);
            }
        }
        for f in files {
            sqlx::query(&self.sql.delete_file).bind(f.path.as_str()).execute(&mut *tx).await?;
            self.insert_file(&mut tx, f, epoch, now_ms).await?;
        }
        if let Some(ids) = ids {
            self.insert_event_ids(&mut tx, ids, now_ms).await?;
        }
        tx.commit().await?;
        Ok(Commit::Done)
    }

    async fn loaded_event_ids(&self, since_ms: i64) -> Result<Vec<StoredIds>> {
        self.loaded_ids_sql(since_ms).await
    }

    async fn forget_event_ids(&self, before_ms: i64) -> Result<u64> {
        self.forget_ids_sql(before_ms).await
    }

    async fn replace_files(&self, epoch: i64, old: &[String], new: &ParquetFile, now_ms: i64) -> Result<Commit> {
        let mut tx = self.begin_write().await?;
        if !self.check_fence(&mut tx, epoch).await? {
            tx.rollback().await?;
            return Ok(Commit::Fenced);
        }
        for path in old {
            let gone = sqlx::query(&self.sql.delete_file).bind(path.as_str()).execute(&mut *tx).await?.rows_affected();
            if gone != 1 {
                tx.rollback().await?;
                return Ok(Commit::Conflict);
            }
            self.retire_path(&mut tx, path, now_ms).await?;
        }
        if !self.carry_source_marks(&mut tx, &new.project, old, &new.path).await? {
            tx.rollback().await?;
            return Ok(Commit::Conflict);
        }
        self.insert_file(&mut tx, new, epoch, now_ms).await?;
        tx.commit().await?;
        Ok(Commit::Done)
    }

    async fn retired_files(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(&self.sql.retired_files).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("path")?, r.try_get("retired_at")?))).collect()
    }

    async fn forget_retired(&self, paths: &[String]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for path in paths {
            sqlx::query(&self.sql.forget_retired).bind(path.as_str()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn manifest(&self) -> Result<Vec<ManifestEntry>> {
        let rows = sqlx::query(&self.sql.manifest).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let partition: i64 = row.try_get("log_partition")?;
                Ok(ManifestEntry {
                    path: row.try_get("path")?,
                    topic: row.try_get("topic")?,
                    partition: u32::try_from(partition)
                        .map_err(|_| Error::Corrupt(format!("partition {partition}")))?,
                    first_offset: offset(row.try_get("first_offset")?, "offset")?,
                    last_offset: offset(row.try_get("last_offset")?, "offset")?,
                    epoch: row.try_get("epoch")?,
                })
            })
            .collect()
    }

    async fn parquet_files(&self, project: &str, collection: &str) -> Result<Vec<ParquetFile>> {
        let rows = sqlx::query(&self.sql.parquet_files).bind(project).bind(collection).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let partition: i64 = row.try_get("log_partition")?;
                Ok(ParquetFile {
                    path: row.try_get("path")?,
                    project: row.try_get("project")?,
                    collection: row.try_get("collection")?,
                    day: row.try_get("day")?,
                    topic: row.try_get("topic")?,
                    partition: u32::try_from(partition)
                        .map_err(|_| Error::Corrupt(format!("partition {partition}")))?,
                    first_offset: offset(row.try_get("first_offset")?, "offset")?,
                    last_offset: offset(row.try_get("last_offset")?, "offset")?,
                    rows: offset(row.try_get("row_count")?, "row count")?,
                    bytes: offset(row.try_get("byte_count")?, "byte count")?,
                })
            })
            .collect()
    }

    async fn put_component(&self, sha256: &str, bytes: &[u8], now_ms: i64) -> Result<()> {
        self.put_component_sql(sha256, bytes, now_ms).await
    }

    async fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.component_sql(sha256).await
    }

    async fn save_plugin(&self, upload: PluginUpload<'_>, now_ms: i64) -> Result<PluginRecord> {
        self.save_plugin_sql(upload, now_ms).await
    }

    async fn plugins(&self, project: Option<&str>) -> Result<Vec<PluginRecord>> {
        self.plugins_sql(project).await
    }

    async fn change_plugin(
        &self,
        project: &str,
        name: &str,
        change: PluginChange,
        now_ms: i64,
    ) -> Result<Option<PluginRecord>> {
        self.change_plugin_sql(project, name, change, now_ms).await
    }

    async fn delete_plugin(&self, project: &str, name: &str) -> Result<bool> {
        self.delete_plugin_sql(project, name).await
    }

    async fn void_appends(&self, appends: &[AppendId], now_ms: i64) -> Result<()> {
        self.void_appends_sql(appends, now_ms).await
    }

    async fn voided_appends(&self, writers: &[u64]) -> Result<std::collections::HashSet<AppendId>> {
        self.voided_appends_sql(writers).await
    }

    async fn prune_voided_appends(&self, before_ms: i64) -> Result<u64> {
        self.prune_voided_appends_sql(before_ms).await
    }

    async fn mark_decided(&self, writer: u64, below: u64, now_ms: i64) -> Result<()> {
        self.mark_decided_sql(writer, below, now_ms).await
    }

    async fn decided_marks(&self, writers: &[u64]) -> Result<HashMap<u64, u64>> {
        self.decided_marks_sql(writers).await
    }

    async fn user_columns(&self, project: &str) -> Result<Vec<Field>> {
        self.user_columns_sql(project).await
    }

    async fn add_user_columns(&self, project: &str, fields: &[Field], now_ms: i64) -> Result<Vec<Field>> {
        self.add_user_columns_sql(project, fields, now_ms).await
    }

    async fn crm_upstream(&self, project: &str) -> Result<Option<super::CrmUpstream>> {
        self.crm_upstream_sql(project).await
    }

    async fn create_view(&self, view: &ViewRecord) -> Result<bool> {
        self.create_view_sql(view).await
    }

    async fn view(&self, project: &str, table_name: &str) -> Result<Option<ViewRecord>> {
        self.view_sql(project, table_name).await
    }

    async fn views(&self, project: Option<&str>) -> Result<Vec<ViewRecord>> {
        self.views_sql(project).await
    }

    async fn change_view(&self, project: &str, table_name: &str, real_time: bool) -> Result<bool> {
        self.change_view_sql(project, table_name, real_time).await
    }

    async fn delete_view(&self, project: &str, table_name: &str, now_ms: i64) -> Result<bool> {
        self.delete_view_sql(project, table_name, now_ms).await
    }

    async fn view_files(&self, project: &str, table_name: &str) -> Result<Vec<ViewFile>> {
        self.view_files_sql(project, table_name).await
    }

    async fn view_sources(&self, project: &str, table_name: &str) -> Result<std::collections::HashSet<String>> {
        self.view_sources_sql(project, table_name).await
    }

    async fn swap_view(&self, epoch: Option<i64>, swap: ViewSwap<'_>, now_ms: i64) -> Result<Commit> {
        self.swap_view_sql(epoch, swap, now_ms).await
    }

    async fn source_marks(&self, project: &str) -> Result<HashMap<String, std::collections::BTreeSet<String>>> {
        self.source_marks_sql(project).await
    }

    async fn derived_files(&self) -> Result<Vec<String>> {
        self.derived_files_sql().await
    }

    async fn create_continuous(&self, query: &ContinuousRecord, replayed: &[String]) -> Result<bool> {
        self.create_continuous_sql(query, replayed).await
    }

    async fn continuous_query(&self, project: &str, table_name: &str) -> Result<Option<ContinuousRecord>> {
        self.continuous_query_sql(project, table_name).await
    }

    async fn continuous_queries(&self, project: Option<&str>) -> Result<Vec<ContinuousRecord>> {
        self.continuous_queries_sql(project).await
    }

    async fn delete_continuous(&self, project: &str, table_name: &str, now_ms: i64) -> Result<bool> {
        self.delete_continuous_sql(project, table_name, now_ms).await
    }

    async fn continuous_generation(&self) -> Result<i64> {
        self.continuous_generation_sql().await
    }

    async fn continuous_state(&self, project: &str, table_name: &str) -> Result<Vec<StateFile>> {
        self.continuous_state_sql(project, table_name).await
    }

    async fn continuous_history(&self, project: &str, table_name: &str) -> Result<Vec<String>> {
        self.continuous_history_sql(project, table_name).await
    }

    async fn replace_state(&self, epoch: Option<i64>, swap: StateSwap<'_>, now_ms: i64) -> Result<Commit> {
        self.replace_state_sql(epoch, swap, now_ms).await
    }

    async fn save_crm_upstream(&self, project: &str, upstream: &super::CrmUpstream, now_ms: i64) -> Result<()> {
        self.save_crm_upstream_sql(project, upstream, now_ms).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_gets_numbered_placeholders() {
        assert_eq!(Dialect::Postgres.sql("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(Dialect::MySql.sql("a = ?"), "a = ?");
        assert!(matches!(Dialect::of("redis://x"), Err(Error::UnsupportedUrl(_))));
        assert_eq!(Dialect::of("postgresql://x").ok(), Some(Dialect::Postgres));
    }
}
