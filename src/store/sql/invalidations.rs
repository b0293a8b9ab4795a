//! The invalidation log, on both engines (this file is compiled once per engine: see
//! `store/mod.rs`). Appending to it (`record`, inside the change's own transaction) and announcing
//! it (`subscribe`) are each engine's own: PostgreSQL draws sequence numbers under an advisory lock
//! and pushes a `NOTIFY`, SQLite's other processes poll.

use super::{Engine, record, subscribe};
use crate::store::invalidations::InvalidationRow;
use crate::store::{Invalidation, InvalidationFeed, InvalidationStore, Millis, StoreResult, db};
use async_trait::async_trait;

#[async_trait]
impl InvalidationStore for Engine {
    async fn record_invalidation(&self, change: &Invalidation, now: Millis) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        record(&mut tx, change, now).await.map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn invalidations_since(&self, seq: i64) -> StoreResult<Vec<(i64, Invalidation)>> {
        let rows: Vec<InvalidationRow> =
            sqlx::query_as("SELECT seq, kind, key FROM invalidations WHERE seq > $1 ORDER BY seq")
                .bind(seq)
                .fetch_all(self.reader())
                .await
                .map_err(db)?;
        Ok(rows
            .into_iter()
            .filter_map(InvalidationRow::change)
            .collect())
    }

    async fn last_invalidation(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM invalidations")
            .fetch_one(self.reader())
            .await
            .map_err(db)
    }

    async fn subscribe(&self) -> StoreResult<Option<Box<dyn InvalidationFeed>>> {
        subscribe(self).await
    }
}
