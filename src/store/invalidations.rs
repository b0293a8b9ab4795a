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
    /// The feed was interrupted and is not connected: nothing is pushed until a later `Lost` says it
    /// is back. The next call to [`InvalidationFeed::next`] reconnects.
    Down,
}

/// Where a serving process's invalidation feed stands, for `/readyz`: a node that is not listening
/// still works, on the poll, so this informs and does not decide readiness.
#[derive(Debug, Default)]
pub struct FeedStatus {
    state: std::sync::atomic::AtomicU8,
    connects: std::sync::atomic::AtomicU64,
}

/// [`FeedStatus`]'s states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedState {
    /// A push feed is expected and is not (yet, or not again) connected.
    Connecting,
    /// `LISTEN`ing: changes made by other processes are applied as they commit.
    Listening,
    /// The engine has no push feed (SQLite): only the poll.
    None,
}

impl FeedStatus {
    const CONNECTING: u8 = 0;
    const LISTENING: u8 = 1;
    const NONE: u8 = 2;

    pub fn state(&self) -> FeedState {
        match self.state.load(std::sync::atomic::Ordering::SeqCst) {
            Self::LISTENING => FeedState::Listening,
            Self::NONE => FeedState::None,
            _ => FeedState::Connecting,
        }
    }

    /// How many times the feed has connected since the process started, reconnections included.
    pub fn connects(&self) -> u64 {
        self.connects.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The feed has (re)connected and listens.
    pub fn listening(&self) {
        self.connects
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.set(Self::LISTENING);
    }

    pub fn connecting(&self) {
        self.set(Self::CONNECTING);
    }

    pub fn none(&self) {
        self.set(Self::NONE);
    }

    fn set(&self, state: u8) {
        self.state.store(state, std::sync::atomic::Ordering::SeqCst);
    }
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
    /// (PostgreSQL's `LISTEN`/`NOTIFY`); `None` where polling [`InvalidationStore::invalidations_since`] is all
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
