//! The steps of a session's life that PostgreSQL runs its own way: conditional updates are the
//! claims, and a share lock on the user's row orders a new session against a block or password
//! change.

use super::store::Run;
use super::{PgStore, opt_text, text};
use crate::store::Rotation;
use crate::store::{Millis, Session, StoreResult, db};

/// Inserts a session and its first refresh token in one transaction; with `stamp`, only while the
/// user exists, is not blocked and has that security stamp. The check takes a share lock on the
/// user's row, held to the commit: a block or password change (an `UPDATE` of that row) either
/// commits first, and then the check, re-reading the row after waiting, fails; or waits for this
/// session to commit, and then the revocation that follows it sees the session and ends it.
/// Returns whether it inserted.
pub(super) async fn insert_session(
    store: &PgStore,
    s: &Session,
    refresh_hash: Option<&str>,
    stamp: Option<i64>,
) -> StoreResult<bool> {
    let mut tx = store.writer().begin().await.map_err(db)?;
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
    .run(&mut *tx)
    .await?;
    if let Some(hash) = refresh_hash {
        insert_refresh(&mut tx, hash, &s.id, s.created_at).await?;
    }
    tx.commit().await.map_err(db)?;
    Ok(true)
}

/// No one-statement shortcut here: the caller takes the careful path, [`rotate`] after a read.
pub(super) async fn rotate_fresh(_: &PgStore, _: &Rotation<'_>) -> StoreResult<Option<Session>> {
    Ok(None)
}

/// [`SessionStore::rotate_refresh`](crate::store::SessionStore::rotate_refresh).
pub(super) async fn rotate(store: &PgStore, r: &Rotation<'_>) -> StoreResult<bool> {
    let mut tx = store.writer().begin().await.map_err(db)?;
    // The claim is the conditional update itself: a concurrent rotation of the same token blocks on
    // the row lock, then re-evaluates `used_at IS NULL` against the committed row and matches
    // nothing. Reading first and writing after would let both pass.
    let session: Option<String> = sqlx::query_scalar(
        "UPDATE refresh_tokens SET used_at = $1, nonce = $2 \
         WHERE hash = $3 AND used_at IS NULL RETURNING session_id",
    )
    .bind(r.now)
    .bind(r.nonce)
    .bind(text(r.old_hash))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let Some(session) = session else {
        return Ok(false);
    };
    insert_refresh(&mut tx, r.new_hash, &session, r.now).await?;
    sqlx::query("UPDATE sessions SET last_active_at = $1, idle_expires_at = $2 WHERE id = $3")
        .bind(r.now)
        .bind(r.idle_expires_at)
        .bind(&session)
        .run(&mut *tx)
        .await?;
    tx.commit().await.map_err(db)?;
    Ok(true)
}

/// Records refresh token `hash` of session `session_id`.
async fn insert_refresh(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    hash: &str,
    session_id: &str,
    at: Millis,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)")
        .bind(text(hash))
        .bind(text(session_id))
        .bind(at)
        .run(&mut **tx)
        .await?;
    Ok(())
}
