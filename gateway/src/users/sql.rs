//! [`UserStore`] over sqlx's `Any` driver: SQLite, PostgreSQL, MySQL.
//!
//! A project's table is `users."<project>"` on PostgreSQL (Rakam's layout)
//! and `users_<project>` elsewhere; `id` is its key and `created_at` is
//! never null. Columns are added as properties appear; a column another
//! gateway added first is taken as it is.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;

use super::columns;
use super::{Change, ChangeKind, Error, Result, Row, UserStore};
use crate::metadata::sql::Dialect;
use crate::schema::types::{Field, FieldType};
use crate::schema::value::Scalar;

/// Identifiers longer than this are cut and given a hash (PostgreSQL keeps
/// 63 bytes of a name, MySQL 64).
const MAX_IDENTIFIER: usize = 60;

pub struct SqlUserStore {
    pool: AnyPool,
    dialect: Dialect,
    /// Columns known to exist in each project's table.
    ready: Mutex<HashMap<String, HashSet<String>>>,
}

impl SqlUserStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let dialect = Dialect::of(url).map_err(|_| Error::UnsupportedUrl(url.to_owned()))?;
        let pool = dialect.pool(url).await?;
        if dialect == Dialect::Postgres {
            create_schema(&pool).await?;
        }
        Ok(SqlUserStore { pool, dialect, ready: Mutex::new(HashMap::new()) })
    }

    fn quote(&self, name: &str) -> String {
        match self.dialect {
            Dialect::MySql => format!("`{name}`"),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{name}\""),
        }
    }

    /// The project's table, quoted.
    fn table(&self, project: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("users.{}", self.quote(&bounded(project))),
            Dialect::MySql | Dialect::Sqlite => self.quote(&bounded(&format!("users_{project}"))),
        }
    }

    fn known(&self, project: &str, columns: &[Field]) -> bool {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        ready.get(project).is_some_and(|known| columns.iter().all(|c| known.contains(&c.name)))
    }

    /// A read's error; a table or column found missing is checked again
    /// before the next use.
    fn failed_read(&self, project: &str, e: sqlx::Error) -> Error {
        let e = Error::from(e);
        if is_missing_object(&e) {
            self.forget(project);
        }
        e
    }

    fn forget(&self, project: &str) {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).remove(project);
    }

    async fn create_table(&self, project: &str, id_type: FieldType) -> Result<()> {
        let suffix = if self.dialect == Dialect::MySql { " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" } else { "" };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (id {} NOT NULL PRIMARY KEY, created_at BIGINT NOT NULL){suffix}",
            self.table(project),
            columns::id_sql_type(id_type)
        );
        // Two gateways creating the same table at once: one of them may be
        // told it exists (PostgreSQL), which is what was wanted.
        if let Err(first) = sqlx::query(&sql).execute(&self.pool).await {
            sqlx::query(&sql).execute(&self.pool).await.map_err(|_| first)?;
        }
        Ok(())
    }

    async fn add_column(&self, project: &str, column: &Field) -> Result<()> {
        let sql = format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            self.table(project),
            self.quote(&column.name),
            columns::sql_type(self.dialect, column.field_type)
        );
        match sqlx::query(&sql).execute(&self.pool).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_column(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn select(&self, project: &str, columns: &[Field]) -> String {
        let names: Vec<String> = columns.iter().map(|c| self.quote(&c.name)).collect();
        format!("SELECT {} FROM {}", names.join(", "), self.table(project))
    }

    fn decode(&self, row: &sqlx::any::AnyRow, columns: &[Field]) -> Result<Row> {
        columns.iter().enumerate().map(|(i, c)| columns::from_sql(self.dialect, row, i, c.field_type)).collect()
    }

    async fn apply_one(&self, tx: &mut sqlx::Transaction<'static, sqlx::Any>, table: &str, c: &Change) -> Result<()> {
        let d = self.dialect;
        let creates = !matches!(c.kind, ChangeKind::Unset(_));
        if creates {
            let sql = d.sql(&d.insert_ignore(&format!("{table} (id, created_at) VALUES (?, ?)")));
            let q = columns::id_to_sql(&c.id).bind(sqlx::query(&sql)).bind(c.created_at);
            q.execute(&mut **tx).await?;
        }
        let mut sets = Vec::new();
        let mut values = Vec::new();
        match &c.kind {
            ChangeKind::Set(assignments) => {
                for a in assignments {
                    sets.push(format!("{} = ?", self.quote(&a.column.name)));
                    values.push(columns::to_sql(d, a.column.field_type, a.value.as_ref()));
                }
            }
            ChangeKind::SetOnce(assignments) => {
                for a in assignments {
                    let col = self.quote(&a.column.name);
                    sets.push(format!("{col} = COALESCE({col}, ?)"));
                    values.push(columns::to_sql(d, a.column.field_type, a.value.as_ref()));
                }
            }
            ChangeKind::Unset(names) => {
                for name in names {
                    sets.push(format!("{} = NULL", self.quote(name)));
                }
            }
            ChangeKind::Increment(a) => {
                let col = self.quote(&a.column.name);
                sets.push(format!("{col} = COALESCE({col}, 0) + ?"));
                values.push(columns::to_sql(d, a.column.field_type, a.value.as_ref()));
            }
        }
        if sets.is_empty() {
            return Ok(());
        }
        let sql = d.sql(&format!("UPDATE {table} SET {} WHERE id = ?", sets.join(", ")));
        let mut q = sqlx::query(&sql);
        for v in values {
            q = v.bind(q);
        }
        q = columns::id_to_sql(&c.id).bind(q);
        q.execute(&mut **tx).await?;
        Ok(())
    }
}

