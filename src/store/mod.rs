//! Persistence. One object-safe trait, [`Store`], that the core talks to; one implementation per
//! database engine. Handlers never see a database type: engine errors become [`StoreError`] here, and a
//! unique-constraint violation becomes [`StoreError::Conflict`] so the core can answer "already taken"
//! without a racy read-then-write.

mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Milliseconds since the Unix epoch. Stored as a 64-bit integer on every engine so that timestamps
/// mean the same thing everywhere and sort cheaply.
pub type Millis = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("unsupported database URL: {0}")]
    UnsupportedUrl(String),
    /// The database's files are open to other local users (the message says how to fix it).
    #[error("{0}")]
    Unprotected(String),
    /// An admin command found no database where the configuration points (the message names it).
    #[error("{0}")]
    Missing(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Strapi's machine name: `public`, `authenticated`, or an operator's own.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub document_id: String,
    pub username: String,
    pub email: String,
    pub provider: String,
    pub confirmed: bool,
    pub blocked: bool,
    pub role: Role,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The security stamp: a counter every change that must undo earlier decisions moves on (a
    /// password change or reset, a block or unblock, an import rewriting the account). A session is
    /// opened only for the stamp the decision was taken on ([`Store::create_session_if_current`]).
    pub stamp: i64,
    /// When the password last changed (not when its hash was upgraded); `None` if never since the
    /// account was made or imported. Strapi-issued tokens from before it are refused.
    pub password_changed_at: Option<Millis>,
}

/// A user together with the stored password hash, for the few operations that verify a password.
/// Kept apart from [`User`] so the hash cannot end up in a response by accident.
#[derive(Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub document_id: String,
    pub username: String,
    pub email: String,
    pub provider: String,
    pub password_hash: Option<String>,
    pub confirmed: bool,
    pub blocked: bool,
    pub role_id: i64,
    pub now: Millis,
}

/// A role to create. Keyway itself only seeds `authenticated` and `public`; `keyway import strapi`
/// brings over an operator's own roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRole {
    pub name: String,
    pub description: String,
    pub kind: String,
}

/// What [`Store::delete_role`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleRemoval {
    Removed,
    NotFound,
    /// Left in place: this many accounts have it.
    InUse(i64),
}

/// An account brought over from Strapi by `keyway import strapi`. Unlike a [`NewUser`] it keeps what
/// it had there: its id (so tokens Strapi issued still name it), its timestamps, and its password hash
/// as it is (bcrypt, verified as such and upgraded to argon2id at the next login). No `Debug`: it
/// carries a password hash.
#[derive(Clone)]
pub struct ImportedUser {
    /// The id of the Strapi row: the account's id when it is first imported.
    pub strapi_id: i64,
    pub document_id: String,
    pub username: String,
    /// Lower-cased, as every stored email.
    pub email: String,
    pub provider: String,
    pub password_hash: Option<String>,
    pub confirmed: bool,
    pub blocked: bool,
    pub role_id: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// What Strapi had, remembered for the next import.
    pub strapi: StrapiState,
}

/// What Strapi had, at the last import, for the fields Keyway can change too (a login upgrades the
/// hash, a user resets a password, an operator blocks): the next import applies a field only when
/// Strapi's value differs from this one, so it never undoes a change made in Keyway. The password is
/// a SHA-256 digest of Strapi's hash, enough to notice a change and useless for anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrapiState {
    pub password_digest: Option<String>,
    pub confirmed: bool,
    pub blocked: bool,
}

/// An account an earlier import made, with what the next import compares.
#[derive(Clone)]
pub struct ImportedAccount {
    pub user: User,
    pub password_hash: Option<String>,
    /// The Strapi row it mirrors (Strapi 5 may have re-created it under another id since).
    pub strapi_id: i64,
    pub strapi: StrapiState,
}

/// One login: every access token names its session (`sid`), and a token whose session is gone, revoked
/// or expired is refused. A session is also the family of its refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// One refresh token of a session, known only by its SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A change another process must apply to its caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    Session(String),
    User(i64),
    Keys,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A provider identity linked to an account (single sign-on).
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// An identity row as both engines read it: provider, subject, user_id, email, created_at.
pub(crate) type IdentityRow = (String, String, i64, Option<String>, Millis);

