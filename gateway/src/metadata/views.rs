//! Materialized views in the SQL metadata store: their definitions, the
//! files of their current snapshots, and the collection files each snapshot
//! has read. A refresh swaps a snapshot in one transaction, serialized with
//! the master's loads and compactions on the fence's row.

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::Row;
use sqlx::any::AnyRow;

use super::sql::{Dialect, SqlMetadataStore, long_text};
use super::{Commit, Error, Result, ViewFile, ViewRecord, ViewSwap};
use crate::schema::types::Field;

/// Paths are checked and marked this many per statement.
const PATHS_PER_STATEMENT: usize = 200;

const VIEW_COLUMNS: &str = "project, table_name, name, query, update_interval_ms, incremental, real_time, options, \
                            fields, version, last_update, created_at";

/// The statements, rendered for the dialect once at start.
pub(super) struct ViewStatements {
    dialect: Dialect,
    insert: String,
    one: String,
    of_project: String,
    all: String,
    change_real_time: String,
    delete: String,
    files: String,
    delete_files: String,
    sources: String,
    delete_sources: String,
    insert_source: String,
    insert_file: String,
    bump_version: String,
    lock_fence: String,
    marks: String,
    derived_files: String,
    pub(super) delete_project_views: [String; 3],
}

impl ViewStatements {
    pub(super) fn new(d: Dialect) -> Self {
        ViewStatements {
            dialect: d,
            insert: d.sql(&d.insert_ignore(&format!(
                "materialized_views ({VIEW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))),
            one: d.sql(&format!("SELECT {VIEW_COLUMNS} FROM materialized_views WHERE project = ? AND table_name = ?")),
            of_project: d
                .sql(&format!("SELECT {VIEW_COLUMNS} FROM materialized_views WHERE project = ? ORDER BY table_name")),
            all: d.sql(&format!("SELECT {VIEW_COLUMNS} FROM materialized_views ORDER BY project, table_name")),
            change_real_time: d.sql("UPDATE materialized_views SET real_time = ? WHERE project = ? AND table_name = ?"),
            delete: d.sql("DELETE FROM materialized_views WHERE project = ? AND table_name = ?"),
            files: d.sql(
                "SELECT path, row_count, byte_count FROM view_files WHERE project = ? AND table_name = ? ORDER BY path",
            ),
            delete_files: d.sql("DELETE FROM view_files WHERE project = ? AND table_name = ?"),
            sources: d.sql("SELECT path FROM view_sources WHERE project = ? AND table_name = ?"),
            delete_sources: d.sql("DELETE FROM view_sources WHERE project = ? AND table_name = ?"),
            insert_source: d.sql(&d.insert_ignore("view_sources (project, table_name, path) VALUES (?, ?, ?)")),
            insert_file: d.sql(
                "INSERT INTO view_files (path, project, table_name, row_count, byte_count, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            ),
            bump_version: d.sql(
                "UPDATE materialized_views SET version = version + 1, fields = ?, last_update = ? \
                 WHERE project = ? AND table_name = ? AND version = ?",
            ),
            lock_fence: d.sql("UPDATE master_epoch SET commits = commits + 1 WHERE id = 1"),
            marks: d.sql("SELECT path, table_name FROM view_sources WHERE project = ?"),
            derived_files: d.sql("SELECT path FROM view_files UNION ALL SELECT path FROM continuous_state"),
            delete_project_views: [
                d.sql("DELETE FROM materialized_views WHERE project = ?"),
                d.sql("DELETE FROM view_files WHERE project = ?"),
                d.sql("DELETE FROM view_sources WHERE project = ?"),
            ],
        }
    }

    /// How many of `n` paths a view has read.
    fn read_among(&self, n: usize) -> String {
        self.dialect.sql(&format!(
            "SELECT count(*) AS n FROM view_sources WHERE project = ? AND table_name = ? AND path IN ({})",
            vec!["?"; n].join(", ")
        ))
    }

    /// `SELECT … WHERE path IN (?, …)` for `n` paths.
    fn paths_in(&self, select: &str, n: usize) -> String {
        self.dialect.sql(&format!("{select} WHERE path IN ({})", vec!["?"; n].join(", ")))
    }
}

fn view_row(row: &AnyRow) -> Result<ViewRecord> {
    let fields = long_text(row, "fields")?;
    let fields: Vec<Field> = serde_json::from_str(&fields).map_err(|e| Error::Corrupt(format!("view fields: {e}")))?;
    Ok(ViewRecord {
        project: long_text(row, "project")?,
        table_name: long_text(row, "table_name")?,
        name: long_text(row, "name")?,
        query: long_text(row, "query")?,
        update_interval_ms: row.try_get("update_interval_ms")?,
        incremental: row.try_get::<i64, _>("incremental")? != 0,
        real_time: row.try_get::<i64, _>("real_time")? != 0,
        options: long_text(row, "options")?,
        fields,
        version: row.try_get("version")?,
        last_update: row.try_get("last_update")?,
        created_at: row.try_get("created_at")?,
    })
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl SqlMetadataStore {
    pub(super) async fn create_view_sql(&self, v: &ViewRecord) -> Result<bool> {
        let fields = serde_json::to_string(&v.fields).map_err(|e| Error::Corrupt(e.to_string()))?;
        let done = sqlx::query(&self.view_sql.insert)
            .bind(v.project.as_str())
            .bind(v.table_name.as_str())
            .bind(v.name.as_str())
            .bind(v.query.as_str())
            .bind(v.update_interval_ms)
            .bind(i64::from(v.incremental))
            .bind(i64::from(v.real_time))
            .bind(v.options.as_str())
            .bind(fields)
            .bind(v.version)
            .bind(v.last_update)
            .bind(v.created_at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn view_sql(&self, project: &str, table_name: &str) -> Result<Option<ViewRecord>> {
        let row = sqlx::query(&self.view_sql.one).bind(project).bind(table_name).fetch_optional(&self.pool).await?;
        row.as_ref().map(view_row).transpose()
    }

    pub(super) async fn views_sql(&self, project: Option<&str>) -> Result<Vec<ViewRecord>> {
        let rows = match project {
            Some(p) => sqlx::query(&self.view_sql.of_project).bind(p).fetch_all(&self.pool).await?,
            None => sqlx::query(&self.view_sql.all).fetch_all(&self.pool).await?,
        };
        rows.iter().map(view_row).collect()
    }

    pub(super) async fn change_view_sql(&self, project: &str, table_name: &str, real_time: bool) -> Result<bool> {
        let done = sqlx::query(&self.view_sql.change_real_time)
            .bind(i64::from(real_time))
            .bind(project)
            .bind(table_name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1 || self.view_sql(project, table_name).await?.is_some())
    }

    pub(super) async fn delete_view_sql(&self, project: &str, table_name: &str, now_ms: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&self.view_sql.delete).bind(project).bind(table_name).execute(&mut *tx).await?;
        self.retire_view_files(&mut tx, project, table_name, now_ms).await?;
        sqlx::query(&self.view_sql.delete_sources).bind(project).bind(table_name).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes a view's files out of its snapshot and records them as retired
    /// (the janitor deletes them once no query can be reading them).
    async fn retire_view_files(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        project: &str,
        table_name: &str,
        now_ms: i64,
    ) -> Result<()> {
        let rows = sqlx::query(&self.view_sql.files).bind(project).bind(table_name).fetch_all(&mut **tx).await?;
        for row in &rows {
            let path = long_text(row, "path")?;
            self.retire_path(tx, &path, now_ms).await?;
        }
        sqlx::query(&self.view_sql.delete_files).bind(project).bind(table_name).execute(&mut **tx).await?;
        Ok(())
    }

    pub(super) async fn view_files_sql(&self, project: &str, table_name: &str) -> Result<Vec<ViewFile>> {
        let rows = sqlx::query(&self.view_sql.files).bind(project).bind(table_name).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let count = |column: &str| -> Result<u64> {
                    let v: i64 = row.try_get(column)?;
                    u64::try_from(v).map_err(|_| Error::Corrupt(format!("negative {column} {v}")))
                };
                Ok(ViewFile { path: long_text(row, "path")?, rows: count("row_count")?, bytes: count("byte_count")? })
            })
            .collect()
    }

    pub(super) async fn view_sources_sql(&self, project: &str, table_name: &str) -> Result<HashSet<String>> {
        let rows = sqlx::query(&self.view_sql.sources).bind(project).bind(table_name).fetch_all(&self.pool).await?;
        rows.iter().map(|row| long_text(row, "path")).collect()
    }

    pub(super) async fn swap_view_sql(&self, epoch: Option<i64>, swap: ViewSwap<'_>, now_ms: i64) -> Result<Commit> {
        let s = &self.view_sql;
        let mut tx = self.begin_write().await?;
        if !self.lock_or_check_fence(&mut tx, epoch).await? {
            tx.rollback().await?;
            return Ok(Commit::Fenced);
        }
        let fields = serde_json::to_string(swap.fields).map_err(|e| Error::Corrupt(e.to_string()))?;
        let bumped = sqlx::query(&s.bump_version)
            .bind(fields)
            .bind(now_ms)
            .bind(swap.project)
            .bind(swap.table_name)
            .bind(swap.from_version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Every file read must still be in the manifest: one compacted
        // away meanwhile would leave its rows in the merged file unmarked.
        let mut present = 0;
        for chunk in swap.sources.chunks(PATHS_PER_STATEMENT) {
            let sql = s.paths_in("SELECT count(*) AS n FROM parquet_files", chunk.len());
            let mut query = sqlx::query(&sql);
            for path in chunk {
                query = query.bind(path.as_str());
            }
            present += query.fetch_one(&mut *tx).await?.try_get::<i64, _>("n")?;
        }
        // A fold may not read a file again: one compacted from files it
        // read carries their mark, and may have been listed as unread if the
        // compaction came between the fold's two reads.
        let mut read_before = 0;
        if swap.keep {
            for chunk in swap.sources.chunks(PATHS_PER_STATEMENT) {
                let sql = s.read_among(chunk.len());
                let mut query = sqlx::query(&sql).bind(swap.project).bind(swap.table_name);
                for path in chunk {
                    query = query.bind(path.as_str());
                }
                read_before += query.fetch_one(&mut *tx).await?.try_get::<i64, _>("n")?;
            }
        }
        if bumped != 1 || present != swap.sources.len() as i64 || read_before != 0 {
            tx.rollback().await?;
            return Ok(Commit::Conflict);
        }
        if !swap.keep {
            self.retire_view_files(&mut tx, swap.project, swap.table_name, now_ms).await?;
            sqlx::query(&s.delete_sources).bind(swap.project).bind(swap.table_name).execute(&mut *tx).await?;
        }
        for f in swap.files {
            sqlx::query(&s.insert_file)
                .bind(f.path.as_str())
                .bind(swap.project)
                .bind(swap.table_name)
                .bind(signed(f.rows))
                .bind(signed(f.bytes))
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        for path in swap.sources {
            sqlx::query(&s.insert_source)
                .bind(swap.project)
                .bind(swap.table_name)
                .bind(path.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Commit::Done)
    }

    /// Serializes a transaction with the master's commits on the fence's
    /// row; with `epoch` (master work), `false` when that epoch no longer
    /// leads.
    pub(super) async fn lock_or_check_fence(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        epoch: Option<i64>,
    ) -> Result<bool> {
        match epoch {
            Some(epoch) => self.check_fence(tx, epoch).await,
            None => {
                sqlx::query(&self.view_sql.lock_fence).execute(&mut **tx).await?;
                Ok(true)
            }
        }
    }

    /// Inside compaction's transaction: moves the views' marks of `old` to
    /// `new`; `false` when some view has read only part of `old` (their
    /// rows could not be told apart once merged).
    pub(super) async fn carry_source_marks(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        project: &str,
        old: &[String],
        new: &str,
    ) -> Result<bool> {
        let s = &self.view_sql;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for chunk in old.chunks(PATHS_PER_STATEMENT) {
            let sql = s.paths_in("SELECT table_name FROM view_sources", chunk.len());
            let mut query = sqlx::query(&sql);
            for path in chunk {
                query = query.bind(path.as_str());
            }
            for row in query.fetch_all(&mut **tx).await? {
                *counts.entry(long_text(&row, "table_name")?).or_default() += 1;
            }
        }
        if counts.values().any(|&n| n != old.len()) {
            return Ok(false);
        }
        for chunk in old.chunks(PATHS_PER_STATEMENT) {
            let sql = s.paths_in("DELETE FROM view_sources", chunk.len());
            let mut query = sqlx::query(&sql);
            for path in chunk {
                query = query.bind(path.as_str());
            }
            query.execute(&mut **tx).await?;
        }
        for table_name in counts.keys() {
            sqlx::query(&s.insert_source).bind(project).bind(table_name.as_str()).bind(new).execute(&mut **tx).await?;
        }
        Ok(true)
    }

    pub(super) async fn source_marks_sql(&self, project: &str) -> Result<HashMap<String, BTreeSet<String>>> {
        let rows = sqlx::query(&self.view_sql.marks).bind(project).fetch_all(&self.pool).await?;
        let mut marks: HashMap<String, BTreeSet<String>> = HashMap::new();
        for row in &rows {
            marks.entry(long_text(row, "path")?).or_default().insert(long_text(row, "table_name")?);
        }
        Ok(marks)
    }

    pub(super) async fn derived_files_sql(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(&self.view_sql.derived_files).fetch_all(&self.pool).await?;
        rows.iter().map(|row| long_text(row, "path")).collect()
    }
}
