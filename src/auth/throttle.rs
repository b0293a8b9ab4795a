//! Brute-force defences, on by default.
//!
//! - **Route limits** (Strapi-compatible): at most `max` requests per `window` per route and client
//!   address, in fixed windows that start at a key's first request. The key is the route and the
//!   address only, so varying a body field (the email, say) never opens a new bucket.
//! - **Account throttling** against distributed guessing: after a few failed logins an account asks for
//!   exponentially growing pauses between attempts, and never takes more than `hourly_cap` failures an
//!   hour. A client that has logged in successfully on the account recently keeps a bucket of its own,
//!   so an attacker hammering the account cannot lock its owner out.
//!
//! State is in process, in bounded caches, when one process serves (SQLite). When the database is
//! shared by several nodes ([`Store::shared_by_nodes`], PostgreSQL) it lives there instead, so an
//! attacker spreading requests over the nodes gets one allowance, not one per node. Should the
//! database fail to answer, the limits let the request through (logged): a login needs the database
//! anyway, and refusing everyone would be the worse outage.

use moka::sync::Cache;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::{Millis, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// The limit of every limited route without an override: Strapi's 10 per minute.
    pub default: Limit,
    /// Overrides by route path, e.g. `/api/auth/local`.
    pub routes: HashMap<String, Limit>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            default: Limit {
                max: 10,
                window: Duration::from_secs(60),
            },
            routes: HashMap::new(),
        }
    }
}

/// The answer of the route limiter for one request, with what the `X-RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// When the window ends, in seconds since the epoch.
    pub reset_at: i64,
    /// Seconds until the window ends (at least 1).
    pub retry_after: u64,
}

#[derive(Debug)]
struct Window {
    started: Millis,
    count: u32,
}

pub struct RateLimiter {
    settings: RateLimitSettings,
    windows: Cache<(String, IpAddr), Arc<Mutex<Window>>>,
    /// Where the windows live when several nodes count together.
    shared: Option<Arc<dyn Store>>,
}

impl RateLimiter {
    /// Counts in the database when `shared` is given, in memory otherwise.
    pub fn with_store(settings: RateLimitSettings, shared: Option<Arc<dyn Store>>) -> Self {
        Self {
            shared,
            ..Self::new(settings)
        }
    }

    pub fn new(settings: RateLimitSettings) -> Self {
        let longest = settings
            .routes
            .values()
            .map(|l| l.window)
            .chain([settings.default.window])
            .max()
            .unwrap_or(Duration::from_secs(60));
        Self {
            settings,
            windows: Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(longest)
                .build(),
            shared: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Counts a request to `route` from `ip`.
    pub async fn hit(&self, route: &str, ip: IpAddr, now: Millis) -> Decision {
        let limit = self
            .settings
            .routes
            .get(route)
            .copied()
            .unwrap_or(self.settings.default);
        let window_ms = limit.window.as_millis() as Millis;
        let (started, count) = match &self.shared {
            None => self.hit_here(route, ip, now, window_ms),
            Some(store) => match store
                .hit_window(&format!("{route}|{ip}"), now, window_ms)
                .await
            {
                Ok(window) => window,
                Err(e) => {
                    tracing::warn!(error = %e, "rate-limit state unavailable; not limiting");
                    (now, 0)
                }
            },
        };
        let ends = started + window_ms;
        Decision {
            allowed: count <= limit.max,
            limit: limit.max,
            remaining: limit.max.saturating_sub(count),
            reset_at: (ends + 999) / 1000,
            retry_after: ((ends - now).max(1) as u64).div_ceil(1000),
        }
    }

    /// The in-memory window: its start and its count with this hit.
    fn hit_here(&self, route: &str, ip: IpAddr, now: Millis, window_ms: Millis) -> (Millis, u32) {
        let entry = self.windows.get_with((route.to_owned(), ip), || {
            Arc::new(Mutex::new(Window {
                started: now,
                count: 0,
            }))
        });
        let mut w = entry.lock().unwrap_or_else(|e| e.into_inner());
        if now - w.started >= window_ms {
            *w = Window {
                started: now,
                count: 0,
            };
        }
        w.count = w.count.saturating_add(1);
        (w.started, w.count)
    }
}

#[derive(Debug, Clone)]
pub struct ThrottleSettings {
    pub enabled: bool,
    /// Failures an account takes before pauses start.
    pub free_failures: u32,
    /// The longest pause asked for between two attempts.
    pub max_pause: Duration,
    /// Failures an account (or a trusted client's own bucket) takes in any hour, at most.
    pub hourly_cap: u32,
    /// How long a successful login makes its client trusted on that account.
    pub trust_for: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            free_failures: 5,
            max_pause: Duration::from_secs(15 * 60),
            hourly_cap: 100,
            trust_for: Duration::from_secs(30 * 86_400),
        }
    }
}

const HOUR: Millis = 3_600_000;