impl From<IdentityRow> for Identity {
    fn from((provider, subject, user_id, email, created_at): IdentityRow) -> Self {
        Self {
            provider,
            subject,
            user_id,
            email,
            created_at,
        }
    }
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

/// The state a `DELETE … RETURNING stage, provider, browser, payload, expires_at` took out, if it was
/// at `stage` and unexpired; both engines share this check.
pub(crate) fn live_sso_state(
    hash: &str,
    row: Option<(String, String, String, String, Millis)>,
    stage: SsoStage,
    now: Millis,
) -> Option<SsoState> {
    let (found_stage, provider, browser, payload, expires_at) = row?;
    (found_stage == stage.as_str() && expires_at > now).then(|| SsoState {
        hash: hash.to_owned(),
        stage,
        provider,
        browser,
        payload,
        expires_at,
    })
}

/// A signing key the server generated for itself. The private half is PKCS#8 DER.
#[derive(Clone)]
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

/// How the login throttle decides (see `auth::throttle`). A type of the store's because a store shared
/// by several nodes applies it in the database, in the same atomic step that counts the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Attempts a bucket takes before pauses start.
    pub free: u32,
    /// The longest pause between two attempts.
    pub max_pause_ms: Millis,
    /// Attempts a bucket takes in any hour, at most; at least 1.
    pub hourly_cap: u32,
}

/// How long an attempt stays counted in its bucket.
pub const THROTTLE_WINDOW_MS: Millis = 3_600_000;

impl ThrottleRule {
    /// How long an attempt at `now` must wait, given the times of the attempts its bucket counted
    /// less than [`THROTTLE_WINDOW_MS`] ago (in any order); 0 when it may go ahead. PgStore states the
    /// same rule in SQL.
    pub fn wait(&self, recent: &[Millis], now: Millis) -> Millis {
        let (Some(first), Some(last)) = (recent.iter().min(), recent.iter().max()) else {
            return 0;
        };
        let n = recent.len() as u32;
        if n >= self.hourly_cap {
            return first + THROTTLE_WINDOW_MS - now;
        }
        if n >= self.free {
            let pause = (1000 << (n - self.free).min(20)).min(self.max_pause_ms);
            if now - last < pause {
                return last + pause - now;
            }
        }
        0
    }
}

/// Who makes a login attempt, as the throttle keys it: digests, never what was typed.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleKeys<'a> {
    /// The account's bucket (and the account trusted clients are trusted on).
    pub account: &'a str,
    /// The client's address and its own bucket on the account, used while it is trusted there.
    pub client: Option<(&'a str, &'a str)>,
}

