//! Sessions and refresh tokens, on both engines (this file is compiled once per engine: see
//! `store/mod.rs`). Opening a session under a security stamp and rotating a refresh token are where
//! the engines part ways — one batch on SQLite's writer, row locks and conditional updates on
//! PostgreSQL — so those steps are each engine's own, in its `rotation.rs`.

use super::{Db, Engine, record, rotation, text};
use crate::store::sessions::session_select;
use crate::store::{
    Invalidation, Millis, RefreshRecord, Revoke, Rotation, Session, SessionStore, StoreResult, db,
};
use async_trait::async_trait;

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
impl SessionStore for Engine {
    async fn create_session(&self, s: &Session, refresh_hash: Option<&str>) -> StoreResult<()> {
        rotation::insert_session(self, s, refresh_hash, None).await?;
        Ok(())
    }

    async fn create_session_if_current(
        &self,
        s: &Session,
        refresh_hash: Option<&str>,
        stamp: i64,
    ) -> StoreResult<bool> {
        rotation::insert_session(self, s, refresh_hash, Some(stamp)).await
    }

    async fn session(&self, id: &str) -> StoreResult<Option<Session>> {
        sqlx::query_as(concat!(session_select!(), "WHERE id = $1"))
            .bind(text(id))
            .fetch_optional(self.reader())
            .await
            .map_err(db)
    }

    async fn sessions_of_user(&self, user_id: i64) -> StoreResult<Vec<Session>> {
        sqlx::query_as(concat!(
            session_select!(),
            "WHERE user_id = $1 ORDER BY last_active_at DESC"
        ))
        .bind(user_id)
        .fetch_all(self.reader())
        .await
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
            sqlx::query_scalar::<Db, String>(sql)
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
        let mut tx = self.writer().begin().await.map_err(db)?;
        // On PostgreSQL `revoked_at IS NULL` is re-checked on each row after waiting for a concurrent
        // writer, so two revocations racing for a session both succeed but only one reports (and
        // records) it.
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
        .fetch_optional(self.reader())
        .await
        .map_err(db)
    }

    async fn refresh_token_and_session(
        &self,
        hash: &str,
    ) -> StoreResult<Option<(RefreshRecord, Session)>> {
        // One round trip instead of two: a refresh is made of few of them.
        let row: Option<RefreshAndSession> = sqlx::query_as(
            "SELECT r.hash AS r_hash, r.created_at AS r_created_at, r.used_at AS r_used_at, \
             r.nonce AS r_nonce, s.id, s.user_id, s.device_id, s.device_name, s.created_at, \
             s.last_active_at, s.idle_expires_at, s.expires_at, s.revoked_at, s.revoked_reason, \
             s.user_agent, s.ip FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
             WHERE r.hash = $1",
        )
        .bind(text(hash))
        .fetch_optional(self.reader())
        .await
        .map_err(db)?;
        Ok(row.map(RefreshAndSession::split))
    }

    async fn rotate_fresh_refresh(&self, exchange: &Rotation<'_>) -> StoreResult<Option<Session>> {
        rotation::rotate_fresh(self, exchange).await
    }

    async fn rotate_refresh(&self, exchange: &Rotation<'_>) -> StoreResult<bool> {
        rotation::rotate(self, exchange).await
    }
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
