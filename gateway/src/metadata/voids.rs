//! Voided appends in the SQL metadata store: appends to a shared event log
//! that their writer answered as failed, which the batch loop must skip;
//! and how far each writer has decided its appends.

use std::collections::{HashMap, HashSet};

use sqlx::Row;
use sqlx::any::AnyRow;

use super::sql::{Dialect, SqlMetadataStore};
use super::{AppendId, Result};

/// The statements, rendered for the dialect once at start.
pub(super) struct VoidStatements {
    insert: String,
    prune: String,
    register_writer: String,
    mark_decided: String,
    prune_writers: String,
}

impl VoidStatements {
    pub(super) fn new(d: Dialect) -> Self {
        VoidStatements {
            insert: d.sql(&d.insert_ignore("voided_appends (writer, seq, voided_at) VALUES (?, ?, ?)")),
            prune: d.sql("DELETE FROM voided_appends WHERE voided_at < ?"),
            register_writer: d
                .sql(&d.insert_ignore("log_writers (writer, decided_below, updated_at) VALUES (?, 0, ?)")),
            mark_decided: d.sql("UPDATE log_writers SET decided_below = ?, updated_at = ? WHERE writer = ?"),
            prune_writers: d.sql("DELETE FROM log_writers WHERE updated_at < ?"),
        }
    }
}

/// Writers and sequence numbers are stored as BIGINT, bit for bit.
fn signed(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

fn unsigned(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

impl SqlMetadataStore {
    pub(super) async fn void_appends_sql(&self, appends: &[AppendId], now_ms: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for a in appends {
            sqlx::query(&self.void_sql.insert)
                .bind(signed(a.writer))
                .bind(signed(a.seq))
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn voided_appends_sql(&self, writers: &[u64]) -> Result<HashSet<AppendId>> {
        let rows = self.rows_of_writers("SELECT writer, seq FROM voided_appends", writers).await?;
        rows.iter()
            .map(|row| {
                let (writer, seq): (i64, i64) = (row.try_get("writer")?, row.try_get("seq")?);
                Ok(AppendId { writer: unsigned(writer), seq: unsigned(seq) })
            })
            .collect()
    }

    /// The rows of `select` (a query without a WHERE) whose writer is one
    /// of `writers`.
    async fn rows_of_writers(&self, select: &str, writers: &[u64]) -> Result<Vec<AnyRow>> {
        let mut rows = Vec::new();
        // In chunks, to stay far below every database's placeholder limit.
        for chunk in writers.chunks(500) {
            let places = vec!["?"; chunk.len()].join(", ");
            let sql = self.dialect.sql(&format!("{select} WHERE writer IN ({places})"));
            let mut query = sqlx::query(&sql);
            for w in chunk {
                query = query.bind(signed(*w));
            }
            rows.extend(query.fetch_all(&self.pool).await?);
        }
        Ok(rows)
    }

    pub(super) async fn prune_voided_appends_sql(&self, before_ms: i64) -> Result<u64> {
        sqlx::query(&self.void_sql.prune_writers).bind(before_ms).execute(&self.pool).await?;
        Ok(sqlx::query(&self.void_sql.prune).bind(before_ms).execute(&self.pool).await?.rows_affected())
    }

    pub(super) async fn mark_decided_sql(&self, writer: u64, below: u64, now_ms: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&self.void_sql.register_writer).bind(signed(writer)).bind(now_ms).execute(&mut *tx).await?;
        sqlx::query(&self.void_sql.mark_decided)
            .bind(signed(below))
            .bind(now_ms)
            .bind(signed(writer))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn decided_marks_sql(&self, writers: &[u64]) -> Result<HashMap<u64, u64>> {
        let rows = self.rows_of_writers("SELECT writer, decided_below FROM log_writers", writers).await?;
        rows.iter()
            .map(|row| {
                let (writer, below): (i64, i64) = (row.try_get("writer")?, row.try_get("decided_below")?);
                Ok((unsigned(writer), unsigned(below)))
            })
            .collect()
    }
}