/// The answer to an attempt: the bucket it was decided in, and how long it must wait (0: it was
/// counted there and may go ahead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleVerdict {
    pub bucket: String,
    pub wait_ms: Millis,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `Ok` when the database answers a trivial query.
    async fn ping(&self) -> StoreResult<()>;

    async fn role_by_kind(&self, kind: &str) -> StoreResult<Option<Role>>;
    async fn role_by_name_or_kind(&self, name: &str) -> StoreResult<Option<Role>>;

    /// Inserts a user; [`StoreError::Conflict`] when the username or email is taken.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// The local-provider account whose email equals `email_lowercase` or whose username equals
    /// `username` exactly; the lowest id wins if both match different accounts.
    async fn local_credentials(
        &self,
        email_lowercase: &str,
        username: &str,
    ) -> StoreResult<Option<UserCredentials>>;
    /// Whether any account has this username or email, checked across both columns (an email may not
    /// be taken as someone's username and vice versa, as in Strapi).
    async fn identity_taken(&self, username: &str, email: &str) -> StoreResult<bool>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// The account with this (lower-cased) email, any provider.
    async fn user_by_email(&self, email_lowercase: &str) -> StoreResult<Option<User>>;
    /// Marks the email confirmed. Records a user invalidation.
    async fn set_confirmed(&self, user_id: i64, now: Millis) -> StoreResult<()>;
    /// Stores a new password: moves the security stamp on and sets `password_changed_at` to `now`.
    /// Records a user invalidation.
    async fn set_password_hash(&self, user_id: i64, hash: &str, now: Millis) -> StoreResult<()>;
    /// Replaces the hash only if it is still `old`; returns whether it did. For upgrades made in the
    /// background, which must never undo a password change that landed first. The password is the
    /// same, so the security stamp stays (a login checking the old hash meanwhile is still right).
    async fn replace_password_hash(
        &self,
        user_id: i64,
        old: &str,
        new: &str,
        now: Millis,
    ) -> StoreResult<bool>;
    /// Returns false when no such user exists. Moves the security stamp on. Records a user
    /// invalidation.
    async fn set_blocked(&self, user_id: i64, blocked: bool, now: Millis) -> StoreResult<bool>;
    /// Deletes the user and, with them, their sessions. Returns false when no such user exists.
    /// Records a user invalidation.
    async fn delete_user(&self, user_id: i64) -> StoreResult<bool>;

    /// Inserts a role; [`StoreError::Conflict`] when its name or type is taken.
    async fn create_role(&self, role: &NewRole) -> StoreResult<Role>;
    /// Every role, by id, with how many accounts have it.
    async fn list_roles(&self) -> StoreResult<Vec<(Role, i64)>>;
    /// Renames a role (its type stays); false when no role has this id, [`StoreError::Conflict`]
    /// when another role has the name. Records a user invalidation for each account with the role,
    /// whose cached copies carry its name.
    async fn rename_role(&self, role_id: i64, name: &str, now: Millis) -> StoreResult<bool>;
    /// Deletes a role no account has, deciding in the same transaction (a concurrent assignment
    /// either lands first and the role stays, or fails on the foreign key).
    async fn delete_role(&self, role_id: i64) -> StoreResult<RoleRemoval>;
    /// Gives an account another role; false when no such account exists. Records a user
    /// invalidation.
    async fn set_user_role(&self, user_id: i64, role_id: i64, now: Millis) -> StoreResult<bool>;
    /// Inserts an account imported from Strapi under its Strapi id, with its timestamps and hash as
    /// given, and what Strapi had; makes sure ids handed out later come after it.
    /// [`StoreError::Conflict`] when the id, username, email, document id or Strapi id is taken.
    async fn insert_imported_user(&self, user: &ImportedUser) -> StoreResult<()>;
    /// The account an earlier import made of this Strapi user: the one mirroring this Strapi row,
    /// else (Strapi 5, which can re-create a document's row under a new id) the imported account with
    /// this document id. Accounts made in Keyway are never returned.
    async fn imported_user(
        &self,
        strapi_id: i64,
        document_id: Option<&str>,
    ) -> StoreResult<Option<ImportedAccount>>;
    /// Writes an imported account as the import merged it: username, email, provider, password hash,
    /// confirmed, blocked, role, `updated_at`, the Strapi row it mirrors and what Strapi had (never its
    /// id, document id or creation time); moves the security stamp on, and sets `password_changed_at`
    /// to `now` when the hash changes. Returns false when no such account exists;
    /// [`StoreError::Conflict`] when the new username or email is taken. Records a user invalidation
    /// at `now`.
    async fn update_imported_user(
        &self,
        user_id: i64,
        user: &ImportedUser,
        now: Millis,
    ) -> StoreResult<bool>;

    /// Inserts a session and, when given, its first refresh token, in one transaction.
    async fn create_session(
        &self,
        session: &Session,
        refresh_hash: Option<&str>,
    ) -> StoreResult<()>;
    /// [`Store::create_session`], but only while the session's user exists, is not blocked and still
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
    /// The common refresh in one step: exchanges `old_hash` for `new_hash` as [`Store::rotate_refresh`]
    /// does, but only if the token is unused and its session open and within its idle deadline at
    /// `now`; returns that session, as updated. `None` when anything else holds (a replay, an ended
    /// session, an unknown token) or when the engine has no such shortcut: the caller then takes the
    /// careful path, which tells those cases apart.
    async fn rotate_fresh_refresh(
        &self,
        _old_hash: &str,
        _nonce: &[u8],
        _new_hash: &str,
        _now: Millis,
        _idle_expires_at: Millis,
    ) -> StoreResult<Option<Session>> {
        Ok(None)
    }

    /// Exchanges an unused refresh token for its successor, atomically: marks `old_hash` used with
    /// `nonce`, records `new_hash`, and moves the session's idle deadline. Returns false (changing
    /// nothing) when `old_hash` was already used, so two concurrent refreshes cannot both rotate.
    async fn rotate_refresh(
        &self,
        old_hash: &str,
        nonce: &[u8],
        new_hash: &str,
        now: Millis,
        idle_expires_at: Millis,
    ) -> StoreResult<bool>;

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

    /// Records a change other processes must apply to their caches.
    async fn record_invalidation(&self, change: &Invalidation, now: Millis) -> StoreResult<()>;
    /// Changes recorded after `seq`, oldest first, with their sequence numbers.
    async fn invalidations_since(&self, seq: i64) -> StoreResult<Vec<(i64, Invalidation)>>;
    /// The newest sequence number (0 when none).
    async fn last_invalidation(&self) -> StoreResult<i64>;
    /// Deletes what can no longer matter: sessions ended before `sessions_before`, invalidations
    /// recorded before `invalidations_before`.
    async fn prune(&self, sessions_before: Millis, invalidations_before: Millis)
    -> StoreResult<()>;

    /// Every signing key, newest first. Which of them still verify is the core's decision.
    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>>;
    /// Inserts a key and records a `Keys` invalidation so running servers reload.
    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()>;
    /// Marks every key not yet retired as retired at `now` (a switch to an HS256 secret) and, when
    /// any was, records a `Keys` invalidation; returns how many were. A key retired earlier keeps
    /// its time, so restarts do not extend it.
    async fn retire_signing_keys(&self, now: Millis) -> StoreResult<u64>;

    /// Whether several processes can share this database as one service (PostgreSQL): then rate
    /// limits and login throttling keep their state here, so that adding nodes does not multiply an
    /// attacker's allowance. A SQLite file serves one machine and they stay in memory.
    fn shared_by_nodes(&self) -> bool {
        false
    }

    /// Counts a hit in the fixed window named `key`: a window `window_ms` old or older starts over
    /// at `now`. Returns the window's start and its count, this hit included. Atomic.
    async fn hit_window(
        &self,
        key: &str,
        now: Millis,
        window_ms: i64,
    ) -> StoreResult<(Millis, u32)>;
    /// Decides on a login attempt under `rule` and, when it may go ahead, counts it: one atomic step,
    /// so concurrent attempts (on any node) each see the ones let through before them. It is decided
    /// in the client's own bucket while the client is trusted on the account, else in the account's.
    async fn throttle_attempt(
        &self,
        keys: ThrottleKeys<'_>,
        now: Millis,
        rule: ThrottleRule,
    ) -> StoreResult<ThrottleVerdict>;
    /// A successful attempt: takes back the one counted at `at` in `bucket`, trusts the client on the
    /// account until `trusted_until` and clears its own bucket.
    async fn throttle_success(
        &self,
        keys: ThrottleKeys<'_>,
        bucket: &str,
        at: Millis,
        trusted_until: Millis,
    ) -> StoreResult<()>;

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

    /// A push feed that announces new invalidations as they commit, where the engine has one
    /// (PostgreSQL's `LISTEN`/`NOTIFY`); `None` where polling [`Store::invalidations_since`] is all
    /// there is.
    async fn subscribe(&self) -> StoreResult<Option<Box<dyn InvalidationFeed>>> {
        Ok(None)
    }
}

