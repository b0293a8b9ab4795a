//! The embedded SQLite store: one file, WAL journal, foreign keys on. The default, so `keyway serve`
//! needs nothing else installed.

mod audit;

mod invalidations;

mod keys;

mod codes;

mod limits;

mod sso;

use super::{
    AppliedMigration, DatabaseSettings, ImportedAccount, ImportedUser, Invalidation, Millis,
    NewRole, NewUser, RefreshRecord, Revoke, Role, RoleRemoval, SQLITE_POOL_SIZE, Session, Store,
    StoreError, StoreResult, StrapiState, User, UserCredentials, applied_versions, newly_applied,
};
use async_trait::async_trait;
use invalidations::record;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use std::str::FromStr;
use std::time::Duration;

/// Writes with `RETURNING` are read with `fetch_all`, never `fetch_one` or `fetch_optional`: those stop
/// stepping at the first row, the statement never reports that it is done, and SQLite runs its WAL
/// hook — the automatic checkpoint — only when one does. A workload of such writes alone (the
/// benchmark seeder's account creation) never checkpointed and grew the WAL to 24 GB for a million
/// accounts; `wal_stays_bounded_under_returning_writes` below keeps it from coming back.
///
/// Two pools on one file: readers, which WAL lets run beside a writer, and a single writer
/// connection. SQLite allows one writer at a time anyway; with several writing connections the losers
/// sleep in SQLite's busy handler (1, 2, 5, 10… ms), which under load cut refreshes to a fraction
/// of what one connection does and put 200 ms into the p99. One writer connection turns that into an
/// ordinary async queue.
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
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

fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(Box::new(e)),
    }
}

/// Inserts an account; its id.
async fn insert_user<'e>(
    exec: impl sqlx::Executor<'e, Database = Sqlite>,
    user: &NewUser,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO users (document_id, username, email, provider, password_hash, confirmed, \
         blocked, role_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) \
         RETURNING id",
    )
    .bind(&user.document_id)
    .bind(&user.username)
    .bind(&user.email)
    .bind(&user.provider)
    .bind(&user.password_hash)
    .bind(user.confirmed)
    .bind(user.blocked)
    .bind(user.role_id)
    .bind(user.now)
    .fetch_all(exec)
    .await?
    .pop()
    .ok_or(sqlx::Error::RowNotFound)
}

