//! Plugins and their components in the SQL metadata store.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::sql::{Dialect, SqlMetadataStore, long_text};
use super::{PluginChange, PluginRecord, PluginUpload, Result};

const PLUGIN_COLUMNS: &str = "project, name, hook, position, on_error, memory_mb, timeout_ms, sha256, version, \
                              revision, config, enabled, updated_at";

/// The plugin statements, rendered for the dialect once at start.
pub(super) struct PluginStatements {
    insert_component: String,
    component: String,
    plugin: String,
    plugins_of: String,
    all_plugins: String,
    insert_plugin: String,
    update_upload: String,
    update_config: String,
    update_enabled: String,
    delete_plugin: String,
    delete_orphan_components: String,
    pub(super) delete_project_plugins: String,
}

impl PluginStatements {
    pub(super) fn new(d: Dialect) -> Self {
        PluginStatements {
            insert_component: d.sql(&d.insert_ignore("plugin_components (sha256, bytes, created_at) VALUES (?, ?, ?)")),
            component: d.sql("SELECT bytes FROM plugin_components WHERE sha256 = ?"),
            plugin: d.sql(&format!("SELECT {PLUGIN_COLUMNS} FROM plugins WHERE project = ? AND name = ?")),
            plugins_of: d.sql(&format!(
                "SELECT {PLUGIN_COLUMNS} FROM plugins WHERE project = ? ORDER BY hook, position, name"
            )),
            all_plugins: d.sql(&format!("SELECT {PLUGIN_COLUMNS} FROM plugins ORDER BY project, hook, position, name")),
            insert_plugin: d.sql(&format!(
                "INSERT INTO plugins ({PLUGIN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 1, 'null', 1, ?)"
            )),
            update_upload: d.sql(
                "UPDATE plugins SET hook = ?, position = ?, on_error = ?, memory_mb = ?, timeout_ms = ?, sha256 = ?, \
                 version = version + 1, revision = revision + 1, updated_at = ? WHERE project = ? AND name = ?",
            ),
            update_config: d.sql(
                "UPDATE plugins SET config = ?, revision = revision + 1, updated_at = ? WHERE project = ? AND name = ?",
            ),
            update_enabled: d.sql(
                "UPDATE plugins SET enabled = ?, revision = revision + 1, updated_at = ? WHERE project = ? AND name = ?",
            ),
            delete_plugin: d.sql("DELETE FROM plugins WHERE project = ? AND name = ?"),
            delete_orphan_components: d.sql(
                "DELETE FROM plugin_components WHERE sha256 = ? AND NOT EXISTS \
                 (SELECT 1 FROM plugins WHERE plugins.sha256 = plugin_components.sha256)",
            ),
            delete_project_plugins: d.sql("DELETE FROM plugins WHERE project = ?"),
        }
    }
}

fn plugin_row(row: &AnyRow) -> Result<PluginRecord> {
    Ok(PluginRecord {
        project: row.try_get("project")?,
        name: row.try_get("name")?,
        hook: row.try_get("hook")?,
        position: row.try_get("position")?,
        on_error: row.try_get("on_error")?,
        memory_mb: row.try_get("memory_mb")?,
        timeout_ms: row.try_get("timeout_ms")?,
        sha256: row.try_get("sha256")?,
        version: row.try_get("version")?,
        revision: row.try_get("revision")?,
        config: long_text(row, "config")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        updated_at: row.try_get("updated_at")?,
    })
}

impl SqlMetadataStore {
    pub(super) async fn put_component_sql(&self, sha256: &str, bytes: &[u8], now_ms: i64) -> Result<()> {
        sqlx::query(&self.plugin_sql.insert_component)
            .bind(sha256)
            .bind(bytes.to_vec())
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn component_sql(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query(&self.plugin_sql.component).bind(sha256).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(row) => Some(row.try_get::<Vec<u8>, _>("bytes")?),
            None => None,
        })
    }

    pub(super) async fn save_plugin_sql(&self, u: PluginUpload<'_>, now_ms: i64) -> Result<PluginRecord> {
        let mut tx = self.begin_write().await?;
        let previous =
            sqlx::query(&self.plugin_sql.plugin).bind(u.project).bind(u.name).fetch_optional(&mut *tx).await?;
        let updated = sqlx::query(&self.plugin_sql.update_upload)
            .bind(u.hook)
            .bind(u.position)
            .bind(u.on_error)
            .bind(u.memory_mb)
            .bind(u.timeout_ms)
            .bind(u.sha256)
            .bind(now_ms)
            .bind(u.project)
            .bind(u.name)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(&self.plugin_sql.insert_plugin)
                .bind(u.project)
                .bind(u.name)
                .bind(u.hook)
                .bind(u.position)
                .bind(u.on_error)
                .bind(u.memory_mb)
                .bind(u.timeout_ms)
                .bind(u.sha256)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query(&self.plugin_sql.plugin).bind(u.project).bind(u.name).fetch_one(&mut *tx).await?;
        let record = plugin_row(&row)?;
        // The component the previous version ran, once nothing uses it.
        if let Some(previous) = previous {
            let old: String = previous.try_get("sha256")?;
            sqlx::query(&self.plugin_sql.delete_orphan_components).bind(old).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(record)
    }

    pub(super) async fn plugins_sql(&self, project: Option<&str>) -> Result<Vec<PluginRecord>> {
        let rows = match project {
            Some(p) => sqlx::query(&self.plugin_sql.plugins_of).bind(p).fetch_all(&self.pool).await?,
            None => sqlx::query(&self.plugin_sql.all_plugins).fetch_all(&self.pool).await?,
        };
        rows.iter().map(plugin_row).collect()
    }

    pub(super) async fn change_plugin_sql(
        &self,
        project: &str,
        name: &str,
        change: PluginChange,
        now_ms: i64,
    ) -> Result<Option<PluginRecord>> {
        let mut tx = self.begin_write().await?;
        let done = match change {
            PluginChange::Config(config) => {
                sqlx::query(&self.plugin_sql.update_config).bind(config).bind(now_ms).bind(project).bind(name)
            }
            PluginChange::Enabled(on) => {
                sqlx::query(&self.plugin_sql.update_enabled).bind(i64::from(on)).bind(now_ms).bind(project).bind(name)
            }
        }
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let row = sqlx::query(&self.plugin_sql.plugin).bind(project).bind(name).fetch_one(&mut *tx).await?;
        let record = plugin_row(&row)?;
        tx.commit().await?;
        Ok(Some(record))
    }

    pub(super) async fn delete_plugin_sql(&self, project: &str, name: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&self.plugin_sql.plugin).bind(project).bind(name).fetch_optional(&mut *tx).await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let sha256: String = row.try_get("sha256")?;
        sqlx::query(&self.plugin_sql.delete_plugin).bind(project).bind(name).execute(&mut *tx).await?;
        sqlx::query(&self.plugin_sql.delete_orphan_components).bind(sha256).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}
