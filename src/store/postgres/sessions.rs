//! Sessions and refresh tokens on PostgreSQL: conditional updates are the claims, and a share
//! lock on the user's row orders a new session against a block or password change.

use super::{PgStore, db, opt_text, record, text};
use crate::store::{
    Invalidation, Millis, RefreshRecord, Revoke, Session, SessionStore, StoreResult,
};
use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::postgres::PgPool;

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

#[async_trait]
impl SessionStore for PgStore {
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
        let row: Option<Session> = sqlx::query_as(concat!(session_select!(), "WHERE id = $1"))
            .bind(text(id))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row)
    }

    async fn sessions_of_user(&self, user_id: i64) -> StoreResult<Vec<Session>> {
        let rows: Vec<Session> = sqlx::query_as(concat!(
            session_select!(),
            "WHERE user_id = $1 ORDER BY last_active_at DESC"
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
        sqlx::query_as(
            "SELECT hash, session_id, created_at, used_at, nonce FROM refresh_tokens WHERE hash = $1",
        )
        .bind(text(hash))
        .fetch_optional(&self.pool)
        .await
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
