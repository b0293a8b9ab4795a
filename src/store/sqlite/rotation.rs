//! The steps of a session's life that SQLite runs its own way: opening a session under a security
//! stamp as one statement, and a refresh-token rotation as one batch on the writer connection.

use super::SqliteStore;
use super::store::Run;
use crate::store::Rotation;
use crate::store::sessions::session_select;
use crate::store::{Session, StoreResult, db};
use sqlx::sqlite::SqliteRow;

/// The rest of a refresh-token rotation batch, after the statement that marks the old token ($3)
/// used at $1 with nonce $2: the successor ($4) is inserted only where that statement acted (the
/// random nonce proves it), the session's idle deadline moves to $5 only if the successor exists, and
/// the transaction commits.
macro_rules! rotation_rest {
    () => {
        "INSERT INTO refresh_tokens (hash, session_id, created_at) \
           SELECT $4, session_id, $1 FROM refresh_tokens \
           WHERE hash = $3 AND used_at = $1 AND nonce = $2; \
         UPDATE sessions SET last_active_at = $1, idle_expires_at = $5 \
           WHERE id = (SELECT session_id FROM refresh_tokens WHERE hash = $4); \
         COMMIT; "
    };
}

/// Inserts a session and its first refresh token in one transaction; with `stamp`, only while the
/// user exists, is not blocked and has that security stamp. The check is part of the insert, and the
/// one writer connection (SQLite's one writer, for other processes) runs it as one step, so no block
/// or password change can land between check and insert. Returns whether it inserted.
pub(super) async fn insert_session(
    store: &SqliteStore,
    s: &Session,
    refresh_hash: Option<&str>,
    stamp: Option<i64>,
) -> StoreResult<bool> {
    // `$13 IS NULL`: no stamp given, no check (the user must still exist: the foreign key).
    const INSERT: &str = "INSERT INTO sessions (id, user_id, device_id, device_name, created_at, \
         last_active_at, idle_expires_at, expires_at, revoked_at, revoked_reason, user_agent, ip) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 WHERE $13 IS NULL OR EXISTS \
         (SELECT 1 FROM users WHERE id = $2 AND security_stamp = $13 AND blocked = 0)";
    let mut tx = store.writer().begin().await.map_err(db)?;
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
        .run(&mut *tx)
        .await?;
    if done == 0 {
        return Ok(false);
    }
    if let Some(hash) = refresh_hash {
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(hash)
        .bind(&s.id)
        .bind(s.created_at)
        .run(&mut *tx)
        .await?;
    }
    tx.commit().await.map_err(db)?;
    Ok(true)
}

/// [`SessionStore::rotate_fresh_refresh`](crate::store::SessionStore::rotate_fresh_refresh).
pub(super) async fn rotate_fresh(
    store: &SqliteStore,
    rotation: &Rotation<'_>,
) -> StoreResult<Option<Session>> {
    // As rotate, with the session's liveness in the first statement's condition and the session read
    // back in the same batch: one round trip for the whole of a normal refresh. The liveness check is
    // a correlated EXISTS on the session's key: an `IN (SELECT … FROM sessions)` scanned every
    // session on each refresh.
    const BATCH: &str = concat!(
        "BEGIN IMMEDIATE; \
         UPDATE refresh_tokens SET used_at = $1, nonce = $2 WHERE hash = $3 AND used_at IS NULL \
           AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id \
             AND s.revoked_at IS NULL AND s.expires_at > $1 AND s.idle_expires_at > $1); ",
        rotation_rest!(),
        session_select!(),
        "WHERE id = (SELECT session_id FROM refresh_tokens WHERE hash = $4 AND created_at = $1);"
    );
    run_batch(store, BATCH, rotation).await
}

/// [`SessionStore::rotate_refresh`](crate::store::SessionStore::rotate_refresh).
pub(super) async fn rotate(store: &SqliteStore, rotation: &Rotation<'_>) -> StoreResult<bool> {
    // One round trip to the connection's thread instead of five (begin, three statements, commit):
    // under load the hops, not SQLite, were the cost of a refresh. Each step only acts if the one
    // before did: the successor is inserted only where this call marked the old token (its random
    // nonce is the proof), and the session moves only if the successor exists.
    const BATCH: &str = concat!(
        "BEGIN IMMEDIATE; \
         UPDATE refresh_tokens SET used_at = $1, nonce = $2 WHERE hash = $3 AND used_at IS NULL; ",
        rotation_rest!(),
        "SELECT count(*) FROM refresh_tokens WHERE hash = $4 AND created_at = $1;"
    );
    let found: Option<(i64,)> = run_batch(store, BATCH, rotation).await?;
    // The successor exists only if this call made it (its hash is fresh randomness).
    Ok(found == Some((1,)))
}

/// Runs a rotation batch (`$1` now, `$2` the nonce, `$3` the old hash, `$4` the new one, `$5` the
/// idle deadline) on the writer connection; its last statement's row.
async fn run_batch<O>(
    store: &SqliteStore,
    batch: &'static str,
    r: &Rotation<'_>,
) -> StoreResult<Option<O>>
where
    O: for<'row> sqlx::FromRow<'row, SqliteRow> + Send + Unpin,
{
    let mut conn = store.writer().acquire().await.map_err(db)?;
    let done = sqlx::query_as(batch)
        .bind(r.now)
        .bind(r.nonce)
        .bind(r.old_hash)
        .bind(r.new_hash)
        .bind(r.idle_expires_at)
        .fetch_optional(&mut *conn)
        .await;
    if done.is_err() {
        // Whatever failed, the connection must not stay inside the transaction.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    done.map_err(db)
}
