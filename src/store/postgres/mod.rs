//! The PostgreSQL store, for several nodes sharing one database. Same schema and same semantics as
//! the SQLite store (`sqlite.rs`): read the two side by side. Where SQLite gets atomicity for free
//! (one writer at a time), this file says how it gets the same guarantee from row locks, conditional
//! updates and one advisory lock — PostgreSQL runs transactions concurrently at READ COMMITTED.

mod audit;

mod invalidations;

mod keys;

mod codes;

mod limits;

mod sso;

use super::{
    AppliedMigration, DatabaseSettings, ImportedAccount, ImportedUser, Invalidation, Millis,
    NewRole, NewUser, POSTGRES_POOL_SIZE, RefreshRecord, Revoke, Role, RoleRemoval, Session,
    SslMode, Store, StoreError, StoreResult, StrapiState, User, UserCredentials, applied_versions,
    newly_applied,
};
use async_trait::async_trait;
use invalidations::record;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::{Postgres, Row};
use std::borrow::Cow;
use std::str::FromStr;

pub struct PgStore {
    pool: PgPool,
}

/// The user columns joined with their role, in the order `user_from_row` reads them.
macro_rules! user_select {
    () => {
        "SELECT u.id, u.document_id, u.username, u.email, u.provider, u.confirmed, u.blocked, \
         u.created_at, u.updated_at, u.security_stamp, u.password_changed_at, u.password_hash, \
         r.id AS role_id, r.name AS role_name, r.description AS role_description, r.type AS role_type \
         FROM users u JOIN roles r ON r.id = u.role_id "
    };
}

/// [`user_select!`] plus what an import remembered of the account (`strapi_users`); accounts made
/// in Keyway have no such row, so the join leaves them out.
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

/// The session columns, in a literal so queries stay `&'static str`.
macro_rules! session_select {
    () => {
        "SELECT id, user_id, device_id, device_name, created_at, last_active_at, idle_expires_at, \
         expires_at, revoked_at, revoked_reason, user_agent, ip FROM sessions "
    };
}

/// A revocation: ends the open sessions `$filter` selects ($3, $4 are its parameters).
macro_rules! revoke {
    ($filter:literal) => {
        concat!(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE revoked_at IS NULL AND ",
            $filter,
            " RETURNING id"
        )
    };
}

/// PostgreSQL's TEXT cannot hold U+0000, which SQLite stores like any other character and which a
/// client can send (a JSON `"\u0000"` in a device id or a login identifier). Every string bound to a
/// query goes through here, values and lookup keys alike: NUL becomes U+FFFD, so what SQLite would
/// store PostgreSQL stores, what SQLite would match PostgreSQL matches, and no input becomes a
/// database error. The price: NUL and U+FFFD in the same place are the same text here, and a stored
/// NUL reads back as U+FFFD.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn opt_text(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(text)
}

/// Inserts an account; its id.
async fn insert_user<'e>(
    exec: impl sqlx::Executor<'e, Database = Postgres>,
    user: &NewUser,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO users (document_id, username, email, provider, password_hash, confirmed, \
         blocked, role_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
    )
    .bind(text(&user.document_id))
    .bind(text(&user.username))
    .bind(text(&user.email))
    .bind(text(&user.provider))
    .bind(opt_text(&user.password_hash))
    .bind(user.confirmed)
    .bind(user.blocked)
    .bind(user.role_id)
    .bind(user.now)
    .fetch_one(exec)
    .await
}

fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(Box::new(e)),
    }
}

