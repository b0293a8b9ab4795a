//! The rest of [`Store`], on both engines (this file is compiled once per
//! engine: see `store/mod.rs`).

use super::{Db, Engine, SHARED_BY_NODES};
use crate::store::{Millis, Store, StoreResult, db};
use async_trait::async_trait;

impl Engine {
    /// Where reads go (see [`Pools`](crate::store::Pools)).
    pub(super) fn reader(&self) -> &sqlx::Pool<Db> {
        &self.pools.reader
    }

    /// Where writes go.
    pub(super) fn writer(&self) -> &sqlx::Pool<Db> {
        &self.pools.writer
    }
}

/// A statement run for its effect: the engine's error mapped in one place, and what it changed (rows
/// affected) returned for the conditional updates that are claims.
pub(super) trait Run {
    async fn run<'c, E: sqlx::Executor<'c, Database = Db>>(self, on: E) -> StoreResult<u64>;
}

impl Run for sqlx::query::Query<'_, Db, <Db as sqlx::Database>::Arguments> {
    async fn run<'c, E: sqlx::Executor<'c, Database = Db>>(self, on: E) -> StoreResult<u64> {
        Ok(self.execute(on).await.map_err(db)?.rows_affected())
    }
}

#[async_trait]
impl Store for Engine {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").run(self.reader()).await?;
        Ok(())
    }

    async fn prune(
        &self,
        sessions_before: Millis,
        invalidations_before: Millis,
    ) -> StoreResult<()> {
        // What ended before `sessions_before`.
        const ENDED: [&str; 3] = [
            "DELETE FROM sessions WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)",
            "DELETE FROM one_time_codes WHERE expires_at < $1",
            "DELETE FROM sso_states WHERE expires_at < $1",
        ];
        // The log before `invalidations_before`, and throttle state: windows and failures older
        // than a day count for nothing (the longest window is an hour), trust that ended a day ago
        // is gone.
        const STALE: [&str; 4] = [
            "DELETE FROM invalidations WHERE at < $1",
            "DELETE FROM rate_windows WHERE started < $1",
            "DELETE FROM throttle_buckets WHERE last_at < $1",
            "DELETE FROM trusted_clients WHERE until < $1",
        ];
        for (statements, before) in [
            (&ENDED[..], sessions_before),
            (&STALE[..], invalidations_before),
        ] {
            for &sql in statements {
                sqlx::query(sql).bind(before).run(self.writer()).await?;
            }
        }
        Ok(())
    }

    fn shared_by_nodes(&self) -> bool {
        SHARED_BY_NODES
    }
}
