//! One-time codes, on both engines (this file is compiled once per engine: see `store/mod.rs`).
//! Issuing replaces the user's unused codes atomically (SQLite's one writer, a lock on the user's
//! row on PostgreSQL); the conditional update is the claim on use.

use super::store::Run;
use super::{Db, Engine, lock, text};
use crate::store::{Code, CodeStore, Millis, NewCode, RowLock, StoreResult, db};
use async_trait::async_trait;

/// What makes a code usable, the one rule for using it and for looking at its owner: this hash ($1)
/// and purpose ($2), not used, not expired at $3. A macro so that the statements stay `&'static str`.
macro_rules! usable_code {
    () => {
        "hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3"
    };
}

/// `sql`, a statement on the [`usable_code!`] codes returning their user, with its parameters bound.
fn usable<'q>(
    sql: &'static str,
    code: Code<'q>,
    now: Millis,
) -> sqlx::query::QueryScalar<'q, Db, i64, <Db as sqlx::Database>::Arguments> {
    sqlx::query_scalar(sql)
        .bind(text(code.hash))
        .bind(code.purpose.as_str())
        .bind(now)
}

#[async_trait]
impl CodeStore for Engine {
    async fn create_code(&self, new: &NewCode<'_>) -> StoreResult<()> {
        let NewCode {
            code,
            user_id,
            created_at,
            expires_at,
        } = *new;
        let mut tx = self.writer().begin().await.map_err(db)?;
        // Serializes code issuing per user, as SQLite's single writer does: otherwise two concurrent
        // requests both delete the (same) old codes, both insert, and two codes stay usable.
        lock(&mut tx, RowLock::UserForCodes, user_id).await?;
        sqlx::query(
            "DELETE FROM one_time_codes WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(code.purpose.as_str())
        .run(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO one_time_codes (hash, user_id, purpose, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(text(code.hash))
        .bind(user_id)
        .bind(code.purpose.as_str())
        .bind(created_at)
        .bind(expires_at)
        .run(&mut *tx)
        .await?;
        tx.commit().await.map_err(db)
    }

    async fn consume_code(&self, code: Code<'_>, now: Millis) -> StoreResult<Option<i64>> {
        // As in rotate_refresh, the conditional update is the claim: of two concurrent uses, the second
        // re-checks `used_at IS NULL` after the first commits and gets no row.
        usable(
            concat!(
                "UPDATE one_time_codes SET used_at = $3 WHERE ",
                usable_code!(),
                " RETURNING user_id"
            ),
            code,
            now,
        )
        .fetch_all(self.writer())
        .await
        .map(|mut rows| rows.pop())
        .map_err(db)
    }

    async fn code_owner(&self, code: Code<'_>, now: Millis) -> StoreResult<Option<i64>> {
        usable(
            concat!("SELECT user_id FROM one_time_codes WHERE ", usable_code!()),
            code,
            now,
        )
        .fetch_optional(self.reader())
        .await
        .map_err(db)
    }
}
