//! The settings of the brute-force defences, declared once: route rate limits (with per-route
//! overrides and relay clients), the per-account login throttle, and how IPv6 clients are grouped.
//! Validated into [`RateLimitSettings`] and [`ThrottleSettings`].

use serde::Deserialize;
use std::collections::BTreeMap;

use super::{DEFAULT_RELAY_MAX, LIMITED_ROUTES, Limit, RateLimitSettings, ThrottleSettings};
use crate::settings::{Checked, Dur, Invalid, List, at_least_one, networks, section};

section! {
    /// The limits section.
    pub struct LimitSection {
        /// Route rate limits on the auth routes.
        rate_limit: bool = true; Serve, "`true`";
        /// Requests per window per route and client.
        rate_limit_max: u32 = 10; Serve, "`10`";
        /// Rate-limit window.
        rate_limit_window: Dur = Dur::secs(60); Serve, "`60s`";
        /// Per-route overrides: `"/api/auth/local" = { max = 20, window = "60s" }`.
        rate_limit_routes: BTreeMap<String, RouteLimit> = BTreeMap::new(); File, "—";
        /// Servers that relay many users' requests (an Appsmith or Retool server): addresses or
        /// CIDRs, comma-separated. Their route limits count per identifier, under
        /// relay_rate_limit_max.
        relay_clients: List = List::default(); Serve, "none";
        /// Requests per window per route from one relay client, all its users together.
        relay_rate_limit_max: u32 = DEFAULT_RELAY_MAX; Serve, "`600`";
        /// Per-account login throttling.
        login_throttle: bool = true; Serve, "`true`";
        /// IPv6 clients are limited per network of this many leading bits (1 to 128).
        ipv6_prefix_len: u8 = crate::auth::DEFAULT_IPV6_PREFIX_LEN; Serve, "`64`";
    }
}

/// One route's limit in the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimit {
    pub max: u32,
    pub window: Dur,
}

/// What the limits section gives the core.
pub struct Limits {
    pub rate_limits: RateLimitSettings,
    pub throttle: ThrottleSettings,
    pub ipv6_prefix_len: u8,
}

impl LimitSection {
    pub fn validate(self) -> Checked<Limits> {
        let mut rate_limits = RateLimitSettings {
            enabled: self.rate_limit,
            default: Limit {
                max: at_least_one(
                    "rate_limit_max",
                    self.rate_limit_max,
                    " (or set rate_limit = false)",
                )?,
                window: self.rate_limit_window.positive("rate_limit_window")?,
            },
            relay_clients: networks("relay_clients", &self.relay_clients)?,
            relay_max: at_least_one(
                "relay_rate_limit_max",
                self.relay_rate_limit_max,
                " (or list no relay_clients)",
            )?,
            ..RateLimitSettings::default()
        };
        for (route, limit) in self.rate_limit_routes {
            let key = format!("rate_limit_routes.\"{route}\"");
            if !route.starts_with('/') || limit.max == 0 || limit.window.0.is_zero() {
                return Err(Invalid::new(
                    key,
                    "a path like /api/auth/local with max ≥ 1 and a window",
                ));
            }
            // A key naming no limited route would be ignored, and that route would silently keep
            // the default: the same trap as a mistyped setting, refused the same way.
            if !LIMITED_ROUTES.contains(&route.as_str()) {
                return Err(Invalid::new(
                    key,
                    format!(
                        "names no rate-limited route; the limited routes are: {}",
                        LIMITED_ROUTES.join(", ")
                    ),
                ));
            }
            let limit = Limit {
                max: limit.max,
                window: limit.window.0,
            };
            rate_limits.routes.insert(route, limit);
        }
        if !(1..=128).contains(&self.ipv6_prefix_len) {
            return Err(Invalid::new("ipv6_prefix_len", "must be between 1 and 128"));
        }
        Ok(Limits {
            rate_limits,
            throttle: ThrottleSettings {
                enabled: self.login_throttle,
                ..ThrottleSettings::default()
            },
            ipv6_prefix_len: self.ipv6_prefix_len,
        })
    }
}
