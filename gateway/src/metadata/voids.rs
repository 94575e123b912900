//! Voided appends in the SQL metadata store: appends to a shared event log
//! that their writer answered as failed, which the batch loop must skip.

use std::collections::HashSet;

use sqlx::Row;

use super::sql::{Dialect, SqlMetadataStore};
use super::{AppendId, Result};

/// The statements, rendered for the dialect once at start.
pub(super) struct VoidStatements {
    insert: String,
    prune: String,
}

impl VoidStatements {
    pub(super) fn new(d: Dialect) -> Self {
        VoidStatements {
            insert: d.sql(&d.insert_ignore("voided_appends (writer, seq, voided_at) VALUES (?, ?, ?)")),
            prune: d.sql("DELETE FROM voided_appends WHERE voided_at < ?"),
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
        let mut voided = HashSet::new();
        // In chunks, to stay far below every database's placeholder limit.
        for chunk in writers.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = self.dialect.sql(&format!("SELECT writer, seq FROM voided_appends WHERE writer IN ({marks})"));
            let mut query = sqlx::query(&sql);
            for w in chunk {
                query = query.bind(signed(*w));
            }
            for row in query.fetch_all(&self.pool).await? {
                let writer: i64 = row.try_get("writer")?;
                let seq: i64 = row.try_get("seq")?;
                voided.insert(AppendId { writer: unsigned(writer), seq: unsigned(seq) });
            }
        }
        Ok(voided)
    }

    pub(super) async fn prune_voided_appends_sql(&self, before_ms: i64) -> Result<u64> {
        Ok(sqlx::query(&self.void_sql.prune).bind(before_ms).execute(&self.pool).await?.rows_affected())
    }
}
