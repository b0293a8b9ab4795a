//! Single sign-on: sign-ins in progress and the provider identities linked to accounts.

use super::{Millis, NewUser, StoreResult, User};
use async_trait::async_trait;

/// A provider identity linked to an account (single sign-on).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Identity {
    /// The configured provider's name, e.g. `google`.
    pub provider: String,
    /// The provider's stable id of the person: the OpenID Connect `sub`, GitHub's numeric id.
    pub subject: String,
    pub user_id: i64,
    /// The email the provider asserted when the link was made.
    pub email: Option<String>,
    pub created_at: Millis,
}

/// Which leg of a single sign-on an [`SsoState`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsoStage {
    /// Sent to the provider; waits for its callback (keyed by the OAuth `state`).
    Authorize,
    /// The provider vouched for someone; waits for the front end to trade the code for a session.
    Finish,
}

impl SsoStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::Finish => "finish",
        }
    }
}

/// A sign-in in progress, stored by the hash of its single-use key. No `Debug`: the payload holds the
/// PKCE verifier.
#[derive(Clone)]
pub struct SsoState {
    pub hash: String,
    pub stage: SsoStage,
    pub provider: String,
    /// SHA-256 of the cookie that binds the sign-in to one browser.
    pub browser: String,
    /// What the next leg needs, as JSON (the auth core's business).
    pub payload: String,
    pub expires_at: Millis,
}

/// The single sign-on part of [`Store`](super::Store).
#[async_trait]
pub trait SsoStore: Send + Sync {
    /// Stores a sign-in in progress.
    async fn put_sso_state(&self, state: &SsoState) -> StoreResult<()>;
    /// Takes a sign-in in progress out, atomically: it is returned at most once, and only while
    /// unexpired and at `stage`.
    async fn take_sso_state(
        &self,
        hash: &str,
        stage: SsoStage,
        now: Millis,
    ) -> StoreResult<Option<SsoState>>;
    /// The account a provider identity is linked to.
    async fn identity_owner(&self, provider: &str, subject: &str) -> StoreResult<Option<i64>>;
    /// Links an identity to an existing account; `Conflict` when the identity is linked already.
    async fn link_identity(&self, identity: &Identity) -> StoreResult<()>;
    /// Creates an account and links `identity` to it in one transaction (its `user_id` is ignored);
    /// `Conflict` when the username, the email or the identity is taken.
    async fn create_user_with_identity(
        &self,
        user: NewUser,
        identity: &Identity,
    ) -> StoreResult<User>;
    /// An account's linked identities, oldest first.
    async fn identities_of_user(&self, user_id: i64) -> StoreResult<Vec<Identity>>;
}

/// What `DELETE FROM sso_states … RETURNING stage, provider, browser, payload, expires_at` took out,
/// on either engine.
#[derive(sqlx::FromRow)]
pub(super) struct TakenSsoState {
    stage: String,
    provider: String,
    browser: String,
    payload: String,
    expires_at: Millis,
}

impl TakenSsoState {
    /// The sign-in taken out by `hash`, if it was at `stage` and unexpired.
    pub(super) fn live(self, hash: &str, stage: SsoStage, now: Millis) -> Option<SsoState> {
        (self.stage == stage.as_str() && self.expires_at > now).then(|| SsoState {
            hash: hash.to_owned(),
            stage,
            provider: self.provider,
            browser: self.browser,
            payload: self.payload,
            expires_at: self.expires_at,
        })
    }
}
