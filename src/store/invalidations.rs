//! The invalidation log: changes other processes must apply to their caches, read in sequence
//! order, and on PostgreSQL also announced as they commit.

use super::{Millis, StoreResult};
use async_trait::async_trait;

/// A change another process must apply to its caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    Session(String),
    User(i64),
    Keys,
}

/// What an [`InvalidationFeed`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEvent {
    /// Something was recorded: read the log from where you were.
    Changed,
    /// The feed was interrupted and has reconnected; anything may have been missed meanwhile.
    Lost,
}

#[async_trait]
pub trait InvalidationFeed: Send {
    /// Waits for the next event.
    async fn next(&mut self) -> FeedEvent;
}

/// The invalidation log's part of [`Store`](super::Store).
#[async_trait]
pub trait InvalidationStore: Send + Sync {
    /// Records a change other processes must apply to their caches.
    async fn record_invalidation(&self, change: &Invalidation, now: Millis) -> StoreResult<()>;
    /// Changes recorded after `seq`, oldest first, with their sequence numbers.
    async fn invalidations_since(&self, seq: i64) -> StoreResult<Vec<(i64, Invalidation)>>;
    /// The newest sequence number (0 when none).
    async fn last_invalidation(&self) -> StoreResult<i64>;
    /// A push feed that announces new invalidations as they commit, where the engine has one
    /// (PostgreSQL's `LISTEN`/`NOTIFY`); `None` where polling [`Store::invalidations_since`] is all
    /// there is.
    async fn subscribe(&self) -> StoreResult<Option<Box<dyn InvalidationFeed>>> {
        Ok(None)
    }
}

/// A log entry as both engines store it: a kind and a key.
#[derive(sqlx::FromRow)]
pub(super) struct InvalidationRow {
    seq: i64,
    kind: String,
    key: String,
}

impl InvalidationRow {
    /// The sequence number and the change; `None` for a kind this version does not know.
    pub(super) fn change(self) -> Option<(i64, Invalidation)> {
        let change = match self.kind.as_str() {
            "session" => Invalidation::Session(self.key),
            "user" => Invalidation::User(self.key.parse().ok()?),
            "keys" => Invalidation::Keys,
            _ => return None,
        };
        Some((self.seq, change))
    }
}

impl Invalidation {
    /// The kind and key it is stored as.
    pub(super) fn parts(&self) -> (&'static str, String) {
        match self {
            Self::Session(id) => ("session", id.clone()),
            Self::User(id) => ("user", id.to_string()),
            Self::Keys => ("keys", String::new()),
        }
    }
}
