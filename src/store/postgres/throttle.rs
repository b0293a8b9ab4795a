//! The login throttle on PostgreSQL: each decision is one statement, whose row lock orders racing
//! attempts on any number of nodes.

use super::store::Run;
use super::{PgStore, text};
use crate::store::{
    StoreResult, THROTTLE_WINDOW_MS, ThrottleAttempt, ThrottleSuccess, ThrottleVerdict, db,
};

/// [`LimitStore::throttle_attempt`](crate::store::LimitStore::throttle_attempt).
pub(super) async fn attempt(
    store: &PgStore,
    a: ThrottleAttempt<'_>,
) -> StoreResult<ThrottleVerdict> {
    let ThrottleAttempt { keys, now, rule } = a;
    // One upsert: ON CONFLICT locks the bucket's row and its SET reads the newest committed
    // version, so attempts racing on any number of nodes are decided one after the other, each
    // on the attempts counted before it. ThrottleRule::wait in SQL: attempts older than the
    // window drop out; at the cap, wait until the oldest leaves; past the free ones, wait a
    // pause doubling from one second (at most the longest pause) after the newest.
    let (ip, own) = keys.client.unzip();
    let (bucket, wait_ms): (String, i64) = sqlx::query_as(
        "INSERT INTO throttle_buckets AS b (bucket, times, last_at, wait_ms) \
         SELECT CASE WHEN EXISTS (SELECT 1 FROM trusted_clients t \
                  WHERE t.account = $1 AND t.ip = $2 AND t.until > $4) THEN $3 ELSE $1 END, \
                ARRAY[$4]::BIGINT[], $4, 0 \
         ON CONFLICT (bucket) DO UPDATE SET (times, last_at, wait_ms) = ( \
           SELECT CASE WHEN v.wait = 0 THEN v.kept || $4 ELSE v.kept END, \
                  GREATEST(b.last_at, $4), v.wait \
           FROM (SELECT k.kept, CASE \
               WHEN k.n >= $7 THEN k.first + $8 - $4 \
               WHEN k.n >= $5 AND $4 - k.last < LEAST(1000::BIGINT << LEAST(k.n - $5, 20)::INT, $6) \
                 THEN k.last + LEAST(1000::BIGINT << LEAST(k.n - $5, 20)::INT, $6) - $4 \
               ELSE 0 END AS wait \
             FROM (SELECT COALESCE(array_agg(t ORDER BY t), '{}') AS kept, count(*) AS n, \
                     min(t) AS first, max(t) AS last \
                   FROM unnest(b.times) AS t WHERE t > $4 - $8) k) v) \
         RETURNING bucket, wait_ms",
    )
    .bind(text(keys.account))
    .bind(ip.map(text))
    .bind(own.map(text))
    .bind(now)
    .bind(i64::from(rule.free))
    .bind(rule.max_pause_ms)
    .bind(i64::from(rule.hourly_cap.max(1)))
    .bind(THROTTLE_WINDOW_MS)
    .fetch_one(store.writer())
    .await
    .map_err(db)?;
    Ok(ThrottleVerdict { bucket, wait_ms })
}

/// [`LimitStore::throttle_success`](crate::store::LimitStore::throttle_success).
pub(super) async fn success(store: &PgStore, success: ThrottleSuccess<'_>) -> StoreResult<()> {
    // One statement: the trust, the client's own bucket cleared, and the attempt taken back
    // (one occurrence of its time) where that was another bucket. The guard keeps the DELETE
    // and the UPDATE off the same row, which one statement may not change twice.
    let (ip, own) = success.keys.client.unzip();
    sqlx::query(
        "WITH trusted AS ( \
           INSERT INTO trusted_clients (account, ip, until) SELECT $1, $2, $6 WHERE $2 IS NOT NULL \
           ON CONFLICT (account, ip) DO UPDATE SET until = excluded.until), \
         cleared AS (DELETE FROM throttle_buckets WHERE bucket = $3) \
         UPDATE throttle_buckets \
         SET times = times[:array_position(times, $5) - 1] || times[array_position(times, $5) + 1:] \
         WHERE bucket = $4 AND bucket IS DISTINCT FROM $3 AND $5 = ANY(times)",
    )
    .bind(text(success.keys.account))
    .bind(ip.map(text))
    .bind(own.map(text))
    .bind(text(success.bucket))
    .bind(success.at)
    .bind(success.trusted_until)
    .run(store.writer()).await?;
    Ok(())
}
