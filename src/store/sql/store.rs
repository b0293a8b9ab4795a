//! The rest of [`Store`](crate::store::Store), on both engines (this file is compiled once per
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

#[async_trait]
impl Store for Engine {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(self.reader())
            .await
            .map_err(db)?;
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
                sqlx::query(sql)
                    .bind(before)
                    .execute(self.writer())
                    .await
                    .map_err(db)?;
            }
        }
        Ok(())
    }

    fn shared_by_nodes(&self) -> bool {
        SHARED_BY_NODES
    }
}
