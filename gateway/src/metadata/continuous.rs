//! Continuous queries in the SQL metadata store: their definitions, their
//! state files, and the generation that a load folding records into them
//! commits against.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::sql::{Dialect, SqlMetadataStore, long_text};
use super::{Commit, ContinuousRecord, Error, Result, StateFile, StateSwap};
use crate::schema::types::Field;

const COLUMNS: &str = "project, table_name, name, query, partition_keys, options, fields, replaying, created_at";

/// The statements, rendered for the dialect once at start.
pub(super) struct ContinuousStatements {
    insert: String,
    one: String,
    of_project: String,
    all: String,
    delete: String,
    bump_generation: String,
    generation: String,
    state: String,
    insert_state: String,
    delete_state: String,
    delete_states: String,
    insert_mark: String,
    marks: String,
    delete_marks: String,
    replayed: String,
    collection_files: String,
    pub(super) delete_project: [String; 2],
}

impl ContinuousStatements {
    pub(super) fn new(d: Dialect) -> Self {
        ContinuousStatements {
            insert: d
                .sql(&d.insert_ignore(&format!("continuous_queries ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"))),
            one: d.sql(&format!("SELECT {COLUMNS} FROM continuous_queries WHERE project = ? AND table_name = ?")),
            of_project: d
                .sql(&format!("SELECT {COLUMNS} FROM continuous_queries WHERE project = ? ORDER BY table_name")),
            all: d.sql(&format!("SELECT {COLUMNS} FROM continuous_queries ORDER BY project, table_name")),
            delete: d.sql("DELETE FROM continuous_queries WHERE project = ? AND table_name = ?"),
            bump_generation: d
                .sql("UPDATE master_epoch SET continuous_generation = continuous_generation + 1 WHERE id = 1"),
            generation: d.sql("SELECT continuous_generation FROM master_epoch WHERE id = 1"),
            state: d.sql(
                "SELECT path, table_name, state_partition, row_count, byte_count FROM continuous_state \
                 WHERE project = ? AND table_name = ? ORDER BY path",
            ),
            insert_state: d.sql(
                "INSERT INTO continuous_state \
                 (path, project, table_name, state_partition, row_count, byte_count, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            ),
            delete_state: d.sql("DELETE FROM continuous_state WHERE path = ?"),
            delete_states: d.sql("DELETE FROM continuous_state WHERE project = ? AND table_name = ?"),
            insert_mark: d.sql(&d.insert_ignore("view_sources (project, table_name, path) VALUES (?, ?, ?)")),
            marks: d.sql("SELECT path FROM view_sources WHERE project = ? AND table_name = ? ORDER BY path"),
            delete_marks: d.sql("DELETE FROM view_sources WHERE project = ? AND table_name = ?"),
            replayed: d.sql("UPDATE continuous_queries SET replaying = 0 WHERE project = ? AND table_name = ?"),
            collection_files: d.sql("SELECT path FROM parquet_files WHERE project = ? AND collection = ?"),
            delete_project: [
                d.sql("DELETE FROM continuous_queries WHERE project = ?"),
                d.sql("DELETE FROM continuous_state WHERE project = ?"),
            ],
        }
    }
}

/// The name under which a continuous query's history marks are kept
/// beside views' sources (no view's table name has a dot).
pub fn history_mark(table_name: &str) -> String {
    format!("continuous.{table_name}")
}

fn record(row: &AnyRow) -> Result<ContinuousRecord> {
    let json = |column: &str| -> Result<String> { long_text(row, column) };
    let fields: Vec<Field> =
        serde_json::from_str(&json("fields")?).map_err(|e| Error::Corrupt(format!("continuous fields: {e}")))?;
    let partition_keys: Vec<String> = serde_json::from_str(&json("partition_keys")?)
        .map_err(|e| Error::Corrupt(format!("continuous partition keys: {e}")))?;
    Ok(ContinuousRecord {
        project: json("project")?,
        table_name: json("table_name")?,
        name: json("name")?,
        query: json("query")?,
        partition_keys,
        options: json("options")?,
        fields,
        replaying: row.try_get::<i64, _>("replaying")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

fn state_row(row: &AnyRow) -> Result<StateFile> {
    let count = |column: &str| -> Result<u64> {
        let v: i64 = row.try_get(column)?;
        u64::try_from(v).map_err(|_| Error::Corrupt(format!("negative {column} {v}")))
    };
    Ok(StateFile {
        path: long_text(row, "path")?,
        table_name: long_text(row, "table_name")?,
        partition: long_text(row, "state_partition")?,
        rows: count("row_count")?,
        bytes: count("byte_count")?,
    })
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl SqlMetadataStore {
    pub(super) async fn create_continuous_sql(&self, r: &ContinuousRecord, collections: &[String]) -> Result<bool> {
        let s = &self.continuous_sql;
        let fields = serde_json::to_string(&r.fields).map_err(|e| Error::Corrupt(e.to_string()))?;
        let keys = serde_json::to_string(&r.partition_keys).map_err(|e| Error::Corrupt(e.to_string()))?;
        let mut tx = self.begin_write().await?;
        // Serialized with loads: a load commits against the generation.
        sqlx::query(&s.bump_generation).execute(&mut *tx).await?;
        let done = sqlx::query(&s.insert)
            .bind(r.project.as_str())
            .bind(r.table_name.as_str())
            .bind(r.name.as_str())
            .bind(r.query.as_str())
            .bind(keys)
            .bind(r.options.as_str())
            .bind(fields)
            .bind(i64::from(r.replaying))
            .bind(r.created_at)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        // History: the files of `collections` committed so far (later ones
        // are folded in by the loads that commit them, serialized with this
        // transaction on the fence's row).
        let mark = history_mark(&r.table_name);
        for collection in collections {
            let files = sqlx::query(&s.collection_files)
                .bind(r.project.as_str())
                .bind(collection.as_str())
                .fetch_all(&mut *tx)
                .await?;
            for row in &files {
                sqlx::query(&s.insert_mark)
                    .bind(r.project.as_str())
                    .bind(mark.as_str())
                    .bind(long_text(row, "path")?)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn continuous_query_sql(&self, project: &str, table: &str) -> Result<Option<ContinuousRecord>> {
        let row = sqlx::query(&self.continuous_sql.one).bind(project).bind(table).fetch_optional(&self.pool).await?;
        row.as_ref().map(record).transpose()
    }

    pub(super) async fn continuous_queries_sql(&self, project: Option<&str>) -> Result<Vec<ContinuousRecord>> {
        let s = &self.continuous_sql;
        let rows = match project {
            Some(p) => sqlx::query(&s.of_project).bind(p).fetch_all(&self.pool).await?,
            None => sqlx::query(&s.all).fetch_all(&self.pool).await?,
        };
        rows.iter().map(record).collect()
    }

    pub(super) async fn delete_continuous_sql(&self, project: &str, table: &str, now_ms: i64) -> Result<bool> {
        let s = &self.continuous_sql;
        let mut tx = self.begin_write().await?;
        sqlx::query(&s.bump_generation).execute(&mut *tx).await?;
        let done = sqlx::query(&s.delete).bind(project).bind(table).execute(&mut *tx).await?;
        let files = sqlx::query(&s.state).bind(project).bind(table).fetch_all(&mut *tx).await?;
        for row in &files {
            self.retire_path(&mut tx, &long_text(row, "path")?, now_ms).await?;
        }
        sqlx::query(&s.delete_states).bind(project).bind(table).execute(&mut *tx).await?;
        sqlx::query(&s.delete_marks).bind(project).bind(history_mark(table)).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn continuous_generation_sql(&self) -> Result<i64> {
        Ok(sqlx::query(&self.continuous_sql.generation).fetch_one(&self.pool).await?.try_get(0)?)
    }

    pub(super) async fn continuous_state_sql(&self, project: &str, table: &str) -> Result<Vec<StateFile>> {
        let rows = sqlx::query(&self.continuous_sql.state).bind(project).bind(table).fetch_all(&self.pool).await?;
        rows.iter().map(state_row).collect()
    }

    pub(super) async fn continuous_history_sql(&self, project: &str, table: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(&self.continuous_sql.marks)
            .bind(project)
            .bind(history_mark(table))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| long_text(r, "path")).collect()
    }

    /// Inside a load's transaction: `false` when continuous queries came or
    /// went since `generation`.
    pub(super) async fn same_generation(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        generation: i64,
    ) -> Result<bool> {
        let now: i64 = sqlx::query(&self.continuous_sql.generation).fetch_one(&mut **tx).await?.try_get(0)?;
        Ok(now == generation)
    }

    pub(super) async fn insert_states(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        project: &str,
        states: &[StateFile],
        now_ms: i64,
    ) -> Result<()> {
        for f in states {
            sqlx::query(&self.continuous_sql.insert_state)
                .bind(f.path.as_str())
                .bind(project)
                .bind(f.table_name.as_str())
                .bind(f.partition.as_str())
                .bind(signed(f.rows))
                .bind(signed(f.bytes))
                .bind(now_ms)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn replace_state_sql(
        &self,
        epoch: Option<i64>,
        swap: StateSwap<'_>,
        now_ms: i64,
    ) -> Result<Commit> {
        let StateSwap { project, table_name: table, old, new, history } = swap;
        let s = &self.continuous_sql;
        let mut tx = self.begin_write().await?;
        if !self.lock_or_check_fence(&mut tx, epoch).await? {
            tx.rollback().await?;
            return Ok(Commit::Fenced);
        }
        if sqlx::query(&s.one).bind(project).bind(table).fetch_optional(&mut *tx).await?.is_none() {
            tx.rollback().await?;
            return Ok(Commit::Conflict);
        }
        for path in old {
            if sqlx::query(&s.delete_state).bind(path.as_str()).execute(&mut *tx).await?.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(Commit::Conflict);
            }
            self.retire_path(&mut tx, path, now_ms).await?;
        }
        if let Some(history) = history {
            // The history folded in must be the history marked, whole.
            let marked = sqlx::query(&s.marks).bind(project).bind(history_mark(table)).fetch_all(&mut *tx).await?;
            let marked: Vec<String> = marked.iter().map(|r| long_text(r, "path")).collect::<Result<_>>()?;
            let mut given = history.to_vec();
            given.sort();
            if marked != given {
                tx.rollback().await?;
                return Ok(Commit::Conflict);
            }
            sqlx::query(&s.delete_marks).bind(project).bind(history_mark(table)).execute(&mut *tx).await?;
            sqlx::query(&s.replayed).bind(project).bind(table).execute(&mut *tx).await?;
        }
        self.insert_states(&mut tx, project, new, now_ms).await?;
        tx.commit().await?;
        Ok(Commit::Done)
    }
}