#[derive(Debug, Default)]
struct Failures {
    /// Times of the failures of the last hour, oldest first.
    times: VecDeque<Millis>,
}

pub struct AccountThrottle {
    settings: ThrottleSettings,
    failures: Cache<String, Arc<Mutex<Failures>>>,
    trusted: Cache<(String, IpAddr), ()>,
    /// Where failures and trust live when several nodes share them.
    shared: Option<Arc<dyn Store>>,
}

impl AccountThrottle {
    /// Keeps its state in the database when `shared` is given, in memory otherwise.
    pub fn with_store(settings: ThrottleSettings, shared: Option<Arc<dyn Store>>) -> Self {
        Self {
            shared,
            ..Self::new(settings)
        }
    }

    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            shared: None,
            failures: Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(Duration::from_millis(HOUR as u64))
                .build(),
            trusted: Cache::builder()
                .max_capacity(200_000)
                .time_to_live(settings.trust_for)
                .build(),
            settings,
        }
    }

    /// The failure bucket of an attempt: the account's, or a trusted client's own.
    async fn bucket(&self, account: &str, ip: Option<IpAddr>, now: Millis) -> String {
        let Some(ip) = ip else {
            return account.to_owned();
        };
        let trusted = match &self.shared {
            None => self.trusted.contains_key(&(account.to_owned(), ip)),
            Some(store) => store
                .is_trusted(account, &ip.to_string(), now)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "throttle state unavailable");
                    false
                }),
        };
        if trusted {
            format!("{account}|{ip}")
        } else {
            account.to_owned()
        }
    }

    /// `Err(seconds)` when this attempt must wait that long.
    pub async fn check(&self, account: &str, ip: Option<IpAddr>, now: Millis) -> Result<(), u64> {
        if !self.settings.enabled {
            return Ok(());
        }
        let bucket = self.bucket(account, ip, now).await;
        let times: Vec<Millis> = match &self.shared {
            None => {
                let Some(entry) = self.failures.get(&bucket) else {
                    return Ok(());
                };
                let mut f = entry.lock().unwrap_or_else(|e| e.into_inner());
                while f.times.front().is_some_and(|t| now - t >= HOUR) {
                    f.times.pop_front();
                }
                f.times.iter().copied().collect()
            }
            Some(store) => match store
                .failures_since(&bucket, now - HOUR, self.settings.hourly_cap)
                .await
            {
                Ok(times) => times,
                Err(e) => {
                    tracing::warn!(error = %e, "throttle state unavailable; not throttling");
                    return Ok(());
                }
            },
        };
        self.verdict(&times, now)
    }

    /// The decision on a bucket's failures of the last hour, oldest first.
    fn verdict(&self, times: &[Millis], now: Millis) -> Result<(), u64> {
        let n = times.len() as u32;
        if n >= self.settings.hourly_cap {
            let oldest = times.first().copied().unwrap_or(now);
            return Err(secs(oldest + HOUR - now));
        }
        if n >= self.settings.free_failures {
            let doublings = (n - self.settings.free_failures).min(20);
            let pause = (1000i64 << doublings).min(self.settings.max_pause.as_millis() as Millis);
            let last = times.last().copied().unwrap_or(now);
            if now - last < pause {
                return Err(secs(last + pause - now));
            }
        }
        Ok(())
    }

    pub async fn failed(&self, account: &str, ip: Option<IpAddr>, now: Millis) {
        if !self.settings.enabled {
            return;
        }
        let bucket = self.bucket(account, ip, now).await;
        if let Some(store) = &self.shared {
            if let Err(e) = store.record_failure(&bucket, now).await {
                tracing::warn!(error = %e, "cannot record a failed login for throttling");
            }
            return;
        }
        let entry = self.failures.get_with(bucket, Arc::default);
        let mut f = entry.lock().unwrap_or_else(|e| e.into_inner());
        f.times.push_back(now);
        // Never more than the cap is needed to decide; keeps each bucket small.
        while f.times.len() > self.settings.hourly_cap as usize {
            f.times.pop_front();
        }
    }

    /// A correct password: the client becomes trusted on the account and its own bucket is cleared.
    pub async fn succeeded(&self, account: &str, ip: Option<IpAddr>, now: Millis) {
        let Some(ip) = ip else {
            return;
        };
        let own = format!("{account}|{ip}");
        match &self.shared {
            None => {
                self.trusted.insert((account.to_owned(), ip), ());
                self.failures.invalidate(&own);
            }
            Some(store) => {
                let until = now + self.settings.trust_for.as_millis() as Millis;
                let trusted = store.trust_client(account, &ip.to_string(), until).await;
                let cleared = store.clear_failures(&own).await;
                if let Err(e) = trusted.and(cleared) {
                    tracing::warn!(error = %e, "cannot record a trusted client for throttling");
                }
            }
        }
    }
}

