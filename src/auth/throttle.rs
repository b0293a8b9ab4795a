//! Brute-force defences, on by default.
//!
//! - **Route limits** (Strapi-compatible): at most `max` requests per `window` per route and client
//!   address, in fixed windows that start at a key's first request. The key is the route and the
//!   address only, so varying a body field (the email, say) never opens a new bucket.
//! - **Relay clients** (`relay_clients`: an Appsmith or Retool server, a backend-for-frontend) send
//!   many users' requests from one address. Their route limits count per route, address and the
//!   request's identifier ([`Key`], chosen by the HTTP layer), under a cap per route and address
//!   (`relay_max`), so one user's mistakes cannot lock the others out and the relay as a whole stays
//!   bounded.
//! - **Account throttling** against distributed guessing: after a few failed logins an account asks for
//!   exponentially growing pauses between attempts, and never takes more than `hourly_cap` failures an
//!   hour. A client that has logged in successfully on the account recently keeps a bucket of its own,
//!   so an attacker hammering the account cannot lock its owner out. An attempt is decided and counted
//!   in one step before its password is hashed, and taken back if the password was right: concurrent
//!   guesses each see the ones let through before them, so a burst gets the free attempts and no more.
//!   Keys are SHA-256 digests of a normalised name ([`Key`]), so what a client types never becomes
//!   state of any size.
//!
//! State is in process, in bounded caches, when one process serves (SQLite). When the database is
//! shared by several nodes ([`Store::shared_by_nodes`], PostgreSQL) it lives there instead, so an
//! attacker spreading requests over the nodes gets one allowance, not one per node. Should the
//! database fail to answer, the limits let the request through (logged): a login needs the database
//! anyway, and refusing everyone would be the worse outage.

mod routes;
pub mod settings;

pub use routes::{
    DEFAULT_RELAY_MAX, Decision, LIMITED_ROUTES, Limit, RateLimitSettings, RateLimiter,
};

use moka::sync::Cache;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::store::{
    Millis, Store, THROTTLE_WINDOW_MS, ThrottleAttempt, ThrottleKeys, ThrottleRule, ThrottleSuccess,
};

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