/// What an [`InvalidationFeed`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEvent {
    /// Something was recorded: read the log from where you were.
    Changed,
    /// The feed was interrupted and has reconnected; anything may have been missed meanwhile.
    Lost,
    /// The feed was interrupted and is not connected: nothing is pushed until a later `Lost` says it
    /// is back. The next call to [`InvalidationFeed::next`] reconnects.
    Down,
}

/// Where a serving process's invalidation feed stands, for `/readyz`: a node that is not listening
/// still works, on the poll, so this informs and does not decide readiness.
#[derive(Debug, Default)]
pub struct FeedStatus {
    state: std::sync::atomic::AtomicU8,
    connects: std::sync::atomic::AtomicU64,
}

/// [`FeedStatus`]'s states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedState {
    /// A push feed is expected and is not (yet, or not again) connected.
    Connecting,
    /// `LISTEN`ing: changes made by other processes are applied as they commit.
    Listening,
    /// The engine has no push feed (SQLite): only the poll.
    None,
}

impl FeedStatus {
    const CONNECTING: u8 = 0;
    const LISTENING: u8 = 1;
    const NONE: u8 = 2;

    pub fn state(&self) -> FeedState {
        match self.state.load(std::sync::atomic::Ordering::SeqCst) {
            Self::LISTENING => FeedState::Listening,
            Self::NONE => FeedState::None,
            _ => FeedState::Connecting,
        }
    }

