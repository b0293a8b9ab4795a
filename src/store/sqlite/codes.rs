//! One-time codes on SQLite: the one writer makes replacing a user's codes atomic.

use super::{SqliteStore, db};
use crate::store::{CodePurpose, CodeStore, Millis, StoreResult};
use async_trait::async_trait;

#[async_trait]
impl CodeStore for SqliteStore {
    async fn create_code(
        &self,
        hash: &str,
        user_id: i64,
        purpose: CodePurpose,
        now: Millis,
        expires_at: Millis,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        sqlx::query(
            "DELETE FROM one_time_codes WHERE user_id = ? AND purpose = ? AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "INSERT INTO one_time_codes (hash, user_id, purpose, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(hash)
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn consume_code(
        &self,
        hash: &str,
        purpose: CodePurpose,
        now: Millis,
    ) -> StoreResult<Option<i64>> {
        sqlx::query_scalar(
            "UPDATE one_time_codes SET used_at = ?1 \
             WHERE hash = ?2 AND purpose = ?3 AND used_at IS NULL AND expires_at > ?1 \
             RETURNING user_id",
        )
        .bind(now)
        .bind(hash)
        .bind(purpose.as_str())
        .fetch_all(&self.writer)
        .await
        .map(|mut rows| rows.pop())
        .map_err(db)
    }

    async fn code_owner(
        &self,
        hash: &str,
        purpose: CodePurpose,
        now: Millis,
    ) -> StoreResult<Option<i64>> {
        sqlx::query_scalar(
            "SELECT user_id FROM one_time_codes \
             WHERE hash = ?2 AND purpose = ?3 AND used_at IS NULL AND expires_at > ?1",
        )
        .bind(now)
        .bind(hash)
        .bind(purpose.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)
    }
}
