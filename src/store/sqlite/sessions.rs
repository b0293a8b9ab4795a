//! Sessions and refresh tokens on SQLite: a rotation is one batch on the writer connection.

use super::{SqliteStore, db, record};
use crate::store::{
    Invalidation, Millis, RefreshRecord, Revoke, Session, SessionStore, StoreResult,
};
use async_trait::async_trait;
use sqlx::sqlite::SqlitePool;

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

#[async_trait]
impl SessionStore for SqliteStore {
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
        let row: Option<Session> = sqlx::query_as(concat!(session_select!(), "WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row)
    }

    async fn sessions_of_user(&self, user_id: i64) -> StoreResult<Vec<Session>> {
        let rows: Vec<Session> = sqlx::query_as(concat!(
            session_select!(),
            "WHERE user_id = ? ORDER BY last_active_at DESC"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows)
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
        sqlx::query_as(
            "SELECT hash, session_id, created_at, used_at, nonce FROM refresh_tokens WHERE hash = ?",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)
    }

    async fn refresh_token_and_session(
        &self,
        hash: &str,
    ) -> StoreResult<Option<(RefreshRecord, Session)>> {
        // One round trip to a reader thread instead of two: a refresh is made of few of them.
        let row: Option<RefreshAndSession> = sqlx::query_as(
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
        Ok(row.map(RefreshAndSession::split))
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
        let done: Result<Option<Session>, _> = sqlx::query_as(concat!(
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
            Ok(session) => Ok(session),
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

/// A refresh token joined with its session, the token's columns prefixed `r_`.
#[derive(sqlx::FromRow)]
struct RefreshAndSession {
    r_hash: String,
    r_created_at: Millis,
    r_used_at: Option<Millis>,
    r_nonce: Option<Vec<u8>>,
    #[sqlx(flatten)]
    session: Session,
}

impl RefreshAndSession {
    fn split(self) -> (RefreshRecord, Session) {
        let record = RefreshRecord {
            hash: self.r_hash,
            session_id: self.session.id.clone(),
            created_at: self.r_created_at,
            used_at: self.r_used_at,
            nonce: self.r_nonce,
        };
        (record, self.session)
    }
}
