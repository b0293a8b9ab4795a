//! Sessions: creation at login, refresh-token rotation with reuse detection, revocation, listing, and
//! the bounded in-process caches that keep the per-request session check off the database.
//!
//! A session is a refresh-token family. Each refresh marks the presented token used and issues a
//! successor; the successor is `HMAC(token, nonce)` with a fresh random nonce stored beside the used
//! token's hash. Presenting a used token again inside the grace window (two tabs refreshing at once)
//! recomputes and returns the same successor; after it, the token is treated as stolen and the whole
//! session ends. Tokens themselves are never stored, only their SHA-256 hashes.

mod caches;
mod device;
pub mod settings;

pub use caches::{Caches, Ticket};
use device::device_name;

use crate::error::OrInternal;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

use super::{Auth, ClientInfo, MSG_BLOCKED, MSG_INVALID_LOGIN, Principal, random_id};
use crate::error::{Error, Result};
use crate::store::{Invalidation, Millis, Revoke, Rotation, Session, User};

pub const MSG_MISSING_REFRESH: &str = "Missing refresh token";
pub const MSG_INVALID_REFRESH: &str = "Invalid refresh token";
pub const MSG_SESSION_NOT_FOUND: &str = "Session not found";

/// The longest client-chosen device id kept; longer ones are cut.
const DEVICE_ID_MAX: usize = 128;

/// A device id as sessions store it: cut to [`DEVICE_ID_MAX`] characters. Logging out by device cuts
/// the same way, so a long id still names the sessions it started.
fn stored_device_id(device_id: &str) -> String {
    device_id.chars().take(DEVICE_ID_MAX).collect()
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Issue refresh tokens at login (Strapi 5's refresh mode).
    pub refresh_tokens: bool,
    /// A session not refreshed for this long can no longer be refreshed.
    pub idle_ttl: Duration,
    /// A session ends this long after login, whatever happens.
    pub absolute_ttl: Duration,
    /// How long a used refresh token may be replayed for the same successor.
    pub refresh_grace: Duration,
    /// Entries per cache (sessions, users).
    pub cache_capacity: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            refresh_tokens: true,
            idle_ttl: Duration::from_secs(14 * 86_400),
            absolute_ttl: Duration::from_secs(30 * 86_400),
            refresh_grace: Duration::from_secs(10),
            cache_capacity: 100_000,
        }
    }
}

/// What a successful refresh hands out: a new access token and the refresh token that replaces the
/// one spent.
#[derive(Debug)]
pub struct TokenPair {
    pub jwt: String,
    pub refresh_token: String,
}

/// What `POST /api/auth/logout` ends.
#[derive(Debug, Clone)]
pub enum LogoutScope {
    All,
    Device(String),
    RefreshToken(String),
    Current,
}

/// A session as `GET /api/auth/sessions` lists it.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub id: String,
    pub device_id: String,
    pub device_name: Option<String>,
    pub current: bool,
    pub login_at: Millis,
    pub last_active_at: Millis,
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn successor(token: &str, nonce: &[u8]) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).map_err(Error::internal)?;
    mac.update(nonce);
    Ok(super::password::base64_url(&mac.finalize().into_bytes()))
}

fn invalid_refresh() -> Error {
    Error::Unauthorized(MSG_INVALID_REFRESH)
}

/// The sessions service of an [`Auth`]: what a signed-in caller does with its sessions (refresh,
/// logout, list, end one), the one place sessions end ([`Sessions::revoke`]), and the serving
/// process's upkeep of the caches. Opening a session is not here: every sign-in (login,
/// registration, reset, single sign-on) opens one through `Auth::start_session`, under its rules.
pub struct Sessions<'a> {
    auth: &'a Auth,
}

