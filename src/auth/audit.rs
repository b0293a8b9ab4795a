//! The audit trail: logins won and lost, logouts, refresh-token reuse, password changes and resets,
//! blocks and deletions, rate-limit hits — with time, user, client address and user agent.
//!
//! Recording never fails a request: a store error is logged and the request goes on. Nothing secret
//! is recorded; in particular the identifier of a failed login is not (people type passwords into
//! the username field), only the account when it exists.

use moka::sync::Cache;
use std::time::Duration;

use super::{Auth, ClientInfo};
use crate::store::{AuditEvent, Millis};

/// How long audit events are kept by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// How often a flood of refusals under one key is recorded.
const REFUSAL_RECORD_EVERY_MS: Millis = 60_000;

/// Throttle and limit refusals come in floods; one record per key and minute says enough. Each entry
/// holds when its key was last recorded, by the app's clock; the cache's own expiry only bounds memory.
pub(super) fn refusal_dedup() -> Cache<String, Millis> {
    Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(60))
        .build()
}

impl Auth {
    /// Records an event; failures are logged, never returned.
    pub(super) async fn audit(
        &self,
        kind: &str,
        user_id: Option<i64>,
        client: &ClientInfo,
        detail: Option<&str>,
    ) {
        let event = AuditEvent {
            at: self.clock.now_millis(),
            kind: kind.to_owned(),
            user_id,
            ip: client.ip.clone(),
            user_agent: client
                .user_agent
                .as_deref()
                .map(|ua| super::truncate(ua.to_owned(), 256)),
            detail: detail.map(str::to_owned),
        };
        if let Err(e) = self.store.record_audit(&event).await {
            tracing::warn!(kind, error = %e, "audit event not recorded");
        }
    }

    /// Records a refused request (rate limit, throttle) at most once a minute per `key`.
    pub(crate) async fn audit_refusal(
        &self,
        key: &str,
        user_id: Option<i64>,
        client: &ClientInfo,
        detail: &str,
    ) {
        let now = self.clock.now_millis();
        if self
            .refusals
            .get(key)
            .is_some_and(|recorded| now - recorded < REFUSAL_RECORD_EVERY_MS)
        {
            return;
        }
        self.refusals.insert(key.to_owned(), now);
        self.audit("rate_limited", user_id, client, Some(detail))
            .await;
    }
}
