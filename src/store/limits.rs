//! Rate-limit windows and login throttling, kept in the database when several nodes share it
//! (see [`Store::shared_by_nodes`](super::Store::shared_by_nodes)).

use super::{Millis, StoreResult};
use async_trait::async_trait;

/// How the login throttle decides (see `auth::throttle`). A type of the store's because a store shared
/// by several nodes applies it in the database, in the same atomic step that counts the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Attempts a bucket takes before pauses start.
    pub free: u32,
    /// The longest pause between two attempts.
    pub max_pause_ms: Millis,
    /// Attempts a bucket takes in any hour, at most; at least 1.
    pub hourly_cap: u32,
}

/// How long an attempt stays counted in its bucket.
pub const THROTTLE_WINDOW_MS: Millis = 3_600_000;

impl ThrottleRule {
    /// How long an attempt at `now` must wait, given the times of the attempts its bucket counted
    /// less than [`THROTTLE_WINDOW_MS`] ago (in any order); 0 when it may go ahead. PgStore states the
    /// same rule in SQL.
    pub fn wait(&self, recent: &[Millis], now: Millis) -> Millis {
        let (Some(first), Some(last)) = (recent.iter().min(), recent.iter().max()) else {
            return 0;
        };
        let n = recent.len() as u32;
        if n >= self.hourly_cap {
            return first + THROTTLE_WINDOW_MS - now;
        }
        if n >= self.free {
            let pause = (1000 << (n - self.free).min(20)).min(self.max_pause_ms);
            if now - last < pause {
                return last + pause - now;
            }
        }
        0
    }
}

/// Who makes a login attempt, as the throttle keys it: digests, never what was typed.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleKeys<'a> {
    /// The account's bucket (and the account trusted clients are trusted on).
    pub account: &'a str,
    /// The client's address and its own bucket on the account, used while it is trusted there.
    pub client: Option<(&'a str, &'a str)>,
}

/// A login attempt, to be decided under `rule` at `now`.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleAttempt<'a> {
    pub keys: ThrottleKeys<'a>,
    pub now: Millis,
    pub rule: ThrottleRule,
}

/// A successful attempt: the one counted at `at` in `bucket`, and how long its client is trusted.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleSuccess<'a> {
    pub keys: ThrottleKeys<'a>,
    pub bucket: &'a str,
    pub at: Millis,
    pub trusted_until: Millis,
}

/// The answer to an attempt: the bucket it was decided in, and how long it must wait (0: it was
/// counted there and may go ahead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleVerdict {
    pub bucket: String,
    pub wait_ms: Millis,
}

/// The limits' part of [`Store`](super::Store).
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Counts a hit in the fixed window named `key`: a window `window_ms` old or older starts over
    /// at `now`. Returns the window's start and its count, this hit included. Atomic.
    async fn hit_window(
        &self,
        key: &str,
        now: Millis,
        window_ms: i64,
    ) -> StoreResult<(Millis, u32)>;
    /// Decides on a login attempt under `rule` and, when it may go ahead, counts it: one atomic step,
    /// so concurrent attempts (on any node) each see the ones let through before them. It is decided
    /// in the client's own bucket while the client is trusted on the account, else in the account's.
    async fn throttle_attempt(&self, attempt: ThrottleAttempt<'_>) -> StoreResult<ThrottleVerdict>;
    /// A successful attempt: takes back the one counted at `at` in `bucket`, trusts the client on the
    /// account until `trusted_until` and clears its own bucket.
    async fn throttle_success(&self, success: ThrottleSuccess<'_>) -> StoreResult<()>;
}