impl Auth {
    /// Refresh, logout, the caller's sessions, revocation and the caches' upkeep.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { auth: self }
    }

    /// Opens a session for `user` and returns its access token and, in refresh mode, its first
    /// refresh token. `user` is the copy the decision was taken on, read after `ticket` was taken:
    /// the session opens only if the account still has its security stamp and is not blocked, so a
    /// block, a password change or a reset that landed since (while a password was being checked,
    /// say) is not outlived. Then the refusal is the one a new attempt would get: blocked, or wrong
    /// password.
    pub(super) async fn start_session(
        &self,
        user: &User,
        ticket: Ticket,
        device_id: Option<String>,
        client: ClientInfo,
    ) -> Result<(String, Option<String>)> {
        let now = self.clock.now_millis();
        let s = &self.session_settings;
        let device_id = device_id
            .filter(|d| !d.is_empty())
            .map(|d| stored_device_id(&d))
            .unwrap_or_else(|| random_id(12));
        let session = Session {
            id: random_id(16),
            user_id: user.id,
            device_id,
            device_name: client.user_agent.as_deref().and_then(device_name),
            created_at: now,
            last_active_at: now,
            idle_expires_at: now + s.idle_ttl.as_millis() as Millis,
            expires_at: now + s.absolute_ttl.as_millis() as Millis,
            revoked_at: None,
            revoked_reason: None,
            user_agent: client.user_agent.clone().map(|ua| super::truncate(ua, 512)),
            ip: client.ip.clone(),
        };
        let refresh = s.refresh_tokens.then(|| random_id(32));
        let opened = self
            .store
            .create_session_if_current(
                &session,
                refresh.as_deref().map(hash_token).as_deref(),
                user.stamp,
            )
            .await
            .or_internal()?;
        if !opened {
            tracing::info!(
                user_id = user.id,
                "account changed while the sign-in was decided: no session"
            );
            let detail = "account changed during the sign-in";
            self.audit("login_failure", Some(user.id), &client, Some(detail))
                .await;
            return Err(match self.store.user_by_id(user.id).await.or_internal()? {
                Some(now) if now.blocked => Error::Application(MSG_BLOCKED.into()),
                _ => Error::Validation(MSG_INVALID_LOGIN.into()),
            });
        }
        let jwt = self
            .keys
            .issue(user.id, &session.id, now, session.expires_at)?;
        // The user was read from the database for this decision: it replaces whatever the cache held
        // (say, a block another process has lifted since), unless something changed since the read.
        self.caches.put_user(ticket, Arc::new(user.clone()));
        self.caches.put_session(ticket, Arc::new(session));
        Ok((jwt, refresh))
    }

    /// The session behind an access token, from the cache when it is there.
    pub(super) async fn session(&self, id: &str) -> Result<Option<Arc<Session>>> {
        self.read_through(
            self.caches.session(id),
            || self.store.session(id),
            |t, s| self.caches.put_session(t, s),
        )
        .await
    }

    /// A user by id, from the cache when it is there.
    pub(super) async fn user(&self, id: i64) -> Result<Option<Arc<User>>> {
        self.read_through(
            self.caches.user(id),
            || self.store.user_by_id(id),
            |t, u| self.caches.put_user(t, u),
        )
        .await
    }

    /// `cached` if there was one; else what `load` reads, kept with a ticket taken before the read,
    /// so an invalidation that lands while it is read keeps the stale value out of the cache. (`load`
    /// is called only on a miss: a hit costs no store call, not even an unpolled one.)
    async fn read_through<V, F>(
        &self,
        cached: Option<Arc<V>>,
        load: impl FnOnce() -> F,
        keep: impl FnOnce(Ticket, Arc<V>),
    ) -> Result<Option<Arc<V>>>
    where
        F: Future<Output = crate::store::StoreResult<Option<V>>>,
    {
        if cached.is_some() {
            return Ok(cached);
        }
        let ticket = self.caches.ticket();
        let Some(value) = load().await.or_internal()? else {
            return Ok(None);
        };
        let value = Arc::new(value);
        keep(ticket, value.clone());
        Ok(Some(value))
    }
}

