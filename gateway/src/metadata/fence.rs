//! The master's fence in the SQL metadata store: one row holding the epoch
//! of the newest lead. Claims only raise it; every master commit first
//! bumps the row's commit count where the epoch is still its own, which
//! both checks the fence and locks the row until the commit ends, so a
//! newer master's claim waits for a commit in flight instead of passing it.

use sqlx::Row;

use super::sql::{Dialect, SqlMetadataStore};
use super::{MasterEpoch, Result};

pub(super) struct FenceStatements {
    read: String,
    claim: String,
    claim_next: String,
    renew: String,
    release: String,
    check: String,
}

impl FenceStatements {
    pub(super) fn new(d: Dialect) -> Self {
        FenceStatements {
            read: d.sql("SELECT epoch, holder, renewed_at FROM master_epoch WHERE id = 1"),
            claim: d.sql("UPDATE master_epoch SET epoch = ?, holder = ?, renewed_at = ? WHERE id = 1 AND epoch < ?"),
            claim_next: d.sql(
                "UPDATE master_epoch SET epoch = epoch + 1, holder = ?, renewed_at = ? \
                 WHERE id = 1 AND (holder = ? OR holder = '' OR renewed_at < ?)",
            ),
            renew: d.sql("UPDATE master_epoch SET renewed_at = ? WHERE id = 1 AND epoch = ?"),
            release: d.sql("UPDATE master_epoch SET holder = '', renewed_at = 0 WHERE id = 1 AND epoch = ?"),
            check: d.sql("UPDATE master_epoch SET commits = commits + 1 WHERE id = 1 AND epoch = ?"),
        }
    }
}

impl SqlMetadataStore {
    pub(super) async fn master_epoch_sql(&self) -> Result<MasterEpoch> {
        let row = sqlx::query(&self.fence_sql.read).fetch_one(&self.pool).await?;
        Ok(MasterEpoch {
            epoch: row.try_get("epoch")?,
            holder: row.try_get("holder")?,
            renewed_at: row.try_get("renewed_at")?,
        })
    }

    pub(super) async fn claim_epoch_sql(&self, epoch: i64, holder: &str, now_ms: i64) -> Result<bool> {
        let done = sqlx::query(&self.fence_sql.claim)
            .bind(epoch)
            .bind(holder)
            .bind(now_ms)
            .bind(epoch)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn claim_next_epoch_sql(&self, holder: &str, now_ms: i64, live_since: i64) -> Result<Option<i64>> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&self.fence_sql.claim_next)
            .bind(holder)
            .bind(now_ms)
            .bind(holder)
            .bind(live_since)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let epoch: i64 = sqlx::query(&self.fence_sql.read).fetch_one(&mut *tx).await?.try_get("epoch")?;
        tx.commit().await?;
        Ok(Some(epoch))
    }

    pub(super) async fn renew_epoch_sql(&self, epoch: i64, now_ms: i64) -> Result<bool> {
        let done = sqlx::query(&self.fence_sql.renew).bind(now_ms).bind(epoch).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn release_epoch_sql(&self, epoch: i64) -> Result<()> {
        sqlx::query(&self.fence_sql.release).bind(epoch).execute(&self.pool).await?;
        Ok(())
    }

    /// Checks, inside a commit's transaction, that `epoch` still leads, and
    /// holds the fence's row until the transaction ends.
    pub(super) async fn check_fence(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, epoch: i64) -> Result<bool> {
        let done = sqlx::query(&self.fence_sql.check).bind(epoch).execute(&mut **tx).await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn while_fenced_sql(&self, epoch: i64, work: futures::future::BoxFuture<'_, ()>) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        if !self.check_fence(&mut tx, epoch).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        work.await;
        tx.commit().await?;
        Ok(true)
    }
}
