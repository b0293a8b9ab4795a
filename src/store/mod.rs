//! Persistence. One object-safe trait, [`Store`], that the core talks to; one implementation per
//! database engine. Handlers never see a database type: engine errors become [`StoreError`] here, and a
//! unique-constraint violation becomes [`StoreError::Conflict`] so the core can answer "already taken"
//! without a racy read-then-write.

mod audit;
mod codes;
mod connect;
mod invalidations;
mod keys;
mod limits;
mod postgres;
mod sqlite;
mod sso;

pub use audit::{AuditEvent, AuditStore};
pub use codes::{CodePurpose, CodeStore};
pub use connect::{
    AppliedMigration, DEFAULT_STATEMENT_TIMEOUT, DatabaseSettings, POSTGRES_CONNECT_TIMEOUT,
    POSTGRES_POOL_SIZE, SQLITE_POOL_SIZE, SslMode, connect, migrate, redact_url,
};
use connect::{applied_versions, newly_applied};
pub use invalidations::{FeedEvent, Invalidation, InvalidationFeed, InvalidationStore};
pub use keys::{KeyStore, StoredKey};
pub use limits::{LimitStore, THROTTLE_WINDOW_MS, ThrottleKeys, ThrottleRule, ThrottleVerdict};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use sso::{Identity, SsoStage, SsoState, SsoStore};

use async_trait::async_trait;

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

#[async_trait]
pub trait Store:
    AuditStore
    + InvalidationStore
    + KeyStore
    + CodeStore
    + LimitStore
    + SsoStore
    + Send
    + Sync
    + 'static
{
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

    /// Deletes what can no longer matter: sessions ended before `sessions_before`, invalidations
    /// recorded before `invalidations_before`.
    async fn prune(&self, sessions_before: Millis, invalidations_before: Millis)
    -> StoreResult<()>;

    /// Whether several processes can share this database as one service (PostgreSQL): then rate
    /// limits and login throttling keep their state here, so that adding nodes does not multiply an
    /// attacker's allowance. A SQLite file serves one machine and they stay in memory.
    fn shared_by_nodes(&self) -> bool {
        false
    }
}