/// A throttle key: the SHA-256 (hex) of a normalised account name. What the name is and why is the
/// caller's decision (`Auth::login`); the digest keeps every key small whatever was typed, and keeps
/// names out of the database's throttle tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    /// The key of the account named `normalised`.
    pub fn account(normalised: &str) -> Self {
        Self(hex::encode(Sha256::digest(format!(
            "account\0{normalised}"
        ))))
    }

    /// The bucket of a trusted client's own attempts on this account.
    fn own(&self, ip: IpAddr) -> Self {
        Self(hex::encode(Sha256::digest(format!(
            "client\0{}\0{ip}",
            self.0
        ))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An attempt that was let through, counted in its bucket until [`AccountThrottle::succeeded`] takes
/// it back. `bucket` is `None` when nothing was counted (throttling off, or its state unavailable).
#[derive(Debug)]
pub struct Attempt {
    bucket: Option<String>,
    at: Millis,
}

#[derive(Debug, Default)]
struct Attempts {
    /// Times of the attempts counted in the last hour, in the order they were counted.
    times: VecDeque<Millis>,
}

pub struct AccountThrottle {
    settings: ThrottleSettings,
    attempts: Cache<String, Arc<Mutex<Attempts>>>,
    /// Until when (app clock) each client is trusted on each account; the cache's own expiry, by the
    /// wall clock, only bounds memory.
    trusted: Cache<(Key, IpAddr), Millis>,
    /// Where attempts and trust live when several nodes share them.
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
            // Keys and buckets are of bounded size (a digest, at most `hourly_cap` times), so a bound
            // on entries is a bound on bytes.
            attempts: Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(Duration::from_millis(THROTTLE_WINDOW_MS as u64))
                .build(),
            trusted: Cache::builder()
                .max_capacity(200_000)
                .time_to_live(settings.trust_for)
                .build(),
            settings,
        }
    }

    fn rule(&self) -> ThrottleRule {
        ThrottleRule {
            free: self.settings.free_failures,
            max_pause_ms: self.settings.max_pause.as_millis() as Millis,
            hourly_cap: self.settings.hourly_cap.max(1),
        }
    }

    /// Decides on an attempt on `account` and, if it may go ahead, counts it as a failure at once,
    /// before any hash: `Err(seconds)` when it must wait that long instead. A success is taken back
    /// by [`Self::succeeded`].
    pub async fn attempt(
        &self,
        account: &Key,
        ip: Option<IpAddr>,
        now: Millis,
    ) -> Result<Attempt, u64> {
        let uncounted = Attempt {
            bucket: None,
            at: now,
        };
        if !self.settings.enabled {
            return Ok(uncounted);
        }
        let own = ip.map(|ip| (ip, account.own(ip)));
        let Some(store) = &self.shared else {
            let trusted = own.as_ref().filter(|(ip, _)| {
                self.trusted
                    .get(&(account.clone(), *ip))
                    .is_some_and(|until| until > now)
            });
            let bucket = trusted.map_or(account, |(_, own)| own).0.clone();
            let entry = self.attempts.get_with(bucket.clone(), Arc::default);
            let mut a = entry.lock().unwrap_or_else(|e| e.into_inner());
            a.times.retain(|t| *t > now - THROTTLE_WINDOW_MS);
            match self.rule().wait(a.times.make_contiguous(), now) {
                0 => a.times.push_back(now),
                wait => return Err(secs(wait)),
            }
            return Ok(Attempt {
                bucket: Some(bucket),
                at: now,
            });
        };
        let ip_text = own.as_ref().map(|(ip, _)| ip.to_string());
        let keys = store_keys(account, ip_text.as_deref(), own.as_ref().map(|(_, k)| k));
        let attempt = ThrottleAttempt {
            keys,
            now,
            rule: self.rule(),
        };
        match store.throttle_attempt(attempt).await {
            Ok(v) if v.wait_ms > 0 => Err(secs(v.wait_ms)),
            Ok(v) => Ok(Attempt {
                bucket: Some(v.bucket),
                at: now,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "throttle state unavailable; not throttling");
                Ok(uncounted)
            }
        }
    }

    /// The password was right: the attempt is taken back, the client becomes trusted on the account
    /// and its own bucket is cleared.
    pub async fn succeeded(&self, account: &Key, ip: Option<IpAddr>, attempt: Attempt) {
        if !self.settings.enabled {
            return;
        }
        let own = ip.map(|ip| (ip, account.own(ip)));
        let Some(store) = &self.shared else {
            if let Some(entry) = attempt.bucket.and_then(|b| self.attempts.get(&b)) {
                let mut a = entry.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(i) = a.times.iter().rposition(|t| *t == attempt.at) {
                    a.times.remove(i);
                }
            }
            if let Some((ip, own)) = own {
                let until = attempt.at + self.settings.trust_for.as_millis() as Millis;
                self.trusted.insert((account.clone(), ip), until);
                self.attempts.invalidate(&own.0);
            }
            return;
        };
        let ip_text = own.as_ref().map(|(ip, _)| ip.to_string());
        let keys = store_keys(account, ip_text.as_deref(), own.as_ref().map(|(_, k)| k));
        let until = attempt.at + self.settings.trust_for.as_millis() as Millis;
        let success = ThrottleSuccess {
            keys,
            bucket: attempt.bucket.as_deref().unwrap_or_default(),
            at: attempt.at,
            trusted_until: until,
        };
        if let Err(e) = store.throttle_success(success).await {
            tracing::warn!(error = %e, "cannot record a successful login for throttling");
        }
    }
}

/// The keys the shared store decides on: the account's bucket and, for a client with an address, that
/// address and its own bucket on the account.
fn store_keys<'a>(account: &'a Key, ip: Option<&'a str>, own: Option<&'a Key>) -> ThrottleKeys<'a> {
    ThrottleKeys {
        account: account.as_str(),
        client: ip.zip(own.map(Key::as_str)),
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

    fn key(name: &str) -> Key {
        Key::account(name)
    }

    /// An attempt that goes ahead and fails (it stays counted); panics if it was refused.
    async fn fail(t: &AccountThrottle, account: &Key, ip: Option<IpAddr>, now: Millis) {
        t.attempt(account, ip, now).await.expect("let through");
    }

    async fn wait(t: &AccountThrottle, account: &Key, ip: Option<IpAddr>, now: Millis) -> u64 {
        t.attempt(account, ip, now).await.expect_err("refused")
    }

    #[tokio::test]
    async fn pauses_grow_after_the_free_failures() {
        let t = AccountThrottle::new(ThrottleSettings::default());
        let alice = key("alice");
        let mut now = 0;
        for _ in 0..5 {
            fail(&t, &alice, Some(ip(1)), now).await;
        }
        assert_eq!(wait(&t, &alice, Some(ip(1)), now).await, 1);
        assert_eq!(
            wait(&t, &alice, Some(ip(9)), now).await,
            1,
            "the account, not the address"
        );
        now += 1_000;
        fail(&t, &alice, Some(ip(1)), now).await;
        assert_eq!(wait(&t, &alice, Some(ip(1)), now).await, 2);
        now += 2_000;
        fail(&t, &alice, Some(ip(1)), now).await;
        assert_eq!(wait(&t, &alice, Some(ip(1)), now).await, 4);
        assert!(
            t.attempt(&key("bob"), Some(ip(1)), now).await.is_ok(),
            "other accounts are free"
        );
    }

    #[tokio::test]
    async fn pauses_are_bounded() {
        let t = AccountThrottle::new(ThrottleSettings::default());
        let alice = key("alice");
        let (mut now, mut longest) = (0, 0);
        for _ in 0..20 {
            while let Err(wait) = t.attempt(&alice, None, now).await {
                longest = longest.max(wait);
                now += wait as Millis * 1000;
            }
        }
        assert_eq!(longest, 15 * 60);
    }

    #[tokio::test]
    async fn the_hourly_cap_holds_even_with_short_pauses() {
        let t = AccountThrottle::new(ThrottleSettings {
            max_pause: Duration::from_secs(1),
            ..Default::default()
        });
        let alice = key("alice");
        let mut now = 0;
        for _ in 0..100 {
            while let Err(wait) = t.attempt(&alice, None, now).await {
                now += wait as Millis * 1000;
            }
        }
        assert!(now < THROTTLE_WINDOW_MS);
        let wait = wait(&t, &alice, None, now + 5_000).await;
        assert_eq!(
            wait as Millis,
            (THROTTLE_WINDOW_MS - now - 5_000) / 1000,
            "until the oldest leaves the hour"
        );
    }

    #[tokio::test]
    async fn a_success_is_taken_back_and_trusts_its_client() {
        let t = AccountThrottle::new(ThrottleSettings::default());
        let alice = key("alice");
        let (owner, attacker) = (Some(ip(1)), Some(ip(66)));
        for _ in 0..4 {
            fail(&t, &alice, attacker, 0).await;
        }
        // Counted while it is checked, so a fifth concurrent guess would be the last free one...
        let right = t.attempt(&alice, owner, 0).await.unwrap();
        t.succeeded(&alice, owner, right).await;
        // ...but once taken back the account has had four failures, and one more is free.
        fail(&t, &alice, attacker, 0).await;
        assert_eq!(wait(&t, &alice, attacker, 0).await, 1);
        // The owner, now trusted, has a bucket of its own.
        assert!(t.attempt(&alice, owner, 0).await.is_ok());
    }

    #[tokio::test]
    async fn a_trusted_client_is_not_locked_out_by_others() {
        let t = AccountThrottle::new(ThrottleSettings::default());
        let alice = key("alice");
        let (owner, attacker) = (Some(ip(1)), Some(ip(66)));
        let first = t.attempt(&alice, owner, 0).await.unwrap();
        t.succeeded(&alice, owner, first).await;
        for _ in 0..5 {
            fail(&t, &alice, attacker, 0).await;
        }
        assert!(t.attempt(&alice, attacker, 0).await.is_err());
        // The owner's own mistakes still count, in a bucket of its own.
        for _ in 0..5 {
            fail(&t, &alice, owner, 0).await;
        }
        assert!(t.attempt(&alice, owner, 0).await.is_err());
    }

    #[tokio::test]
    async fn disabled_throttling_never_refuses() {
        let t = AccountThrottle::new(ThrottleSettings {
            enabled: false,
            ..Default::default()
        });
        for _ in 0..200 {
            fail(&t, &key("alice"), None, 0).await;
        }
    }

    #[test]
    fn keys_are_digests_of_a_fixed_size() {
        assert_eq!(key("alice").as_str().len(), 64);
        assert_eq!(key(&"x".repeat(10_000)).as_str().len(), 64);
        assert_ne!(key("alice"), key("alice2"));
        assert_ne!(key("alice").own(ip(1)), key("alice").own(ip(2)));
        assert_ne!(key("alice").own(ip(1)), key("alice"));
    }
}
