//! The ids of loaded events in the SQL metadata store: one row per load
//! that stored events with ids, written in the load's transaction.

use sqlx::Row;

use super::sql::{Dialect, SqlMetadataStore};
use super::{LoadedIds, Result, StoredIds};

/// The statements, rendered for the dialect once at start.
pub(super) struct EventIdStatements {
    insert: String,
    since: String,
    forget: String,
    pub(super) delete_project: String,
}

impl EventIdStatements {
    pub(super) fn new(d: Dialect) -> Self {
        EventIdStatements {
            insert: d.sql(
                "INSERT INTO loaded_event_ids (topic, log_partition, first_offset, project, id_keys, loaded_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            ),
            since: d.sql("SELECT project, id_keys, loaded_at FROM loaded_event_ids WHERE loaded_at >= ?"),
            forget: d.sql("DELETE FROM loaded_event_ids WHERE loaded_at < ?"),
            delete_project: d.sql("DELETE FROM loaded_event_ids WHERE project = ?"),
        }
    }
}

impl SqlMetadataStore {
    pub(super) async fn insert_event_ids(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        ids: &LoadedIds,
        now_ms: i64,
    ) -> Result<()> {
        sqlx::query(&self.event_id_sql.insert)
            .bind(ids.topic.as_str())
            .bind(i64::from(ids.partition))
            .bind(i64::try_from(ids.first_offset).unwrap_or(i64::MAX))
            .bind(ids.project.as_str())
            .bind(ids.keys.clone())
            .bind(now_ms)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub(super) async fn loaded_ids_sql(&self, since_ms: i64) -> Result<Vec<StoredIds>> {
        let rows = sqlx::query(&self.event_id_sql.since).bind(since_ms).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(StoredIds {
                    project: r.try_get("project")?,
                    keys: r.try_get("id_keys")?,
                    loaded_ms: r.try_get("loaded_at")?,
                })
            })
            .collect()
    }

    pub(super) async fn forget_ids_sql(&self, before_ms: i64) -> Result<u64> {
        Ok(sqlx::query(&self.event_id_sql.forget).bind(before_ms).execute(&self.pool).await?.rows_affected())
    }
}
