//! The audit trail: what happened to whom, kept for operators and pruned by age.

use super::{Millis, StoreResult};
use async_trait::async_trait;

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEvent {
    pub at: Millis,
    /// `login_success`, `login_failure`, `logout`, `refresh_token_reuse`, `password_change`,
    /// `password_reset`, `user_blocked`, `user_unblocked`, `user_deleted`, `rate_limited`, …
    pub kind: String,
    pub user_id: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// A short free-text note (never a secret).
    pub detail: Option<String>,
}

/// The audit trail's part of [`Store`](super::Store).
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Events, oldest first, optionally of one user and from a time on; at most `limit`, the newest.
    async fn audit_events(
        &self,
        user_id: Option<i64>,
        since: Option<Millis>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// Deletes audit events recorded before `before`.
    async fn prune_audit(&self, before: Millis) -> StoreResult<()>;
}
