//! Projects' CRM upstreams in the SQL metadata store.

use sqlx::Row;

use super::sql::{Dialect, SqlMetadataStore, long_text};
use super::{CrmUpstream, Error, Result};

/// The statements, rendered for the dialect once at start.
pub(super) struct CrmStatements {
    upstream: String,
    insert: String,
    pub(super) delete_project_upstream: String,
}

impl CrmStatements {
    pub(super) fn new(d: Dialect) -> Self {
        CrmStatements {
            upstream: d.sql("SELECT url, headers, timeout_ms FROM crm_upstreams WHERE project = ?"),
            insert: d.sql(
                "INSERT INTO crm_upstreams (project, url, headers, timeout_ms, updated_at) VALUES (?, ?, ?, ?, ?)",
            ),
            delete_project_upstream: d.sql("DELETE FROM crm_upstreams WHERE project = ?"),
        }
    }
}

impl SqlMetadataStore {
    pub(super) async fn crm_upstream_sql(&self, project: &str) -> Result<Option<CrmUpstream>> {
        let Some(row) = sqlx::query(&self.crm_sql.upstream).bind(project).fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        let headers = long_text(&row, "headers")?;
        let headers: Vec<(String, String)> =
            serde_json::from_str(&headers).map_err(|e| Error::Corrupt(format!("CRM headers: {e}")))?;
        let timeout_ms: i64 = row.try_get("timeout_ms")?;
        Ok(Some(CrmUpstream {
            url: long_text(&row, "url")?,
            headers,
            timeout_ms: u64::try_from(timeout_ms).unwrap_or(0),
        }))
    }

    pub(super) async fn save_crm_upstream_sql(&self, project: &str, u: &CrmUpstream, now_ms: i64) -> Result<()> {
        let headers = serde_json::to_string(&u.headers).map_err(|e| Error::Corrupt(e.to_string()))?;
        let mut tx = self.begin_write().await?;
        sqlx::query(&self.crm_sql.delete_project_upstream).bind(project).execute(&mut *tx).await?;
        sqlx::query(&self.crm_sql.insert)
            .bind(project)
            .bind(u.url.as_str())
            .bind(headers)
            .bind(i64::try_from(u.timeout_ms).unwrap_or(i64::MAX))
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
