//! Route limits (module docs of `throttle`): fixed windows per route and address, and per identifier
//! under a cap for relay clients; in memory, or in the database when several nodes count together.

use moka::sync::Cache;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Key;
use crate::store::{Millis, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

/// The routes the route rate limit applies to, sorted: the keys `[rate_limit_routes]` may name.
/// Declared here, below the configuration that checks those keys; `http` layers the limit on exactly
/// these (a test there compares them with its router).
pub const LIMITED_ROUTES: &[&str] = &[
    "/api/auth/change-password",
    "/api/auth/forgot-password",
    "/api/auth/local",
    "/api/auth/local/register",
    "/api/auth/reset-password",
    "/api/auth/send-email-confirmation",
    "/api/connect/{provider}",
    "/api/connect/{provider}/callback",
];

#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// The limit of every limited route without an override: Strapi's 10 per minute.
    pub default: Limit,
    /// Overrides by route path, e.g. `/api/auth/local`.
    pub routes: HashMap<String, Limit>,
    /// Clients that relay many users' requests (canonical networks, as `trusted_proxies`).
    pub relay_clients: Vec<ipnet::IpNet>,
    /// What a relay client may send to one route in one of its windows, all identifiers together.
    pub relay_max: u32,
}

/// A relay client's requests per route window, all its users together: 60 times Strapi's 10.
pub const DEFAULT_RELAY_MAX: u32 = 600;

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            default: Limit {
                max: 10,
                window: Duration::from_secs(60),
            },
            routes: HashMap::new(),
            relay_clients: Vec::new(),
            relay_max: DEFAULT_RELAY_MAX,
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
    /// By bucket: `route|address`, or `route|address|identifier key` for a relay client.
    windows: Cache<String, Arc<Mutex<Window>>>,
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

    /// Whether `ip` (a resolved client address, canonical) is a configured relay client.
    pub fn is_relay(&self, ip: IpAddr) -> bool {
        self.settings
            .relay_clients
            .iter()
            .any(|net| net.contains(&ip))
    }

    fn limit_of(&self, route: &str) -> Limit {
        self.settings
            .routes
            .get(route)
            .copied()
            .unwrap_or(self.settings.default)
    }

    /// Counts a request to `route` from `ip`.
    pub async fn hit(&self, route: &str, ip: IpAddr, now: Millis) -> Decision {
        self.hit_bucket(&format!("{route}|{ip}"), self.limit_of(route), now)
            .await
    }

    /// Counts a relay client's request to `route` for `who` (the identifier the request names): in
    /// `who`'s own bucket at the route's limit, and in the address's bucket at `relay_max` in the
    /// route's window. Refused when either is full; the headers speak for the fuller one.
    pub async fn hit_relay(&self, route: &str, ip: IpAddr, who: &Key, now: Millis) -> Decision {
        let limit = self.limit_of(route);
        let cap = Limit {
            max: self.settings.relay_max,
            ..limit
        };
        let total = self.hit_bucket(&format!("{route}|{ip}"), cap, now).await;
        let own = self
            .hit_bucket(&format!("{route}|{ip}|{}", who.as_str()), limit, now)
            .await;
        match (total.allowed, own.allowed) {
            (false, _) => total,
            (true, false) => own,
            (true, true) if total.remaining < own.remaining => total,
            (true, true) => own,
        }
    }

    async fn hit_bucket(&self, bucket: &str, limit: Limit, now: Millis) -> Decision {
        let window_ms = limit.window.as_millis() as Millis;
        let (started, count) = match &self.shared {
            None => self.hit_here(bucket, now, window_ms),
            Some(store) => match store.hit_window(bucket, now, window_ms).await {
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
    fn hit_here(&self, bucket: &str, now: Millis, window_ms: Millis) -> (Millis, u32) {
        let entry = self.windows.get_with_by_ref(bucket, || {
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
    async fn relay_clients_count_per_identifier_under_a_cap() {
        let settings = RateLimitSettings {
            relay_clients: vec!["203.0.113.0/28".parse().unwrap()],
            relay_max: 25,
            ..RateLimitSettings::default()
        };
        let limiter = RateLimiter::new(settings);
        assert!(limiter.is_relay(ip(1)) && !limiter.is_relay(ip(16)));
        let route = "/api/auth/local";
        let (alice, bob) = (Key::account("alice"), Key::account("bob"));
        for i in 0..10 {
            let d = limiter.hit_relay(route, ip(1), &alice, 1_000).await;
            assert!(d.allowed, "alice {i}");
            assert_eq!((d.limit, d.remaining), (10, 9 - i), "the fuller bucket");
        }
        assert!(!limiter.hit_relay(route, ip(1), &alice, 1_000).await.allowed);
        // Bob's bucket is his own; the cap counts everyone (alice's 11 and bob's).
        for i in 0..10 {
            let d = limiter.hit_relay(route, ip(1), &bob, 1_000).await;
            assert!(d.allowed, "bob {i}");
        }
        for n in 0..4 {
            let d = limiter
                .hit_relay(route, ip(1), &Key::account(&format!("u{n}")), 1_000)
                .await;
            assert!(d.allowed, "total {}", 22 + n);
            assert_eq!((d.limit, d.remaining), (25, 3 - n));
        }
        let d = limiter
            .hit_relay(route, ip(1), &Key::account("u9"), 1_000)
            .await;
        assert!(!d.allowed, "past the cap");
        assert_eq!((d.limit, d.remaining), (25, 0));
        // A new window opens both.
        assert!(
            limiter
                .hit_relay(route, ip(1), &alice, 61_000)
                .await
                .allowed
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
}