async fn create_schema(pool: &AnyPool) -> Result<()> {
    let sql = "CREATE SCHEMA IF NOT EXISTS users";
    if let Err(first) = sqlx::query(sql).execute(pool).await {
        sqlx::query(sql).execute(pool).await.map_err(|_| first)?;
    }
    Ok(())
}

/// A name within [`MAX_IDENTIFIER`] bytes: longer ones keep their start
/// and get a hash of the whole.
fn bounded(name: &str) -> String {
    if name.len() <= MAX_IDENTIFIER {
        return name.to_owned();
    }
    let hash = hex::encode(&Sha256::digest(name.as_bytes())[..6]);
    format!("{}_{hash}", &name[..MAX_IDENTIFIER - 13])
}

fn is_duplicate_column(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|c| c == "42701" || c == "42S21")
                || db.message().to_ascii_lowercase().contains("duplicate column")
        }
        _ => false,
    }
}

/// Whether a failed read may be a table or column that another gateway
/// dropped or has not added here yet.
fn is_missing_object(e: &Error) -> bool {
    match e {
        Error::Database(sqlx::Error::Database(db)) => {
            let message = db.message().to_ascii_lowercase();
            db.code().is_some_and(|c| matches!(c.as_ref(), "42P01" | "42703" | "42S02" | "42S22"))
                || message.contains("no such table")
                || message.contains("no such column")
        }
        _ => false,
    }
}

#[async_trait]
impl UserStore for SqlUserStore {
    async fn ensure_columns(&self, project: &str, id_type: FieldType, columns: &[Field]) -> Result<()> {
        if self.known(project, columns) {
            return Ok(());
        }
        self.create_table(project, id_type).await?;
        for column in columns.iter().filter(|c| c.name != "id" && c.name != "created_at") {
            self.add_column(project, column).await?;
        }
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        let known = ready.entry(project.to_owned()).or_default();
        known.extend(["id".to_owned(), "created_at".to_owned()]);
        known.extend(columns.iter().map(|c| c.name.clone()));
        Ok(())
    }

    async fn apply(&self, project: &str, _id_type: FieldType, changes: &[Change]) -> Result<()> {
        let table = self.table(project);
        let mut tx = self.pool.begin_with(self.dialect.begin_write()).await?;
        for change in changes {
            if let Err(e) = self.apply_one(&mut tx, &table, change).await {
                if is_missing_object(&e) {
                    self.forget(project);
                }
                return Err(e);
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get(&self, project: &str, columns: &[Field], id: &Scalar<'_>) -> Result<Option<Row>> {
        let sql = self.dialect.sql(&format!("{} WHERE id = ?", self.select(project, columns)));
        let row = columns::id_to_sql(id)
            .bind(sqlx::query(&sql))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.failed_read(project, e))?;
        row.map(|row| self.decode(&row, columns)).transpose()
    }

    async fn rows(&self, project: &str, columns: &[Field]) -> Result<Vec<Row>> {
        let sql = format!("{} ORDER BY id", self.select(project, columns));
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await.map_err(|e| self.failed_read(project, e))?;
        rows.iter().map(|row| self.decode(row, columns)).collect()
    }

    async fn drop_project(&self, project: &str) -> Result<()> {
        self.forget(project);
        sqlx::query(&format!("DROP TABLE IF EXISTS {}", self.table(project))).execute(&self.pool).await?;
        self.forget(project);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_with_a_hash() {
        assert_eq!(bounded("shop"), "shop");
        let long = "a".repeat(100);
        let cut = bounded(&long);
        assert_eq!(cut.len(), MAX_IDENTIFIER);
        assert_ne!(cut, bounded(&format!("{}b", "a".repeat(99))), "names that differ late stay apart");
    }
}
