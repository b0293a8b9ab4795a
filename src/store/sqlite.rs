//! The embedded SQLite store: one file, WAL journal, foreign keys on. The default, so `keyway serve`
//! needs nothing else installed.

use super::{
    Millis, NewUser, Role, Session, Store, StoreError, StoreResult, StoredKey, User,
    UserCredentials,
};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
}

/// The user columns joined with their role, in the order `user_from_row` reads them.
macro_rules! user_select {
    () => {
        "SELECT u.id, u.document_id, u.username, u.email, u.provider, u.confirmed, u.blocked, \
         u.created_at, u.updated_at, u.password_hash, \
         r.id AS role_id, r.name AS role_name, r.description AS role_description, r.type AS role_type \
         FROM users u JOIN roles r ON r.id = u.role_id "
    };
}

fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(Box::new(e)),
    }
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

fn session_from_row(row: &SqliteRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        user_agent: row.try_get("user_agent")?,
        ip: row.try_get("ip")?,
    })
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies the embedded migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(db)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        Ok(Self { pool })
    }
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
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (document_id, username, email, provider, password_hash, confirmed, \
             blocked, role_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
        .bind(user.now)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
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

    async fn set_password_hash(&self, user_id: i64, hash: &str, now: Millis) -> StoreResult<()> {
        sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
            .bind(hash)
            .bind(now)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn set_blocked(&self, user_id: i64, blocked: bool, now: Millis) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE users SET blocked = ?, updated_at = ? WHERE id = ?")
            .bind(blocked)
            .bind(now)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, user_id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_session(&self, s: &Session) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at, user_agent, ip) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(s.user_id)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.revoked_at)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn session(&self, id: &str) -> StoreResult<Option<Session>> {
        let row = sqlx::query(
            "SELECT id, user_id, created_at, expires_at, revoked_at, user_agent, ip \
             FROM sessions WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(session_from_row).transpose().map_err(db)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_der, public_raw, created_at FROM signing_keys \
             WHERE retired_at IS NULL ORDER BY created_at DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(StoredKey {
                    kid: r.try_get("kid")?,
                    alg: r.try_get("alg")?,
                    private_der: r.try_get("private_der")?,
                    public_raw: r.try_get("public_raw")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, public_raw, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_der)
        .bind(&key.public_raw)
        .bind(key.created_at)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }
}