/// Inserts a session and its first refresh token in one transaction; with `stamp`, only while the
/// user exists, is not blocked and has that security stamp. The check takes a share lock on the
/// user's row, held to the commit: a block or password change (an `UPDATE` of that row) either
/// commits first, and then the check, re-reading the row after waiting, fails; or waits for this
/// session to commit, and then the revocation that follows it sees the session and ends it.
/// Returns whether it inserted.
async fn insert_session(
    pool: &PgPool,
    s: &Session,
    refresh_hash: Option<&str>,
    stamp: Option<i64>,
) -> StoreResult<bool> {
    let mut tx = pool.begin().await.map_err(db)?;
    if let Some(stamp) = stamp {
        let current = sqlx::query(
            "SELECT 1 FROM users WHERE id = $1 AND security_stamp = $2 AND NOT blocked FOR SHARE",
        )
        .bind(s.user_id)
        .bind(stamp)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if current.is_none() {
            return Ok(false);
        }
    }
    sqlx::query(
        "INSERT INTO sessions (id, user_id, device_id, device_name, created_at, last_active_at, \
         idle_expires_at, expires_at, revoked_at, revoked_reason, user_agent, ip) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(text(&s.id))
    .bind(s.user_id)
    .bind(text(&s.device_id))
    .bind(opt_text(&s.device_name))
    .bind(s.created_at)
    .bind(s.last_active_at)
    .bind(s.idle_expires_at)
    .bind(s.expires_at)
    .bind(s.revoked_at)
    .bind(opt_text(&s.revoked_reason))
    .bind(opt_text(&s.user_agent))
    .bind(opt_text(&s.ip))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if let Some(hash) = refresh_hash {
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(text(hash))
        .bind(text(&s.id))
        .bind(s.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(true)
}

fn user_from_row(row: &PgRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        document_id: row.try_get("document_id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        provider: row.try_get("provider")?,
        confirmed: row.try_get("confirmed")?,
        blocked: row.try_get("blocked")?,
        role: Role {
            id: row.try_get("role_id")?,
            name: row.try_get("role_name")?,
            description: row.try_get("role_description")?,
            kind: row.try_get("role_type")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        stamp: row.try_get("security_stamp")?,
        password_changed_at: row.try_get("password_changed_at")?,
    })
}

fn imported_from_row(row: &PgRow) -> Result<ImportedAccount, sqlx::Error> {
    Ok(ImportedAccount {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
        strapi_id: row.try_get("strapi_id")?,
        strapi: StrapiState {
            password_digest: row.try_get("strapi_password_digest")?,
            confirmed: row.try_get("strapi_confirmed")?,
            blocked: row.try_get("strapi_blocked")?,
        },
    })
}

fn role_from_row(row: &PgRow) -> Result<Role, sqlx::Error> {
    Ok(Role {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        kind: row.try_get("type")?,
    })
}

fn session_from_row(row: &PgRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        device_id: row.try_get("device_id")?,
        device_name: row.try_get("device_name")?,
        created_at: row.try_get("created_at")?,
        last_active_at: row.try_get("last_active_at")?,
        idle_expires_at: row.try_get("idle_expires_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revoked_reason: row.try_get("revoked_reason")?,
        user_agent: row.try_get("user_agent")?,
        ip: row.try_get("ip")?,
    })
}

fn ssl_mode(mode: SslMode) -> PgSslMode {
    match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require => PgSslMode::Require,
        SslMode::VerifyCa => PgSslMode::VerifyCa,
        SslMode::VerifyFull => PgSslMode::VerifyFull,
    }
}

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

impl PgStore {
    /// Connects to the database and applies the embedded migrations (under sqlx's advisory lock, so
    /// nodes starting together apply each migration once).
    pub async fn connect(url: &str, settings: &DatabaseSettings) -> StoreResult<Self> {
        Ok(Self::open(url, settings).await?.0)
    }

    /// [`connect`](Self::connect), also returning the migrations it applied.
    pub(super) async fn open(
        url: &str,
        settings: &DatabaseSettings,
    ) -> StoreResult<(Self, Vec<AppliedMigration>)> {
        // The URL's own parameters (sslmode, sslrootcert, options, …) are honoured; the settings only
        // add to them (the configuration refuses an sslmode that contradicts the URL's).
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(e.to_string()))?
            .application_name("keyway");
        if let Some(mode) = settings.ssl_mode {
            options = options.ssl_mode(ssl_mode(mode));
        }
        // Appended after any `options` from the URL, so the setting wins; 0 turns the limit off.
        // Notices stay on the server: sqlx would log each one at INFO, and the only ones Keyway causes
        // are the "already exists, skipping" of the migration bookkeeping at every start.
        options = options.options([
            (
                "statement_timeout",
                settings.statement_timeout.as_millis().to_string(),
            ),
            ("client_min_messages", "warning".to_owned()),
        ]);
        // One direct attempt first, so a server that refuses, rejects the credentials or cannot be
        // resolved is reported with that cause within the bound (see POSTGRES_CONNECT_TIMEOUT).
        let first = tokio::time::timeout(
            super::POSTGRES_CONNECT_TIMEOUT,
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await;
        let first = match first {
            Ok(connected) => connected.map_err(db)?,
            Err(_) => {
                return Err(StoreError::Database(
                    format!(
                        "no answer from the server within {} s (a firewall dropping the \
                         connection, or a wrong host or port)",
                        super::POSTGRES_CONNECT_TIMEOUT.as_secs()
                    )
                    .into(),
                ));
            }
        };
        let _ = sqlx::Connection::close(first).await;
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size.unwrap_or(POSTGRES_POOL_SIZE))
            .connect_with(options)
            .await
            .map_err(db)?;
        let applied = migrate(&pool).await?;
        Ok((Self { pool }, applied))
    }
}

