//! Signing keys the server generated for itself.

use super::{Millis, StoreResult};
use async_trait::async_trait;

/// A signing key the server generated for itself. The private half is PKCS#8 DER.
#[derive(Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub private_der: Vec<u8>,
    pub public_raw: Vec<u8>,
    pub created_at: Millis,
    /// When it stopped signing without a stored successor: the server switched to a configured HS256
    /// secret. `None` while it signs, or when a newer stored key took over.
    pub retired_at: Option<Millis>,
}

/// The signing keys' part of [`Store`](super::Store).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every signing key, newest first. Which of them still verify is the core's decision.
    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>>;
    /// Inserts a key and records a `Keys` invalidation so running servers reload.
    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()>;
    /// Marks every key not yet retired as retired at `now` (a switch to an HS256 secret) and, when
    /// any was, records a `Keys` invalidation; returns how many were. A key retired earlier keeps
    /// its time, so restarts do not extend it.
    async fn retire_signing_keys(&self, now: Millis) -> StoreResult<u64>;
}
