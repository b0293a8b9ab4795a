//! One-time codes (password reset, email confirmation), known only by their hashes.

use super::{Millis, StoreResult};
use async_trait::async_trait;

/// What a one-time code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    ResetPassword,
    ConfirmEmail,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResetPassword => "reset",
            Self::ConfirmEmail => "confirm",
        }
    }
}

/// The one-time codes' part of [`Store`](super::Store).
#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores a one-time code by its hash, replacing the user's unused codes of the same purpose.
    async fn create_code(
        &self,
        hash: &str,
        user_id: i64,
        purpose: CodePurpose,
        now: Millis,
        expires_at: Millis,
    ) -> StoreResult<()>;
    /// Uses a code, atomically: the user it belongs to if it exists, has this purpose, is unused and
    /// unexpired; otherwise `None`. A code can be consumed once.
    async fn consume_code(
        &self,
        hash: &str,
        purpose: CodePurpose,
        now: Millis,
    ) -> StoreResult<Option<i64>>;
    /// The user a usable code (this purpose, unused, unexpired) belongs to, without using it.
    async fn code_owner(
        &self,
        hash: &str,
        purpose: CodePurpose,
        now: Millis,
    ) -> StoreResult<Option<i64>>;
}