fn secs(ms: Millis) -> u64 {
    (ms.max(1) as u64).div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([203, 0, 113, last])
    }

    #[tokio::test]
    async fn fixed_windows_per_route_and_address() {
        let limiter = RateLimiter::new(RateLimitSettings::default());
        for i in 0..10 {
            let d = limiter.hit("/api/auth/local", ip(1), 1_000).await;
            assert!(d.allowed);
            assert_eq!(d.remaining, 9 - i);
        }
        let d = limiter.hit("/api/auth/local", ip(1), 30_000).await;
        assert!(!d.allowed);
        assert_eq!((d.limit, d.remaining, d.retry_after), (10, 0, 31));
        assert_eq!(d.reset_at, 61);
        assert!(
            limiter.hit("/api/auth/local", ip(2), 30_000).await.allowed,
            "another address"
        );
        assert!(
            limiter
                .hit("/api/auth/local/register", ip(1), 30_000)
                .await
                .allowed,
            "another route"
        );
        assert!(
            limiter.hit("/api/auth/local", ip(1), 61_000).await.allowed,
            "a new window"
        );
    }

    #[tokio::test]
    async fn routes_can_have_their_own_limit() {
        let mut settings = RateLimitSettings::default();
        settings.routes.insert(
            "/api/auth/local".into(),
            Limit {
                max: 2,
                window: Duration::from_secs(10),
            },
        );
        let limiter = RateLimiter::new(settings);
        assert!(limiter.hit("/api/auth/local", ip(1), 0).await.allowed);
        assert!(limiter.hit("/api/auth/local", ip(1), 0).await.allowed);
        assert!(!limiter.hit("/api/auth/local", ip(1), 0).await.allowed);
        assert!(limiter.hit("/api/auth/local", ip(1), 10_000).await.allowed);
    }

    #[tokio::test]
    async fn pauses_grow_after_the_free_failures() {
        let t = AccountThrottle::new(ThrottleSettings::default());
        let mut now = 0;
        for _ in 0..5 {
            assert_eq!(t.check("user:1", Some(ip(1)), now).await, Ok(()));
            t.failed("user:1", Some(ip(1)), now).await;
        }
        assert_eq!(t.check("user:1", Some(ip(1)), now).await, Err(1));
        assert_eq!(
            t.check("user:1", Some(ip(9)), now).await,
            Err(1),
            "the account, not the address"
        );
        now += 1_000;
        assert_eq!(t.check("user:1", Some(ip(1)), now).await, Ok(()));
        t.failed("user:1", Some(ip(1)), now).await;
        assert_eq!(t.check("user:1", Some(ip(1)), now).await, Err(2));
        now += 2_000;
        t.failed("user:1", Some(ip(1)), now).await;
        assert_eq!(t.check("user:1", Some(ip(1)), now).await, Err(4));
        assert_eq!(
            t.check("user:2", Some(ip(1)), now).await,
            Ok(()),
            "other accounts are free"
        );
    }

    #[tokio::test]
    async fn pauses_are_bounded() {
        let t = AccountThrottle::new(ThrottleSettings::default());
        for _ in 0..40 {
            t.failed("user:1", None, 0).await;
        }
        assert_eq!(t.check("user:1", None, 0).await, Err(15 * 60));
    }

    #[tokio::test]
    async fn the_hourly_cap_holds_even_with_short_pauses() {
        let t = AccountThrottle::new(ThrottleSettings {
            max_pause: Duration::from_secs(1),
            ..Default::default()
        });
        let mut now = 0;
        for _ in 0..100 {
            while let Err(wait) = t.check("user:1", None, now).await {
                now += wait as Millis * 1000;
            }
            t.failed("user:1", None, now).await;
        }
        assert!(now < HOUR);
        let wait = t.check("user:1", None, now + 5_000).await.unwrap_err();
        assert_eq!(
            wait as Millis,
            (HOUR - now - 5_000) / 1000,
            "until the oldest leaves the hour"
        );
    }

    #[tokio::test]
    async fn a_trusted_client_is_not_locked_out_by_others() {
        let t = AccountThrottle::new(ThrottleSettings::default());
        let (owner, attacker) = (Some(ip(1)), Some(ip(66)));
        t.succeeded("user:1", owner, 0).await;
        for _ in 0..10 {
            t.failed("user:1", attacker, 0).await;
        }
        assert!(t.check("user:1", attacker, 0).await.is_err());
        assert_eq!(t.check("user:1", owner, 0).await, Ok(()));
        // The owner's own mistakes still count, in a bucket of its own.
        for _ in 0..5 {
            t.failed("user:1", owner, 0).await;
        }
        assert!(t.check("user:1", owner, 0).await.is_err());
    }

    #[tokio::test]
    async fn disabled_throttling_never_refuses() {
        let t = AccountThrottle::new(ThrottleSettings {
            enabled: false,
            ..Default::default()
        });
        for _ in 0..200 {
            t.failed("user:1", None, 0).await;
        }
        assert_eq!(t.check("user:1", None, 0).await, Ok(()));
    }
}