    /// How many times the feed has connected since the process started, reconnections included.
    pub fn connects(&self) -> u64 {
        self.connects.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The feed has (re)connected and listens.
    pub fn listening(&self) {
        self.connects
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.set(Self::LISTENING);
    }

    pub fn connecting(&self) {
        self.set(Self::CONNECTING);
    }

    pub fn none(&self) {
        self.set(Self::NONE);
    }

    fn set(&self, state: u8) {
        self.state.store(state, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
pub trait InvalidationFeed: Send {
    /// Waits for the next event.
    async fn next(&mut self) -> FeedEvent;
}

/// How to open the database, beyond its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// Most connections the pool keeps; `None` is the engine's default ([`SQLITE_POOL_SIZE`],
    /// [`POSTGRES_POOL_SIZE`]).
    pub pool_size: Option<u32>,
    /// PostgreSQL: the server cancels a statement that runs longer (`statement_timeout`), so a stuck
    /// query frees its connection instead of starving the pool. Zero means no limit. Ignored by SQLite,
    /// whose waits are bounded by its busy timeout.
    pub statement_timeout: Duration,
    /// PostgreSQL: TLS to the server. `None` leaves it to the URL's `sslmode`, else `prefer`.
    pub ssl_mode: Option<SslMode>,
    /// SQLite: open a database file (or its `-wal`, `-shm`) that other local users may read or
    /// write. Off by default: the file holds the private signing keys.
    pub allow_readable_file: bool,
    /// SQLite: create the database file when it does not exist. `serve` and `migrate` do; the admin
    /// commands do not, so one run in the wrong directory reports the missing file instead of
    /// answering from a new, empty database it just made.
    pub create_if_missing: bool,
}

/// SQLite's default pool of readers (writes have one connection of their own). Each connection is a
/// thread of its own in sqlx; on a small machine more of them cost more in thread switches than
/// they gain (bench/: refreshes/s rose from ~2,300 with 8 readers to ~2,700 with 2).
pub const SQLITE_POOL_SIZE: u32 = 2;
/// PostgreSQL: longest the first connection may take. sqlx's pool would retry a refused connection
/// for its whole 30 s acquire timeout and then report only the timeout; one direct attempt under this
/// bound reports the cause (refused, authentication, name resolution) at once.
pub const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// PostgreSQL's default pool: enough for concurrent requests while leaving most of the server's
/// default 100 connections to other nodes and tools.
pub const POSTGRES_POOL_SIZE: u32 = 10;
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            pool_size: None,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            ssl_mode: None,
            allow_readable_file: false,
            create_if_missing: true,
        }
    }
}

/// libpq's `sslmode`, the same names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain otherwise (the default).
    Prefer,
    /// TLS or nothing, without checking the certificate.
    Require,
    /// TLS with a certificate signed by a trusted CA.
    VerifyCa,
    /// TLS with a trusted certificate for the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A migration that `keyway migrate` (or a start) applied to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i64,
    pub description: String,
}

/// The engine a database URL names.
enum Engine {
    /// With the URL SQLite should open (a bare path gets its scheme).
    Sqlite(String),
    Postgres,
}

fn engine_of(url: &str) -> StoreResult<Engine> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" => Ok(Engine::Sqlite(url.to_owned())),
        "postgres" | "postgresql" => Ok(Engine::Postgres),
        _ if !url.contains("://") => Ok(Engine::Sqlite(format!("sqlite://{url}"))),
        other => Err(StoreError::UnsupportedUrl(format!(
            "unknown scheme '{other}'; use sqlite://PATH or postgres://USER@HOST/DATABASE"
        ))),
    }
}

