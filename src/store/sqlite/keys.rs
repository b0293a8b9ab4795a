//! Signing keys on SQLite.

use super::{SqliteStore, db, record};
use crate::store::{Invalidation, KeyStore, Millis, StoreResult, StoredKey};
use async_trait::async_trait;

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        sqlx::query_as(
            "SELECT kid, alg, private_der, public_raw, created_at, retired_at FROM signing_keys \
             ORDER BY created_at DESC, rowid DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, public_raw, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_der)
        .bind(&key.public_raw)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        record(&mut tx, &Invalidation::Keys, key.created_at)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn retire_signing_keys(&self, now: Millis) -> StoreResult<u64> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        let retired =
            sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL")
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
        if retired > 0 {
            record(&mut tx, &Invalidation::Keys, now)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(retired)
    }
}
