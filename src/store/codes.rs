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

/// A one-time code as it is looked up: by its hash, for one purpose.
#[derive(Debug, Clone, Copy)]
pub struct Code<'a> {
    pub hash: &'a str,
    pub purpose: CodePurpose,
}

impl<'a> Code<'a> {
    pub fn new(hash: &'a str, purpose: CodePurpose) -> Self {
        Self { hash, purpose }
    }
}

/// A code to store: usable by `user_id` from `created_at` until `expires_at`.
#[derive(Debug, Clone, Copy)]
pub struct NewCode<'a> {
    pub code: Code<'a>,
    pub user_id: i64,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// The one-time codes' part of [`Store`](super::Store).
#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores a one-time code by its hash, replacing the user's unused codes of the same purpose.
    async fn create_code(&self, new: &NewCode<'_>) -> StoreResult<()>;
    /// Uses a code, atomically: the user it belongs to if it exists, has this purpose, is unused and
    /// unexpired at `now`; otherwise `None`. A code can be consumed once.
    async fn consume_code(&self, code: Code<'_>, now: Millis) -> StoreResult<Option<i64>>;
    /// The user a usable code (this purpose, unused, unexpired at `now`) belongs to, without using it.
    async fn code_owner(&self, code: Code<'_>, now: Millis) -> StoreResult<Option<i64>>;
}
