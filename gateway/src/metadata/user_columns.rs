//! The columns of each project's user table in the SQL metadata store.

use super::sql::{Dialect, SqlMetadataStore, long_text};
use super::{Error, Result};
use crate::schema::types::{Field, FieldType};

/// The statements, rendered for the dialect once at start.
pub(super) struct UserColumnStatements {
    columns: String,
    insert: String,
    pub(super) delete_project_columns: String,
}

impl UserColumnStatements {
    pub(super) fn new(d: Dialect) -> Self {
        UserColumnStatements {
            columns: d.sql("SELECT name, field_type FROM user_columns WHERE project = ? ORDER BY added_at, name"),
            insert: d.sql(&d.insert_ignore("user_columns (project, name, field_type, added_at) VALUES (?, ?, ?, ?)")),
            delete_project_columns: d.sql("DELETE FROM user_columns WHERE project = ?"),
        }
    }
}

impl SqlMetadataStore {
    pub(super) async fn user_columns_sql(&self, project: &str) -> Result<Vec<Field>> {
        let rows = sqlx::query(&self.user_column_sql.columns).bind(project).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let name = long_text(row, "name")?;
                let field_type = long_text(row, "field_type")?;
                let field_type: FieldType =
                    field_type.parse().map_err(|e| Error::Corrupt(format!("user column {name}: {e}")))?;
                Ok(Field::new(name, field_type))
            })
            .collect()
    }

    pub(super) async fn add_user_columns_sql(
        &self,
        project: &str,
        fields: &[Field],
        now_ms: i64,
    ) -> Result<Vec<Field>> {
        let mut tx = self.begin_write().await?;
        for f in fields {
            sqlx::query(&self.user_column_sql.insert)
                .bind(project)
                .bind(f.name.as_str())
                .bind(f.field_type.to_string())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.user_columns_sql(project).await
    }
}