/// Opens the store named by a database URL — `sqlite://path`, `sqlite::memory:`, a bare file path, or
/// `postgres://…` / `postgresql://…` — and applies the pending migrations.
pub async fn connect(
    url: &SecretString,
    settings: &DatabaseSettings,
) -> StoreResult<Arc<dyn Store>> {
    let url = url.expose_secret();
    let opened: StoreResult<Arc<dyn Store>> = match engine_of(url)? {
        Engine::Sqlite(sqlite) => match SqliteStore::open(&sqlite, settings).await {
            Ok((store, _)) => Ok(Arc::new(store)),
            Err(e) => Err(e),
        },
        Engine::Postgres => match PgStore::open(url, settings).await {
            Ok((store, _)) => Ok(Arc::new(store)),
            Err(e) => Err(e),
        },
    };
    opened.map_err(|e| naming(url, e))
}

/// Applies the pending migrations to the database and closes it; returns what was applied (empty when
/// the schema was already current).
pub async fn migrate(
    url: &SecretString,
    settings: &DatabaseSettings,
) -> StoreResult<Vec<AppliedMigration>> {
    let url = url.expose_secret();
    let applied = match engine_of(url)? {
        Engine::Sqlite(sqlite) => SqliteStore::open(&sqlite, settings).await.map(|o| o.1),
        Engine::Postgres => PgStore::open(url, settings).await.map(|o| o.1),
    };
    applied.map_err(|e| naming(url, e))
}

/// A database error that says which database: engine messages ("unable to open database file",
/// "connection refused") do not, and an operator with several configurations needs to know.
fn naming(url: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Database(inner) => {
            StoreError::Database(format!("{}: {inner}", redact_url(url)).into())
        }
        other => other,
    }
}

/// sqlx's bookkeeping table, the one `sqlx::migrate!` uses.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Versions already recorded as applied. Taken under the migration lock so it cannot race another
/// process creating the bookkeeping table (a no-op lock on SQLite, whose writers are serialized anyway).
async fn applied_versions<C>(conn: &mut C) -> StoreResult<HashSet<i64>>
where
    C: sqlx::migrate::Migrate + ?Sized,
{
    let migrate_err = |e: sqlx::migrate::MigrateError| StoreError::Database(Box::new(e));
    conn.lock().await.map_err(migrate_err)?;
    let listed = match conn.ensure_migrations_table(MIGRATIONS_TABLE).await {
        Ok(()) => conn.list_applied_migrations(MIGRATIONS_TABLE).await,
        Err(e) => Err(e),
    };
    conn.unlock().await.map_err(migrate_err)?;
    Ok(listed
        .map_err(migrate_err)?
        .into_iter()
        .map(|m| m.version)
        .collect())
}

/// The up-migrations of `migrator` missing from `before`: what a run that started from `before` applied.
fn newly_applied(
    migrator: &sqlx::migrate::Migrator,
    before: &HashSet<i64>,
) -> Vec<AppliedMigration> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !before.contains(&m.version))
        .map(|m| AppliedMigration {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect()
}

/// The URL with any password replaced by `***`, for logs and the start-up line.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Engine, StoreError, engine_of, redact_url};

    #[test]
    fn the_url_scheme_chooses_the_engine() {
        for pg in [
            "postgres://u@db/k",
            "postgresql://u:p@db:5432/k?sslmode=require",
        ] {
            assert!(matches!(engine_of(pg), Ok(Engine::Postgres)), "{pg}");
        }
        let sqlite = |url: &str| match engine_of(url) {
            Ok(Engine::Sqlite(u)) => u,
            _ => panic!("{url} is not SQLite"),
        };
        assert_eq!(sqlite("sqlite://keyway.db"), "sqlite://keyway.db");
        assert_eq!(sqlite("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(sqlite("data/keyway.db"), "sqlite://data/keyway.db");
        assert!(matches!(
            engine_of("mysql://u@db/k"),
            Err(StoreError::UnsupportedUrl(m)) if m.contains("mysql")
        ));
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/keyway"),
            "postgres://app:***@db:5432/keyway"
        );
        assert_eq!(
            redact_url("postgres://app@db/keyway"),
            "postgres://app@db/keyway"
        );
        assert_eq!(redact_url("sqlite://keyway.db"), "sqlite://keyway.db");
        assert_eq!(redact_url("keyway.db"), "keyway.db");
        assert_eq!(
            redact_url("postgres://u:p@ss@host/db?sslmode=require"),
            "postgres://u:***@host/db?sslmode=require"
        );
    }
}
