//! Accounts and roles, including the accounts `keyway import strapi` brings over.

use super::{Millis, StoreResult};
use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRole {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Strapi's machine name: `public`, `authenticated`, or an operator's own.
    #[sqlx(rename = "type")]
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
    pub role: UserRole,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The security stamp: a counter every change that must undo earlier decisions moves on (a
    /// password change or reset, a block or unblock, an import rewriting the account). A session is
    /// opened only for the stamp the decision was taken on ([`SessionStore::create_session_if_current`](super::SessionStore::create_session_if_current)).
    pub stamp: i64,
    /// When the password last changed (not when its hash was upgraded); `None` if never since the
    /// account was made or imported. Strapi-issued tokens from before it are refused.
    pub password_changed_at: Option<Millis>,
}

/// A stored password hash replaced by a stronger hash of the same password, at `at`. No `Debug`: it
/// carries password hashes.
#[derive(Clone, Copy)]
pub struct HashUpgrade<'a> {
    pub user_id: i64,
    pub old: &'a str,
    pub new: &'a str,
    pub at: Millis,
}

/// A user together with the stored password hash, for the few operations that verify a password.
/// Kept apart from [`User`] so the hash cannot end up in a response by accident.
#[derive(Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: Option<String>,
}

/// An account to create: registered, signed up through a provider, made by an operator, or brought
/// over by an import (inside an [`ImportedUser`]). No `Debug`: it carries a password hash.
#[derive(Clone)]
pub struct NewUser {
    pub document_id: String,
    pub username: String,
    pub email: String,
    pub provider: String,
    pub password_hash: Option<String>,
    pub confirmed: bool,
    pub blocked: bool,
    pub role_id: i64,
    pub created_at: Millis,
}

/// A role to create. Keyway itself only seeds `authenticated` and `public`; `keyway import strapi`
/// brings over an operator's own roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRole {
    pub name: String,
    pub description: String,
    pub kind: String,
}

/// What [`UserStore::delete_role`] did.
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
    /// The account as Strapi has it (its email lower-cased, as every stored email).
    pub account: NewUser,
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

/// The accounts' and roles' part of [`Store`](super::Store).
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn role_by_kind(&self, kind: &str) -> StoreResult<Option<UserRole>>;
    async fn role_by_name_or_kind(&self, name: &str) -> StoreResult<Option<UserRole>>;
    /// Inserts a user; [`StoreError::Conflict`](super::StoreError::Conflict) when the username or email is taken.
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
    async fn replace_password_hash(&self, upgrade: &HashUpgrade<'_>) -> StoreResult<bool>;
    /// Returns false when no such user exists. Moves the security stamp on. Records a user
    /// invalidation.
    async fn set_blocked(&self, user_id: i64, blocked: bool, now: Millis) -> StoreResult<bool>;
    /// Deletes the user and, with them, their sessions. Returns false when no such user exists.
    /// Records a user invalidation.
    async fn delete_user(&self, user_id: i64) -> StoreResult<bool>;
    /// Inserts a role; [`StoreError::Conflict`](super::StoreError::Conflict) when its name or type is taken.
    async fn create_role(&self, role: &NewRole) -> StoreResult<UserRole>;
    /// Every role, by id, with how many accounts have it.
    async fn list_roles(&self) -> StoreResult<Vec<(UserRole, i64)>>;
    /// Renames a role (its type stays); false when no role has this id, [`StoreError::Conflict`](super::StoreError::Conflict)
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
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when the id, username, email, document id or Strapi id is taken.
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
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when the new username or email is taken. Records a user invalidation
    /// at `now`.
    async fn update_imported_user(
        &self,
        user_id: i64,
        user: &ImportedUser,
        now: Millis,
    ) -> StoreResult<bool>;
}

/// The user columns joined with their role, as [`UserRow`] reads them; a macro so that queries
/// built on it with `concat!` stay `&'static str`.
macro_rules! user_select {
    () => {
        "SELECT u.id, u.document_id, u.username, u.email, u.provider, u.confirmed, u.blocked, \
         u.created_at, u.updated_at, u.security_stamp, u.password_changed_at, u.password_hash, \
         r.id AS role_id, r.name AS role_name, r.description AS role_description, r.type AS role_type \
         FROM users u JOIN roles r ON r.id = u.role_id "
    };
}
pub(super) use user_select;

/// [`user_select!`] plus what an import remembered of the account (`strapi_users`), as
/// [`ImportedRow`] reads them; accounts made in Keyway have no such row, so the join leaves them out.
macro_rules! imported_select {
    () => {
        "SELECT u.id, u.document_id, u.username, u.email, u.provider, u.confirmed, u.blocked, \
         u.created_at, u.updated_at, u.security_stamp, u.password_changed_at, u.password_hash, \
         r.id AS role_id, r.name AS role_name, r.description AS role_description, r.type AS role_type, \
         s.strapi_id, s.password_digest AS strapi_password_digest, s.confirmed AS strapi_confirmed, \
         s.blocked AS strapi_blocked \
         FROM users u JOIN roles r ON r.id = u.role_id JOIN strapi_users s ON s.user_id = u.id "
    };
}
pub(super) use imported_select;

/// The user columns joined with their role, as [`user_select!`] lists them.
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: i64,
    document_id: String,
    username: String,
    email: String,
    provider: String,
    confirmed: bool,
    blocked: bool,
    created_at: Millis,
    updated_at: Millis,
    security_stamp: i64,
    password_changed_at: Option<Millis>,
    password_hash: Option<String>,
    role_id: i64,
    role_name: String,
    role_description: String,
    role_type: String,
}

impl UserRow {
    /// The account with its password hash, for the operations that verify one.
    pub(super) fn credentials(self) -> UserCredentials {
        let password_hash = self.password_hash.clone();
        UserCredentials {
            user: self.into(),
            password_hash,
        }
    }
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: r.id,
            document_id: r.document_id,
            username: r.username,
            email: r.email,
            provider: r.provider,
            confirmed: r.confirmed,
            blocked: r.blocked,
            role: UserRole {
                id: r.role_id,
                name: r.role_name,
                description: r.role_description,
                kind: r.role_type,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
            stamp: r.security_stamp,
            password_changed_at: r.password_changed_at,
        }
    }
}

/// [`UserRow`] plus what an import remembered (`imported_select!`).
#[derive(sqlx::FromRow)]
pub(super) struct ImportedRow {
    #[sqlx(flatten)]
    user: UserRow,
    strapi_id: i64,
    strapi_password_digest: Option<String>,
    strapi_confirmed: bool,
    strapi_blocked: bool,
}

impl From<ImportedRow> for ImportedAccount {
    fn from(r: ImportedRow) -> Self {
        let UserCredentials {
            user,
            password_hash,
        } = r.user.credentials();
        Self {
            user,
            password_hash,
            strapi_id: r.strapi_id,
            strapi: StrapiState {
                password_digest: r.strapi_password_digest,
                confirmed: r.strapi_confirmed,
                blocked: r.strapi_blocked,
            },
        }
    }
}

/// A role with how many accounts have it.
#[derive(sqlx::FromRow)]
pub(super) struct RoleUse {
    #[sqlx(flatten)]
    role: UserRole,
    users: i64,
}

impl From<RoleUse> for (UserRole, i64) {
    fn from(r: RoleUse) -> Self {
        (r.role, r.users)
    }
}