/// Inserts a session and its first refresh token in one transaction; with `stamp`, only while the
/// user exists, is not blocked and has that security stamp. The check is part of the insert, and the
/// one writer connection (SQLite's one writer, for other processes) runs it as one step, so no block
/// or password change can land between check and insert. Returns whether it inserted.
async fn insert_session(
    writer: &SqlitePool,
    s: &Session,
    refresh_hash: Option<&str>,
    stamp: Option<i64>,
) -> StoreResult<bool> {
    // `?13 IS NULL`: no stamp given, no check (the user must still exist: the foreign key).
    const INSERT: &str = "INSERT INTO sessions (id, user_id, device_id, device_name, created_at, \
         last_active_at, idle_expires_at, expires_at, revoked_at, revoked_reason, user_agent, ip) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 WHERE ?13 IS NULL OR EXISTS \
         (SELECT 1 FROM users WHERE id = ?2 AND security_stamp = ?13 AND blocked = 0)";
    let mut tx = writer.begin().await.map_err(db)?;
    let done = sqlx::query(INSERT)
        .bind(&s.id)
        .bind(s.user_id)
        .bind(&s.device_id)
        .bind(&s.device_name)
        .bind(s.created_at)
        .bind(s.last_active_at)
        .bind(s.idle_expires_at)
        .bind(s.expires_at)
        .bind(s.revoked_at)
        .bind(&s.revoked_reason)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .bind(stamp)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some(hash) = refresh_hash {
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?, ?, ?)")
            .bind(hash)
            .bind(&s.id)
            .bind(s.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(true)
}

fn user_from_row(row: &SqliteRow) -> Result<User, sqlx::Error> {
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

fn imported_from_row(row: &SqliteRow) -> Result<ImportedAccount, sqlx::Error> {
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

fn role_from_row(row: &SqliteRow) -> Result<Role, sqlx::Error> {
    Ok(Role {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        kind: row.try_get("type")?,
    })
}

/// The session columns, in a literal so queries stay `&'static str`.
macro_rules! session_select {
    () => {
        "SELECT id, user_id, device_id, device_name, created_at, last_active_at, idle_expires_at, \
         expires_at, revoked_at, revoked_reason, user_agent, ip FROM sessions "
    };
}

/// The rest of a refresh-token rotation batch, after the statement that marks the old token (?3)
/// used at ?1 with nonce ?2: the successor (?4) is inserted only where that statement acted (the
/// random nonce proves it), the session's idle deadline moves to ?5 only if the successor exists, and
/// the transaction commits.
macro_rules! rotation_rest {
    () => {
        "INSERT INTO refresh_tokens (hash, session_id, created_at) \
           SELECT ?4, session_id, ?1 FROM refresh_tokens \
           WHERE hash = ?3 AND used_at = ?1 AND nonce = ?2; \
         UPDATE sessions SET last_active_at = ?1, idle_expires_at = ?5 \
           WHERE id = (SELECT session_id FROM refresh_tokens WHERE hash = ?4); \
         COMMIT; "
    };
}

fn session_from_row(row: &SqliteRow) -> Result<Session, sqlx::Error> {
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

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies the embedded migrations.
    pub async fn connect(url: &str, settings: &DatabaseSettings) -> StoreResult<Self> {
        Ok(Self::open(url, settings).await?.0)
    }

    /// [`connect`](Self::connect), also returning the migrations it applied.
    pub(super) async fn open(
        url: &str,
        settings: &DatabaseSettings,
    ) -> StoreResult<(Self, Vec<AppliedMigration>)> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(e.to_string()))?
            .create_if_missing(settings.create_if_missing)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if !is_in_memory(url) {
            let path = options.get_filename();
            if !settings.create_if_missing && !path.exists() {
                return Err(StoreError::Missing(format!(
                    "no database file at {} (run `keyway migrate` to create one, or point \
                     --database-url / KEYWAY_DATABASE_URL at the existing one)",
                    std::path::absolute(path)
                        .unwrap_or_else(|_| path.to_owned())
                        .display()
                )));
            }
            protect_files(path, settings.allow_readable_file)?;
        }
        // The writer first: it creates the file and the schema before any reader looks.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        let applied = migrate(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.pool_size.unwrap_or(SQLITE_POOL_SIZE))
            .connect_with(options)
            .await
            .map_err(db)?;
        Ok((Self { pool, writer }, applied))
    }
}

/// `sqlite::memory:` and `?mode=memory` URLs: no file to protect.
fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The database file holds the private signing keys: whoever reads it can forge tokens. A new one is
/// created owner-only (0600, whatever the umask) before SQLite opens it, and SQLite gives `-wal` and
/// `-shm` the database file's permissions. An existing file, `-wal` or `-shm` that others may read or
/// write stops start-up with the fix, unless `allow` (the `allow_readable_database` setting).
#[cfg(unix)]
fn protect_files(path: &std::path::Path, allow: bool) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let cannot = |e: std::io::Error| {
        StoreError::Database(format!("cannot create {}: {e}", path.display()).into())
    };
    match created {
        // The mode given to open() is masked by the umask; set it outright.
        Ok(file) => file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(cannot)?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(cannot(e)),
    }
    if allow {
        return Ok(());
    }
    let mut open_to_others = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            open_to_others.push(file.display().to_string());
        }
    }
    if open_to_others.is_empty() {
        return Ok(());
    }
    Err(StoreError::Unprotected(format!(
        "{} can be read by other users of this machine, and the database holds the private \
         signing keys (anyone who reads it can forge tokens). Fix it with: chmod 600 {} \
         (or set allow_readable_database = true, KEYWAY_ALLOW_READABLE_DATABASE=true, to accept it)",
        open_to_others.join(", "),
        open_to_others.join(" ")
    )))
}

#[cfg(not(unix))]
fn protect_files(_: &std::path::Path, _: bool) -> StoreResult<()> {
    Ok(())
}

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

