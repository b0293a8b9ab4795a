//! Rate-limit windows and the login throttle, on both engines (this file is compiled once per
//! engine: see `store/mod.rs`). The throttle's decision is each engine's own, in its `throttle.rs`:
//! SQLite reads and writes under `BEGIN IMMEDIATE`, PostgreSQL decides in one upsert.

use super::{Engine, text, throttle};
use crate::store::{
    LimitStore, Millis, StoreError, StoreResult, ThrottleAttempt, ThrottleSuccess, ThrottleVerdict,
    db,
};
use async_trait::async_trait;

#[async_trait]
impl LimitStore for Engine {
    async fn hit_window(
        &self,
        key: &str,
        now: Millis,
        window_ms: i64,
    ) -> StoreResult<(Millis, u32)> {
        // One statement, so two nodes counting the same window at once both count. The SET
        // expressions read the row as it was, so both see the same verdict on the old window.
        // (`count` is an INTEGER on PostgreSQL, read here as the BIGINT it is on SQLite.)
        let (started, count): (i64, i64) = sqlx::query_as(
            "INSERT INTO rate_windows (key, started, count) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
             count = CASE WHEN rate_windows.started + $3 <= $2 THEN 1 ELSE rate_windows.count + 1 END, \
             started = CASE WHEN rate_windows.started + $3 <= $2 THEN $2 ELSE rate_windows.started END \
             RETURNING started, CAST(count AS BIGINT)",
        )
        .bind(text(key))
        .bind(now)
        .bind(window_ms)
        .fetch_all(self.writer())
        .await
        .map_err(db)?
        .pop()
        .ok_or_else(|| StoreError::Database("upsert returned no row".into()))?;
        Ok((started, u32::try_from(count).unwrap_or(u32::MAX)))
    }

    async fn throttle_attempt(&self, attempt: ThrottleAttempt<'_>) -> StoreResult<ThrottleVerdict> {
        throttle::attempt(self, attempt).await
    }

    async fn throttle_success(&self, success: ThrottleSuccess<'_>) -> StoreResult<()> {
        throttle::success(self, success).await
    }
}
