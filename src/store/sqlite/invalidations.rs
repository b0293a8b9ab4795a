//! The invalidation log on SQLite: other processes on the same file poll it.

use super::{SqliteStore, db};
use crate::store::invalidations::InvalidationRow;
use crate::store::{Invalidation, InvalidationStore, Millis, StoreResult};
use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

#[async_trait]
impl InvalidationStore for SqliteStore {
    async fn record_invalidation(&self, change: &Invalidation, now: Millis) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        record(&mut tx, change, now).await.map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn invalidations_since(&self, seq: i64) -> StoreResult<Vec<(i64, Invalidation)>> {
        let rows: Vec<InvalidationRow> =
            sqlx::query_as("SELECT seq, kind, key FROM invalidations WHERE seq > ? ORDER BY seq")
                .bind(seq)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        Ok(rows
            .into_iter()
            .filter_map(InvalidationRow::change)
            .collect())
    }

    async fn last_invalidation(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM invalidations")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }
}

pub(super) async fn record(
    tx: &mut Transaction<'_, Sqlite>,
    change: &Invalidation,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let (kind, key) = change.parts();
    sqlx::query("INSERT INTO invalidations (kind, key, at) VALUES (?, ?, ?)")
        .bind(kind)
        .bind(key)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