async fn migrate(pool: &SqlitePool) -> StoreResult<Vec<AppliedMigration>> {
    let mut conn = pool.acquire().await.map_err(db)?;
    let before = applied_versions(&mut *conn).await?;
    MIGRATOR
        .run(&mut *conn)
        .await
        .map_err(|e| StoreError::Database(Box::new(e)))?;
    Ok(newly_applied(&MIGRATOR, &before))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn role_by_kind(&self, kind: &str) -> StoreResult<Option<Role>> {
        let row = sqlx::query("SELECT id, name, description, type FROM roles WHERE type = ?")
            .bind(kind)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(role_from_row).transpose().map_err(db)
    }

    async fn role_by_name_or_kind(&self, name: &str) -> StoreResult<Option<Role>> {
        let row = sqlx::query(
            "SELECT id, name, description, type FROM roles \
             WHERE type = ?1 OR lower(name) = lower(?1) ORDER BY type = ?1 DESC LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(role_from_row).transpose().map_err(db)
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let id = insert_user(&self.writer, &user).await.map_err(db)?;
        self.user_by_id(id)
            .await?
            .ok_or_else(|| StoreError::Database("user vanished after insert".into()))
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let row = sqlx::query(concat!(user_select!(), "WHERE u.id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user_from_row).transpose().map_err(db)
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(concat!(user_select!(), "WHERE u.username = ?"))
            .bind(username)
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
            "WHERE u.provider = 'local' AND (u.email = ? OR u.username = ?) ORDER BY u.id LIMIT 1"
        ))
        .bind(email_lowercase)
        .bind(username)
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
        let taken: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users WHERE email IN (?1, lower(?2)) \
             OR username IN (?1, ?2))",
        )
        .bind(email)
        .bind(username)
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
        let row = sqlx::query(concat!(user_select!(), "WHERE u.email = ?"))
            .bind(email_lowercase)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user_from_row).transpose().map_err(db)
    }

    async fn set_confirmed(&self, user_id: i64, now: Millis) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        sqlx::query("UPDATE users SET confirmed = 1, updated_at = ? WHERE id = ?")
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
        let mut tx = self.writer.begin().await.map_err(db)?;
        sqlx::query(
            "UPDATE users SET password_hash = ?1, updated_at = ?2, password_changed_at = ?2, \
             security_stamp = security_stamp + 1 WHERE id = ?3",
        )
        .bind(hash)
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
            "UPDATE users SET password_hash = ?1, updated_at = ?2 WHERE id = ?3 AND password_hash = ?4",
        )
        .bind(new)
        .bind(now)
        .bind(user_id)
        .bind(old)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_blocked(&self, user_id: i64, blocked: bool, now: Millis) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        let done = sqlx::query(
            "UPDATE users SET blocked = ?, updated_at = ?, security_stamp = security_stamp + 1 \
             WHERE id = ?",
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
        let mut tx = self.writer.begin().await.map_err(db)?;
        let sessions: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = ?")
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
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
            "INSERT INTO roles (name, description, type) VALUES (?, ?, ?) \
             RETURNING id, name, description, type",
        )
        .bind(&role.name)
        .bind(&role.description)
        .bind(&role.kind)
        .fetch_all(&self.writer)
        .await
        .map_err(db)?
        .pop()
        .ok_or_else(|| StoreError::Database("role vanished after insert".into()))?;
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
        let mut tx = self.writer.begin().await.map_err(db)?;
        let done = sqlx::query("UPDATE roles SET name = ? WHERE id = ?")
            .bind(name)
            .bind(role_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let users: Vec<i64> = sqlx::query_scalar("SELECT id FROM users WHERE role_id = ?")
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
        // One writer: nothing assigns the role between the count and the delete.
        let mut tx = self.writer.begin().await.map_err(db)?;
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role_id = ?")
            .bind(role_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if users > 0 {
            return Ok(RoleRemoval::InUse(users));
        }
        let done = sqlx::query("DELETE FROM roles WHERE id = ?")
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
        let mut tx = self.writer.begin().await.map_err(db)?;
        let done = sqlx::query("UPDATE users SET role_id = ?, updated_at = ? WHERE id = ?")
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
        let mut tx = self.pool.begin().await.map_err(db)?;
        // An explicit id in an AUTOINCREMENT table moves sqlite_sequence up to it, so ids handed out
        // later come after every imported one without anything else to do.
        sqlx::query(
            "INSERT INTO users (id, document_id, username, email, provider, password_hash, \
             confirmed, blocked, role_id, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(u.strapi_id)
        .bind(&u.document_id)
        .bind(&u.username)
        .bind(&u.email)
        .bind(&u.provider)
        .bind(&u.password_hash)
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
             VALUES (?1, ?1, ?2, ?3, ?4)",
        )
        .bind(u.strapi_id)
        .bind(&u.strapi.password_digest)
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
        let row = sqlx::query(concat!(
            imported_select!(),
            "WHERE s.strapi_id = ?1 OR u.document_id = ?2 ORDER BY s.strapi_id = ?1 DESC LIMIT 1"
        ))
        .bind(strapi_id)
        .bind(document_id)
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
            "UPDATE users SET username = ?1, email = ?2, provider = ?3, password_hash = ?4, \
             confirmed = ?5, blocked = ?6, role_id = ?7, updated_at = ?8, \
             security_stamp = security_stamp + 1, password_changed_at = \
             CASE WHEN password_hash IS ?4 THEN password_changed_at ELSE ?10 END WHERE id = ?9",
        )
        .bind(&u.username)
        .bind(&u.email)
        .bind(&u.provider)
        .bind(&u.password_hash)
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
            "UPDATE strapi_users SET strapi_id = ?, password_digest = ?, confirmed = ?, \
             blocked = ? WHERE user_id = ?",
        )
        .bind(u.strapi_id)
        .bind(&u.strapi.password_digest)
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
        insert_session(&self.writer, s, refresh_hash, None).await?;
        Ok(())
    }

    async fn create_session_if_current(
        &self,
        s: &Session,
        refresh_hash: Option<&str>,
        stamp: i64,
    ) -> StoreResult<bool> {
        insert_session(&self.writer, s, refresh_hash, Some(stamp)).await
    }

    async fn session(&self, id: &str) -> StoreResult<Option<Session>> {
        let row = sqlx::query(concat!(session_select!(), "WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(session_from_row).transpose().map_err(db)
    }

    async fn sessions_of_user(&self, user_id: i64) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(concat!(
            session_select!(),
            "WHERE user_id = ? ORDER BY last_active_at DESC"
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
        const SET: &str = "UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2 \
                           WHERE revoked_at IS NULL AND ";
        let (filter, a, b): (&str, String, String) = match &which {
            Revoke::Session(id) => ("id = ?3", id.clone(), String::new()),
            Revoke::AllOfUser(user) => ("user_id = ?3", user.to_string(), String::new()),
            Revoke::Device { user_id, device_id } => (
                "user_id = ?3 AND device_id = ?4",
                user_id.to_string(),
                device_id.clone(),
            ),
            Revoke::AllOfUserExcept { user_id, keep } => (
                "user_id = ?3 AND id <> ?4",
                user_id.to_string(),
                keep.clone(),
            ),
        };
        let mut tx = self.writer.begin().await.map_err(db)?;
        let ids: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("{SET}{filter} RETURNING id")))
                .bind(now)
                .bind(reason)
                .bind(a)
                .bind(b)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
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
            "SELECT hash, session_id, created_at, used_at, nonce FROM refresh_tokens WHERE hash = ?",
        )
        .bind(hash)
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

    async fn refresh_token_and_session(
        &self,
        hash: &str,
    ) -> StoreResult<Option<(RefreshRecord, Session)>> {
        // One round trip to a reader thread instead of two: a refresh is made of few of them.
        let row = sqlx::query(
            "SELECT r.hash AS r_hash, r.created_at AS r_created_at, r.used_at AS r_used_at, \
             r.nonce AS r_nonce, s.id, s.user_id, s.device_id, s.device_name, s.created_at, \
             s.last_active_at, s.idle_expires_at, s.expires_at, s.revoked_at, s.revoked_reason, \
             s.user_agent, s.ip FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
             WHERE r.hash = ?",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|r| {
            let session = session_from_row(&r)?;
            let record = RefreshRecord {
                hash: r.try_get("r_hash")?,
                session_id: session.id.clone(),
                created_at: r.try_get("r_created_at")?,
                used_at: r.try_get("r_used_at")?,
                nonce: r.try_get("r_nonce")?,
            };
            Ok((record, session))
        })
        .transpose()
        .map_err(db)
    }

    async fn rotate_fresh_refresh(
        &self,
        old_hash: &str,
        nonce: &[u8],
        new_hash: &str,
        now: Millis,
        idle_expires_at: Millis,
    ) -> StoreResult<Option<Session>> {
        // As rotate_refresh, with the session's liveness in the first statement's condition and the
        // session read back in the same batch: one round trip for the whole of a normal refresh. The
        // liveness check is a correlated EXISTS on the session's key: an `IN (SELECT … FROM sessions)`
        // scanned every session on each refresh.
        let mut conn = self.writer.acquire().await.map_err(db)?;
        let done = sqlx::query(concat!(
            "BEGIN IMMEDIATE; \
             UPDATE refresh_tokens SET used_at = ?1, nonce = ?2 WHERE hash = ?3 AND used_at IS NULL \
               AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id \
                 AND s.revoked_at IS NULL AND s.expires_at > ?1 AND s.idle_expires_at > ?1); ",
            rotation_rest!(),
            session_select!(),
            "WHERE id = (SELECT session_id FROM refresh_tokens WHERE hash = ?4 AND created_at = ?1);"
        ))
        .bind(now)
        .bind(nonce)
        .bind(old_hash)
        .bind(new_hash)
        .bind(idle_expires_at)
        .fetch_optional(&mut *conn)
        .await;
        match done {
            Ok(row) => row.as_ref().map(session_from_row).transpose().map_err(db),
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(db(e))
            }
        }
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        nonce: &[u8],
        new_hash: &str,
        now: Millis,
        idle_expires_at: Millis,
    ) -> StoreResult<bool> {
        // One round trip to the connection's thread instead of five (begin, three statements,
        // commit): under load the hops, not SQLite, were the cost of a refresh. Each step only acts
        // if the one before did: the successor is inserted only where this call marked the old token
        // (its random nonce is the proof), and the session moves only if the successor exists.
        let mut conn = self.writer.acquire().await.map_err(db)?;
        let done: Result<i64, _> = sqlx::query_scalar(concat!(
            "BEGIN IMMEDIATE; \
             UPDATE refresh_tokens SET used_at = ?1, nonce = ?2 WHERE hash = ?3 AND used_at IS NULL; ",
            rotation_rest!(),
            "SELECT count(*) FROM refresh_tokens WHERE hash = ?4 AND created_at = ?1;"
        ))
        .bind(now)
        .bind(nonce)
        .bind(old_hash)
        .bind(new_hash)
        .bind(idle_expires_at)
        .fetch_one(&mut *conn)
        .await;
        match done {
            // The successor exists only if this call made it (its hash is fresh randomness).
            Ok(found) => Ok(found == 1),
            Err(e) => {
                // Whatever failed, the connection must not stay inside the transaction.
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(db(e))
            }
        }
    }

    async fn prune(
        &self,
        sessions_before: Millis,
        invalidations_before: Millis,
    ) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM sessions WHERE expires_at < ?1 OR (revoked_at IS NOT NULL AND revoked_at < ?1)",
        )
        .bind(sessions_before)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        for sql in [
            "DELETE FROM one_time_codes WHERE expires_at < ?",
            "DELETE FROM sso_states WHERE expires_at < ?",
        ] {
            sqlx::query(sql)
                .bind(sessions_before)
                .execute(&self.writer)
                .await
                .map_err(db)?;
        }
        sqlx::query("DELETE FROM invalidations WHERE at < ?")
            .bind(invalidations_before)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        // Throttle state: windows and failures older than a day count for nothing (the longest
        // window is an hour), trust that ended a day ago is gone.
        for sql in [
            "DELETE FROM rate_windows WHERE started < ?1",
            "DELETE FROM throttle_buckets WHERE last_at < ?1",
            "DELETE FROM trusted_clients WHERE until < ?1",
        ] {
            sqlx::query(sql)
                .bind(invalidations_before)
                .execute(&self.writer)
                .await
                .map_err(db)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wal_stays_bounded_under_returning_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let store = SqliteStore::connect(
            &format!("sqlite://{}", path.display()),
            &DatabaseSettings::default(),
        )
        .await
        .unwrap();
        // Each account writes about five pages (the row and three unique indexes): 3,000 of them
        // are some 60 MB of WAL when nothing checkpoints, against SQLite's automatic checkpoint
        // every 1,000 pages (4 MB).
        for n in 0..3_000 {
            store
                .create_user(NewUser {
                    document_id: format!("doc{n:020}"),
                    username: format!("user_{n}"),
                    email: format!("user_{n}@example.com"),
                    provider: "local".into(),
                    password_hash: None,
                    confirmed: true,
                    blocked: false,
                    role_id: 1,
                    now: 0,
                })
                .await
                .unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
            .unwrap()
            .len();
        assert!(wal < 16 * 1024 * 1024, "WAL grew to {wal} bytes");
    }
}