impl Sessions<'_> {
    /// The session lifetimes and modes (the refresh cookie's lifetime follows them).
    pub(crate) fn settings(&self) -> &SessionSettings {
        &self.auth.session_settings
    }

    /// `POST /api/auth/refresh`: exchanges a refresh token for a new access token and its successor.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, token: &str, client: &ClientInfo) -> Result<TokenPair> {
        let now = self.auth.clock.now_millis();
        let hash = hash_token(token);
        let idle = now + self.auth.session_settings.idle_ttl.as_millis() as Millis;

        // The usual case first, in one step where the store can: an unused token of an open session.
        let mut nonce = [0u8; 32];
        rand::fill(&mut nonce);
        let next = successor(token, &nonce)?;
        let next_hash = hash_token(&next);
        let exchange = Rotation {
            old_hash: &hash,
            nonce: &nonce,
            new_hash: &next_hash,
            now,
            idle_expires_at: idle,
        };
        if let Some(session) = self
            .auth
            .store
            .rotate_fresh_refresh(&exchange)
            .await
            .or_internal()?
        {
            let user = self.auth.user(session.user_id).await?;
            if user.as_ref().is_none_or(|u| !self.auth.may_act(u)) {
                return Err(invalid_refresh());
            }
            let jwt =
                self.auth
                    .keys
                    .issue(session.user_id, &session.id, now, session.expires_at)?;
            return Ok(TokenPair {
                jwt,
                refresh_token: next,
            });
        }

        // Anything else: a replay inside or past the grace window, an ended session, a stranger.
        let (record, session) = self
            .auth
            .store
            .refresh_token_and_session(&hash)
            .await
            .or_internal()?
            .ok_or_else(invalid_refresh)?;
        if !session.is_live(now) || session.idle_expires_at <= now {
            return Err(invalid_refresh());
        }
        let user = self.auth.user(session.user_id).await?;
        if user.as_ref().is_none_or(|u| !self.auth.may_act(u)) {
            return Err(invalid_refresh());
        }

        let next = match (&record.used_at, &record.nonce) {
            (None, _) => {
                let rotated = self
                    .auth
                    .store
                    .rotate_refresh(&exchange)
                    .await
                    .or_internal()?;
                if rotated {
                    next
                } else {
                    // A concurrent refresh used it first: answer as a replay would be.
                    let again = self.auth.store.refresh_token(&hash).await.or_internal()?;
                    let used = again.and_then(|r| r.used_at.zip(r.nonce));
                    self.replayed(token, &session, used, now, client).await?
                }
            }
            (Some(used), Some(nonce)) => {
                let used = Some((*used, nonce.clone()));
                self.replayed(token, &session, used, now, client).await?
            }
            (Some(_), None) => return Err(invalid_refresh()),
        };
        let jwt = self
            .auth
            .keys
            .issue(session.user_id, &session.id, now, session.expires_at)?;
        Ok(TokenPair {
            jwt,
            refresh_token: next,
        })
    }

    /// A used refresh token came back: the same successor inside the grace window, otherwise reuse,
    /// which ends the session.
    async fn replayed(
        &self,
        token: &str,
        session: &Session,
        used: Option<(Millis, Vec<u8>)>,
        now: Millis,
        client: &ClientInfo,
    ) -> Result<String> {
        let grace = self.auth.session_settings.refresh_grace.as_millis() as Millis;
        match used {
            Some((used_at, nonce)) if now - used_at <= grace => successor(token, &nonce),
            _ => {
                tracing::warn!(
                    session = %session.id,
                    user_id = session.user_id,
                    "refresh token reuse detected: ending the session"
                );
                self.revoke(Revoke::Session(session.id.clone()), "refresh_token_reuse")
                    .await?;
                let detail = format!("session {} ended", session.id);
                self.auth
                    .audit(
                        "refresh_token_reuse",
                        Some(session.user_id),
                        client,
                        Some(&detail),
                    )
                    .await;
                Err(invalid_refresh())
            }
        }
    }

    /// `POST /api/auth/logout`. `who` is the caller's verified access token, when it sent one. A
    /// refresh token ends its own session; with an access token it must be one of that user's, or
    /// nothing ends and the answer is 403 (a token that names no session counts as another user's, so
    /// the answer never tells a stranger's token from none).
    pub async fn logout(
        &self,
        who: Option<&Principal>,
        scope: LogoutScope,
        client: &ClientInfo,
    ) -> Result<()> {
        let caller = who.map(|p| p.user.id);
        let (which, user_id) = match (scope, caller) {
            (LogoutScope::All, Some(uid)) => (Revoke::AllOfUser(uid), uid),
            (LogoutScope::Device(device_id), Some(uid)) => {
                let device_id = stored_device_id(&device_id);
                (
                    Revoke::Device {
                        user_id: uid,
                        device_id,
                    },
                    uid,
                )
            }
            (LogoutScope::RefreshToken(token), _) => {
                let session = match self
                    .auth
                    .store
                    .refresh_token(&hash_token(&token))
                    .await
                    .or_internal()?
                {
                    Some(record) => self
                        .auth
                        .store
                        .session(&record.session_id)
                        .await
                        .or_internal()?,
                    None => None,
                };
                match (session, caller) {
                    (Some(s), None) => (Revoke::Session(s.id), s.user_id),
                    (Some(s), Some(uid)) if s.user_id == uid => (Revoke::Session(s.id), uid),
                    (_, Some(_)) => return Err(Error::Forbidden),
                    // Without an access token the refresh token is the only credential: one that
                    // names nothing has nothing to end, and logging out is done.
                    (None, None) => return Ok(()),
                }
            }
            (_, Some(uid)) => match who.and_then(|p| p.session_id.clone()) {
                Some(sid) => (Revoke::Session(sid), uid),
                // A Strapi-era token has no session: ending "this one" means ending them all.
                None => (Revoke::AllOfUser(uid), uid),
            },
            (_, None) => return Err(Error::Forbidden),
        };
        let ended = self.revoke(which, "logout").await?;
        let detail = format!("{} session(s) ended", ended.len());
        self.auth
            .audit("logout", Some(user_id), client, Some(&detail))
            .await;
        Ok(())
    }

    /// The caller's open sessions, the current one first, then the most recently active.
    pub async fn list(&self, who: &Principal) -> Result<Vec<SessionSummary>> {
        let now = self.auth.clock.now_millis();
        let mut out: Vec<SessionSummary> = self
            .auth
            .store
            .sessions_of_user(who.user.id)
            .await
            .or_internal()?
            .into_iter()
            .filter(|s| s.is_live(now))
            .map(|s| SessionSummary {
                current: who.session_id.as_deref() == Some(s.id.as_str()),
                id: s.id,
                device_id: s.device_id,
                device_name: s.device_name,
                login_at: s.created_at,
                last_active_at: s.last_active_at,
            })
            .collect();
        out.sort_by(|a, b| {
            b.current
                .cmp(&a.current)
                .then(b.last_active_at.cmp(&a.last_active_at))
        });
        Ok(out)
    }

    /// `DELETE /api/auth/sessions/:id`: another user's or an unknown session is "not found".
    pub async fn end(&self, who: &Principal, session_id: &str) -> Result<()> {
        let now = self.auth.clock.now_millis();
        match self.auth.store.session(session_id).await.or_internal()? {
            Some(s) if s.user_id == who.user.id && s.is_live(now) => {
                self.revoke(Revoke::Session(s.id), "ended_by_user").await?;
                Ok(())
            }
            _ => Err(Error::NotFound(MSG_SESSION_NOT_FOUND.into())),
        }
    }

    /// The one place sessions end: the store records the change for other processes, and this
    /// process's cache forgets the sessions at once, so their tokens fail on the very next request.
    pub async fn revoke(&self, which: Revoke, reason: &str) -> Result<Vec<String>> {
        let ids = self
            .auth
            .store
            .revoke_sessions(which, reason, self.auth.clock.now_millis())
            .await
            .or_internal()?;
        for id in &ids {
            self.auth.caches.apply(&Invalidation::Session(id.clone()));
        }
        Ok(ids)
    }

    /// Entries in the session and user caches: each stays within `cache_capacity`.
    pub fn cached_entries(&self) -> (u64, u64) {
        self.auth.caches.entries()
    }

    /// Drops everything cached about sessions and users and re-reads the signing keys: for when
    /// changes made elsewhere may have gone unnoticed (a lost database connection).
    pub(crate) async fn forget_everything(&self) {
        self.auth.caches.clear();
        if let Err(e) = self
            .auth
            .keys
            .reload(self.auth.store.as_ref(), self.auth.clock.now_millis())
            .await
        {
            tracing::warn!(error = %e, "reloading signing keys failed");
        }
    }

    /// Applies changes other processes recorded since `after`; returns the newest sequence seen.
    /// On failure the caches are cleared, since what they hold can no longer be trusted.
    pub(crate) async fn sync_invalidations(&self, after: i64) -> i64 {
        match self.auth.store.invalidations_since(after).await {
            Ok(changes) => {
                let mut last = after;
                for (seq, change) in changes {
                    if change == Invalidation::Keys
                        && let Err(e) = self
                            .auth
                            .keys
                            .reload(self.auth.store.as_ref(), self.auth.clock.now_millis())
                            .await
                    {
                        tracing::warn!(error = %e, "reloading signing keys failed");
                    }
                    self.auth.caches.apply(&change);
                    last = seq;
                }
                last
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read invalidations: clearing caches");
                self.auth.caches.clear();
                after
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_are_deterministic_per_nonce_and_unlinkable_without_it() {
        let a = successor("token", b"nonce-1").unwrap();
        assert_eq!(a, successor("token", b"nonce-1").unwrap());
        assert_ne!(a, successor("token", b"nonce-2").unwrap());
        assert_ne!(a, successor("other", b"nonce-1").unwrap());
        assert_eq!(a.len(), 43, "256 bits, base64url");
    }

    #[test]
    fn token_hashes_are_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
