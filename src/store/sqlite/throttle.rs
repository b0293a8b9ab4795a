//! The login throttle on SQLite: `BEGIN IMMEDIATE` puts deciders one after the other, and the
//! decision is [`ThrottleRule::wait`](crate::store::ThrottleRule::wait) in Rust.

use super::SqliteStore;
use super::store::Run;
use crate::store::{
    Millis, StoreResult, THROTTLE_WINDOW_MS, ThrottleAttempt, ThrottleSuccess, ThrottleVerdict, db,
};
use sqlx::{Sqlite, Transaction};

/// [`LimitStore::throttle_attempt`](crate::store::LimitStore::throttle_attempt).
pub(super) async fn attempt(
    store: &SqliteStore,
    a: ThrottleAttempt<'_>,
) -> StoreResult<ThrottleVerdict> {
    let ThrottleAttempt { keys, now, rule } = a;
    // One process on a SQLite file keeps this state in memory (shared_by_nodes is false); this is
    // the same contract for processes that share the file. BEGIN IMMEDIATE takes the write lock
    // before reading, so two deciders are one after the other; the transaction rolls back if this
    // future is dropped half-way.
    let mut tx = store
        .writer()
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db)?;
    let trusted = match keys.client {
        Some((ip, own)) => sqlx::query_scalar::<_, i64>(
            "SELECT 1 FROM trusted_clients WHERE account = $1 AND ip = $2 AND until > $3",
        )
        .bind(keys.account)
        .bind(ip)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .map(|_| own),
        None => None,
    };
    let bucket = trusted.unwrap_or(keys.account);
    let mut times = bucket_times(&mut tx, bucket).await?;
    times.retain(|t| *t > now - THROTTLE_WINDOW_MS);
    let wait_ms = rule.wait(&times, now);
    if wait_ms == 0 {
        times.push(now);
    }
    sqlx::query(
        "INSERT INTO throttle_buckets (bucket, times, last_at, wait_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (bucket) DO UPDATE SET times = excluded.times, \
         last_at = max(last_at, excluded.last_at), wait_ms = excluded.wait_ms",
    )
    .bind(bucket)
    .bind(serde_json::Value::from(times).to_string())
    .bind(now)
    .bind(wait_ms)
    .run(&mut *tx)
    .await?;
    tx.commit().await.map_err(db)?;
    Ok(ThrottleVerdict {
        bucket: bucket.to_owned(),
        wait_ms,
    })
}

/// [`LimitStore::throttle_success`](crate::store::LimitStore::throttle_success).
pub(super) async fn success(store: &SqliteStore, success: ThrottleSuccess<'_>) -> StoreResult<()> {
    let mut tx = store
        .writer()
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db)?;
    if let Some((ip, own)) = success.keys.client {
        sqlx::query(
            "INSERT INTO trusted_clients (account, ip, until) VALUES ($1, $2, $3) \
             ON CONFLICT (account, ip) DO UPDATE SET until = excluded.until",
        )
        .bind(success.keys.account)
        .bind(ip)
        .bind(success.trusted_until)
        .run(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM throttle_buckets WHERE bucket = $1")
            .bind(own)
            .run(&mut *tx)
            .await?;
    }
    let mut times = bucket_times(&mut tx, success.bucket).await?;
    if let Some(i) = times.iter().position(|t| *t == success.at) {
        times.remove(i);
        sqlx::query("UPDATE throttle_buckets SET times = $2 WHERE bucket = $1")
            .bind(success.bucket)
            .bind(serde_json::Value::from(times).to_string())
            .run(&mut *tx)
            .await?;
    }
    tx.commit().await.map_err(db)
}

/// The attempt times `bucket` has counted (a JSON array in `throttle_buckets.times`), none when it
/// has no row or one this version cannot read.
async fn bucket_times(tx: &mut Transaction<'_, Sqlite>, bucket: &str) -> StoreResult<Vec<Millis>> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT times FROM throttle_buckets WHERE bucket = $1")
            .bind(bucket)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
    Ok(stored
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}
