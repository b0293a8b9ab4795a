//! Sessions and the refresh tokens that keep them going.

use super::{Millis, StoreResult};
use async_trait::async_trait;

/// A refresh-token exchange: `old_hash` marked used at `now` with `nonce` (the proof of which call
/// used it), `new_hash` its successor, the session's idle deadline moved to `idle_expires_at`.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    pub old_hash: &'a str,
    pub nonce: &'a [u8],
    pub new_hash: &'a str,
    pub now: Millis,
    pub idle_expires_at: Millis,
}

/// One login: every access token names its session (`sid`), and a token whose session is gone, revoked
/// or expired is refused. A session is also the family of its refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    pub id: String,
    pub user_id: i64,
    pub device_id: String,
    pub device_name: Option<String>,
    pub created_at: Millis,
    pub last_active_at: Millis,
    /// Refreshing after this is refused; each refresh moves it forward.
    pub idle_expires_at: Millis,
    /// The absolute end of the session and of every token it issues.
    pub expires_at: Millis,
    pub revoked_at: Option<Millis>,
    pub revoked_reason: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl Session {
    /// Not revoked and not past its absolute end: its access tokens are good.
    pub fn is_live(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// The session columns, as [`Session`] reads them; a macro so that queries built on it with
/// `concat!` stay `&'static str`.
macro_rules! session_select {
    () => {
        "SELECT id, user_id, device_id, device_name, created_at, last_active_at, idle_expires_at, \
         expires_at, revoked_at, revoked_reason, user_agent, ip FROM sessions "
    };
}
pub(super) use session_select;

/// One refresh token of a session, known only by its SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshRecord {
    pub hash: String,
    pub session_id: String,
    pub created_at: Millis,
    /// When it was exchanged for its successor.
    pub used_at: Option<Millis>,
    /// The nonce its successor was derived with, once used.
    pub nonce: Option<Vec<u8>>,
}

/// Which sessions a revocation ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoke {
    Session(String),
    AllOfUser(i64),
    Device { user_id: i64, device_id: String },
    AllOfUserExcept { user_id: i64, keep: String },
}

/// The sessions' part of [`Store`](super::Store).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Inserts a session and, when given, its first refresh token, in one transaction.
    async fn create_session(
        &self,
        session: &Session,
        refresh_hash: Option<&str>,
    ) -> StoreResult<()>;
    /// [`SessionStore::create_session`], but only while the session's user exists, is not blocked and still
    /// has security stamp `stamp`, checked in the same transaction as the insert (on PostgreSQL under
    /// a share lock on the user's row, so a concurrent block or password change either waits for the
    /// session to commit, and then ends it, or makes it fail). Returns whether it inserted.
    async fn create_session_if_current(
        &self,
        session: &Session,
        refresh_hash: Option<&str>,
        stamp: i64,
    ) -> StoreResult<bool>;
    async fn session(&self, id: &str) -> StoreResult<Option<Session>>;
    async fn sessions_of_user(&self, user_id: i64) -> StoreResult<Vec<Session>>;
    /// Ends the sessions `which` names that are still open; returns their ids. Records an
    /// invalidation for each, in the same transaction.
    async fn revoke_sessions(
        &self,
        which: Revoke,
        reason: &str,
        now: Millis,
    ) -> StoreResult<Vec<String>>;
    async fn refresh_token(&self, hash: &str) -> StoreResult<Option<RefreshRecord>>;
    /// A refresh token with its session, in one read where the engine can.
    async fn refresh_token_and_session(
        &self,
        hash: &str,
    ) -> StoreResult<Option<(RefreshRecord, Session)>> {
        let Some(record) = self.refresh_token(hash).await? else {
            return Ok(None);
        };
        Ok(self.session(&record.session_id).await?.map(|s| (record, s)))
    }
    /// The common refresh in one step: exchanges the token as [`SessionStore::rotate_refresh`]
    /// does, but only if the token is unused and its session open and within its idle deadline at
    /// `now`; returns that session, as updated. `None` when anything else holds (a replay, an ended
    /// session, an unknown token) or when the engine has no such shortcut: the caller then takes the
    /// careful path, which tells those cases apart.
    async fn rotate_fresh_refresh(&self, _: &Rotation<'_>) -> StoreResult<Option<Session>> {
        Ok(None)
    }
    /// Exchanges an unused refresh token for its successor, atomically: marks `old_hash` used with
    /// `nonce`, records `new_hash`, and moves the session's idle deadline. Returns false (changing
    /// nothing) when `old_hash` was already used, so two concurrent refreshes cannot both rotate.
    async fn rotate_refresh(&self, exchange: &Rotation<'_>) -> StoreResult<bool>;
}
