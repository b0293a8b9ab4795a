//! The invalidation log's PostgreSQL side: sequence numbers drawn under an advisory lock so readers
//! see a prefix, a `NOTIFY` on commit, and the `LISTEN` feed of the nodes that hear it.

use super::{PgStore, text};
use crate::store::{FeedEvent, Invalidation, InvalidationFeed, Millis, StoreResult, db};
use async_trait::async_trait;
use sqlx::{PgPool, Postgres, Transaction};

/// [`InvalidationStore::subscribe`](crate::store::InvalidationStore::subscribe): a feed that hears
/// every commit that records an invalidation, on any node.
pub(super) async fn subscribe(store: &PgStore) -> StoreResult<Option<Box<dyn InvalidationFeed>>> {
    let listener = listen(store.writer()).await.map_err(db)?;
    Ok(Some(Box::new(PgFeed {
        pool: store.writer().clone(),
        listener: Some(listener),
        retry_at: tokio::time::Instant::now(),
    })))
}

/// The advisory lock every writer of `invalidations` holds from drawing its sequence number until it
/// commits. Identity values are drawn outside transactions, so without it two writers can commit
/// out of order (seq 8 visible, seq 7 not yet), and a poller that has seen 8 would never read 7.
/// With it, a number is drawn only after every earlier one has committed or rolled back, so what a
/// reader sees is always a prefix of the sequence (rolled-back numbers are gaps nobody waits for).
/// The key is "keyway" in ASCII plus 1, unlikely to collide with another application's locks.
const INVALIDATIONS_LOCK: i64 = 0x6b65_7977_6179_0001;

/// Appends to the invalidation log inside `tx`. Callers make this the last thing a transaction does
/// before committing: the lock it takes is held until the commit, and a transaction holding it must
/// not wait for row locks (that could deadlock with one waiting for the lock).
pub(super) async fn record(
    tx: &mut Transaction<'_, Postgres>,
    change: &Invalidation,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(INVALIDATIONS_LOCK)
        .execute(&mut **tx)
        .await?;
    let (kind, key) = change.parts();
    sqlx::query("INSERT INTO invalidations (kind, key, at) VALUES ($1, $2, $3)")
        .bind(kind)
        .bind(text(&key))
        .bind(now)
        .execute(&mut **tx)
        .await?;
    // Delivered to every listening node when (and only if) this transaction commits; they then read
    // the log from where they were, so the notice itself carries nothing.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(NOTIFY_CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The channel invalidations are announced on.
const NOTIFY_CHANNEL: &str = "keyway_invalidations";

/// `LISTEN keyway_invalidations` on a connection of its own.
struct PgFeed {
    pool: PgPool,
    /// `None` after a failure, until a reconnection succeeds.
    listener: Option<sqlx::postgres::PgListener>,
    /// No reconnection attempt before this: not in a tight loop while the database is unreachable.
    /// Kept here, not in a sleep, because the caller may drop a pending `next` and call it again.
    retry_at: tokio::time::Instant,
}

/// How long after a failed or interrupted attempt the feed tries to reconnect.
const RELISTEN_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

async fn listen(pool: &PgPool) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}

#[async_trait]
impl InvalidationFeed for PgFeed {
    async fn next(&mut self) -> FeedEvent {
        loop {
            let Some(listener) = &mut self.listener else {
                tokio::time::sleep_until(self.retry_at).await;
                self.retry_at = tokio::time::Instant::now() + RELISTEN_DELAY;
                // A fresh connection rather than sqlx's reconnection: the failed one may still be
                // held, broken, by the old listener.
                match listen(&self.pool).await {
                    Ok(listener) => {
                        self.listener = Some(listener);
                        return FeedEvent::Lost;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for invalidations; retrying");
                        continue;
                    }
                }
            };
            return match listener.try_recv().await {
                Ok(Some(_)) => FeedEvent::Changed,
                // The connection dropped and sqlx has already reconnected and listens again (it
                // returns an error instead when it cannot). Notices sent meanwhile are lost, so the
                // caller must stop trusting its caches.
                Ok(None) => FeedEvent::Lost,
                Err(e) => {
                    tracing::warn!(error = %e, "the invalidation listener failed; reconnecting");
                    self.listener = None;
                    self.retry_at = tokio::time::Instant::now() + RELISTEN_DELAY;
                    FeedEvent::Down
                }
            };
        }
    }
}