async fn migrate(pool: &PgPool) -> StoreResult<Vec<AppliedMigration>> {
    // On failure this connection may still hold sqlx's session-level migration lock; that is harmless
    // because a failed migration fails `open`, and the pool goes with it.
    let mut conn = pool.acquire().await.map_err(db)?;
    // Migrations are exempt from the statement timeout: building an index on a big table, or waiting
    // for another node's migration lock, may rightly take longer than any request should.
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let before = applied_versions(&mut *conn).await?;
    MIGRATOR
        .run(&mut *conn)
        .await
        .map_err(|e| StoreError::Database(Box::new(e)))?;
    // Back to the configured value (RESET returns to what the connection started with).
    sqlx::query("RESET statement_timeout")
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(newly_applied(&MIGRATOR, &before))
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn role_by_kind(&self, kind: &str) -> StoreResult<Option<Role>> {
        let row = sqlx::query("SELECT id, name, description, type FROM roles WHERE type = $1")
            .bind(text(kind))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(role_from_row).transpose().map_err(db)
    }

    async fn role_by_name_or_kind(&self, name: &str) -> StoreResult<Option<Role>> {
        // `COLLATE "C"` folds ASCII letters only, exactly as SQLite's lower() does; the database's own
        // collation would also fold others (É → é), and which names match would depend on the engine.
        let row = sqlx::query(
            "SELECT id, name, description, type FROM roles \
             WHERE type = $1 OR lower(name COLLATE \"C\") = lower($1 COLLATE \"C\") \
             ORDER BY type = $1 DESC LIMIT 1",
        )
        .bind(text(name))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(role_from_row).transpose().map_err(db)
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let id = insert_user(&self.pool, &user).await.map_err(db)?;
        self.user_by_id(id)
            .await?
            .ok_or_else(|| StoreError::Database("user vanished after insert".into()))
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let row = sqlx::query(concat!(user_select!(), "WHERE u.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user_from_row).transpose().map_err(db)
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(concat!(user_select!(), "WHERE u.username = $1"))
            .bind(text(username))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user_from_row).transpose().map_err(db)
    }

    async fn local_credentials(
        &self,
        email_lowercase: &str,
        username: &str,
    ) -> StoreResult<Option<UserCredentials>> {
        let row = sqlx::query(concat!(
            user_select!(),
            "WHERE u.provider = 'local' AND (u.email = $1 OR u.username = $2) ORDER BY u.id LIMIT 1"
        ))
        .bind(text(email_lowercase))
        .bind(text(username))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(UserCredentials {
            user: user_from_row(&row).map_err(db)?,
            password_hash: row.try_get("password_hash").map_err(db)?,
        }))
    }

    async fn identity_taken(&self, username: &str, email: &str) -> StoreResult<bool> {
        // ASCII-only lower(), as on SQLite (see role_by_name_or_kind).
        let taken: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users WHERE email IN ($1, lower($2 COLLATE \"C\")) \
             OR username IN ($1, $2))",
        )
        .bind(text(email))
        .bind(text(username))
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(taken)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(concat!(user_select!(), "ORDER BY u.id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(user_from_row)
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    async fn user_by_email(&self, email_lowercase: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(concat!(user_select!(), "WHERE u.email = $1"))
            .bind(text(email_lowercase))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user_from_row).transpose().map_err(db)
    }

    async fn set_confirmed(&self, user_id: i64, now: Millis) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("UPDATE users SET confirmed = TRUE, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        record(&mut tx, &Invalidation::User(user_id), now)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn set_password_hash(&self, user_id: i64, hash: &str, now: Millis) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2, password_changed_at = $2, \
             security_stamp = security_stamp + 1 WHERE id = $3",
        )
        .bind(text(hash))
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        record(&mut tx, &Invalidation::User(user_id), now)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn replace_password_hash(
        &self,
        user_id: i64,
        old: &str,
        new: &str,
        now: Millis,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4",
        )
        .bind(text(new))
        .bind(now)
        .bind(user_id)
        .bind(text(old))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_blocked(&self, user_id: i64, blocked: bool, now: Millis) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query(
            "UPDATE users SET blocked = $1, updated_at = $2, security_stamp = security_stamp + 1 \
             WHERE id = $3",
        )
        .bind(blocked)
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        record(&mut tx, &Invalidation::User(user_id), now)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, user_id: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Lock the user first: a session inserted concurrently (its foreign-key check needs a share
        // lock on this row) then waits for us and fails, instead of slipping in between the list below
        // and the delete, and being cascaded away without an invalidation.
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let sessions: Vec<String> =
            sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let now = chrono::Utc::now().timestamp_millis();
        for sid in sessions {
            record(&mut tx, &Invalidation::Session(sid), now)
                .await
                .map_err(db)?;
        }
        record(&mut tx, &Invalidation::User(user_id), now)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_role(&self, role: &NewRole) -> StoreResult<Role> {
        let row = sqlx::query(
            "INSERT INTO roles (name, description, type) VALUES ($1, $2, $3) \
             RETURNING id, name, description, type",
        )
        .bind(text(&role.name))
        .bind(text(&role.description))
        .bind(text(&role.kind))
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        role_from_row(&row).map_err(db)
    }

    async fn list_roles(&self) -> StoreResult<Vec<(Role, i64)>> {
        let rows = sqlx::query(
            "SELECT r.id, r.name, r.description, r.type, \
             (SELECT count(*) FROM users u WHERE u.role_id = r.id) AS users \
             FROM roles r ORDER BY r.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| Ok((role_from_row(r)?, r.try_get::<i64, _>("users")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)
    }

    async fn rename_role(&self, role_id: i64, name: &str, now: Millis) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query("UPDATE roles SET name = $1 WHERE id = $2")
            .bind(text(name))
            .bind(role_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let users: Vec<i64> = sqlx::query_scalar("SELECT id FROM users WHERE role_id = $1")
            .bind(role_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        for id in users {
            record(&mut tx, &Invalidation::User(id), now)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_role(&self, role_id: i64) -> StoreResult<RoleRemoval> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The role's row locked first: an assignment (its foreign-key check takes a share lock on
        // it) waits for this transaction and then fails, instead of landing between count and delete.
        sqlx::query("SELECT id FROM roles WHERE id = $1 FOR UPDATE")
            .bind(role_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role_id = $1")
            .bind(role_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if users > 0 {
            return Ok(RoleRemoval::InUse(users));
        }
        let done = sqlx::query("DELETE FROM roles WHERE id = $1")
            .bind(role_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(if done.rows_affected() == 1 {
            RoleRemoval::Removed
        } else {
            RoleRemoval::NotFound
        })
    }

    async fn set_user_role(&self, user_id: i64, role_id: i64, now: Millis) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query("UPDATE users SET role_id = $1, updated_at = $2 WHERE id = $3")
            .bind(role_id)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 1 {
            record(&mut tx, &Invalidation::User(user_id), now)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_imported_user(&self, u: &ImportedUser) -> StoreResult<()> {
        // Unlike SQLite's AUTOINCREMENT, an identity column does not notice explicit ids: its sequence
        // is moved past this one first, or a later registration would draw it and fail. `users_id_seq`
        // is the name PostgreSQL gives the identity sequence of `users.id` (0001_init.sql). GREATEST
        // never moves it back, so ids already drawn by registrations in flight are never drawn again.
        // setval is not transactional: an insert that then fails leaves a harmless gap.
        sqlx::query("SELECT setval('users_id_seq', GREATEST($1, last_value)) FROM users_id_seq")
            .bind(u.strapi_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO users (id, document_id, username, email, provider, password_hash, \
             confirmed, blocked, role_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(u.strapi_id)
        .bind(text(&u.document_id))
        .bind(text(&u.username))
        .bind(text(&u.email))
        .bind(text(&u.provider))
        .bind(opt_text(&u.password_hash))
        .bind(u.confirmed)
        .bind(u.blocked)
        .bind(u.role_id)
        .bind(u.created_at)
        .bind(u.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "INSERT INTO strapi_users (user_id, strapi_id, password_digest, confirmed, blocked) \
             VALUES ($1, $1, $2, $3, $4)",
        )
        .bind(u.strapi_id)
        .bind(opt_text(&u.strapi.password_digest))
        .bind(u.strapi.confirmed)
        .bind(u.strapi.blocked)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn imported_user(
        &self,
        strapi_id: i64,
        document_id: Option<&str>,
    ) -> StoreResult<Option<ImportedAccount>> {
        // `$2::TEXT`: a NULL document id still needs a type.
        let row = sqlx::query(concat!(
            imported_select!(),
            "WHERE s.strapi_id = $1 OR u.document_id = $2::TEXT \
             ORDER BY s.strapi_id = $1 DESC LIMIT 1"
        ))
        .bind(strapi_id)
        .bind(document_id.map(text))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(imported_from_row).transpose().map_err(db)
    }

    async fn update_imported_user(
        &self,
        user_id: i64,
        u: &ImportedUser,
        now: Millis,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query(
            "UPDATE users SET username = $1, email = $2, provider = $3, password_hash = $4, \
             confirmed = $5, blocked = $6, role_id = $7, updated_at = $8, \
             security_stamp = security_stamp + 1, password_changed_at = \
             CASE WHEN password_hash IS NOT DISTINCT FROM $4 THEN password_changed_at ELSE $10 END \
             WHERE id = $9",
        )
        .bind(text(&u.username))
        .bind(text(&u.email))
        .bind(text(&u.provider))
        .bind(opt_text(&u.password_hash))
        .bind(u.confirmed)
        .bind(u.blocked)
        .bind(u.role_id)
        .bind(u.updated_at)
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "UPDATE strapi_users SET strapi_id = $1, password_digest = $2, confirmed = $3, \
             blocked = $4 WHERE user_id = $5",
        )
        .bind(u.strapi_id)
        .bind(opt_text(&u.strapi.password_digest))
        .bind(u.strapi.confirmed)
        .bind(u.strapi.blocked)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        record(&mut tx, &Invalidation::User(user_id), now)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_session(&self, s: &Session, refresh_hash: Option<&str>) -> StoreResult<()> {
        insert_session(&self.pool, s, refresh_hash, None).await?;
        Ok(())
    }

    async fn create_session_if_current(
        &self,
        s: &Session,
        refresh_hash: Option<&str>,
        stamp: i64,
    ) -> StoreResult<bool> {
        insert_session(&self.pool, s, refresh_hash, Some(stamp)).await
    }

    async fn session(&self, id: &str) -> StoreResult<Option<Session>> {
        let row = sqlx::query(concat!(session_select!(), "WHERE id = $1"))
            .bind(text(id))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(session_from_row).transpose().map_err(db)
    }

    async fn sessions_of_user(&self, user_id: i64) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(concat!(
            session_select!(),
            "WHERE user_id = $1 ORDER BY last_active_at DESC"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(session_from_row)
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    async fn revoke_sessions(
        &self,
        which: Revoke,
        reason: &str,
        now: Millis,
    ) -> StoreResult<Vec<String>> {
        // One static statement per kind, each binding its parameters with their real types.
        let revoke = |sql: &'static str| {
            sqlx::query_scalar::<Postgres, String>(sql)
                .bind(now)
                .bind(text(reason))
        };
        let query = match &which {
            Revoke::Session(id) => revoke(revoke!("id = $3")).bind(text(id)),
            Revoke::AllOfUser(user_id) => revoke(revoke!("user_id = $3")).bind(*user_id),
            Revoke::Device { user_id, device_id } => {
                revoke(revoke!("user_id = $3 AND device_id = $4"))
                    .bind(*user_id)
                    .bind(text(device_id))
            }
            Revoke::AllOfUserExcept { user_id, keep } => {
                revoke(revoke!("user_id = $3 AND id <> $4"))
                    .bind(*user_id)
                    .bind(text(keep))
            }
        };
        let mut tx = self.pool.begin().await.map_err(db)?;
        // `revoked_at IS NULL` is re-checked on each row after waiting for a concurrent writer, so two
        // revocations racing for a session both succeed but only one reports (and records) it.
        let ids = query.fetch_all(&mut *tx).await.map_err(db)?;
        for id in &ids {
            record(&mut tx, &Invalidation::Session(id.clone()), now)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(ids)
    }

    async fn refresh_token(&self, hash: &str) -> StoreResult<Option<RefreshRecord>> {
        let row = sqlx::query(
            "SELECT hash, session_id, created_at, used_at, nonce FROM refresh_tokens WHERE hash = $1",
        )
        .bind(text(hash))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|r| {
            Ok(RefreshRecord {
                hash: r.try_get("hash")?,
                session_id: r.try_get("session_id")?,
                created_at: r.try_get("created_at")?,
                used_at: r.try_get("used_at")?,
                nonce: r.try_get("nonce")?,
            })
        })
        .transpose()
        .map_err(db)
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        nonce: &[u8],
        new_hash: &str,
        now: Millis,
        idle_expires_at: Millis,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The claim is the conditional update itself: a concurrent rotation of the same token blocks on
        // the row lock, then re-evaluates `used_at IS NULL` against the committed row and matches
        // nothing. Reading first and writing after would let both pass.
        let session: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = $1, nonce = $2 \
             WHERE hash = $3 AND used_at IS NULL RETURNING session_id",
        )
        .bind(now)
        .bind(nonce)
        .bind(text(old_hash))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(session) = session else {
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(text(new_hash))
        .bind(&session)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("UPDATE sessions SET last_active_at = $1, idle_expires_at = $2 WHERE id = $3")
            .bind(now)
            .bind(idle_expires_at)
            .bind(&session)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn prune(
        &self,
        sessions_before: Millis,
        invalidations_before: Millis,
    ) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM sessions WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)",
        )
        .bind(sessions_before)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        for sql in [
            "DELETE FROM one_time_codes WHERE expires_at < $1",
            "DELETE FROM sso_states WHERE expires_at < $1",
        ] {
            sqlx::query(sql)
                .bind(sessions_before)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        }
        sqlx::query("DELETE FROM invalidations WHERE at < $1")
            .bind(invalidations_before)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        // Throttle state: windows and failures older than a day count for nothing (the longest
        // window is an hour), trust that ended a day ago is gone.
        for sql in [
            "DELETE FROM rate_windows WHERE started < $1",
            "DELETE FROM throttle_buckets WHERE last_at < $1",
            "DELETE FROM trusted_clients WHERE until < $1",
        ] {
            sqlx::query(sql)
                .bind(invalidations_before)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    fn shared_by_nodes(&self) -> bool {
        true
    }
}
