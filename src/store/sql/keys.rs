//! Signing keys, on both engines (this file is compiled once per engine: see `store/mod.rs`).

use super::store::Run;
use super::{Engine, SIGNING_KEYS, record, text};
use crate::store::{Invalidation, KeyStore, Millis, StoreResult, StoredKey, db};
use async_trait::async_trait;

#[async_trait]
impl KeyStore for Engine {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        sqlx::query_as(SIGNING_KEYS)
            .fetch_all(self.reader())
            .await
            .map_err(db)
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, public_raw, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(text(&key.kid))
        .bind(text(&key.alg))
        .bind(&key.private_der)
        .bind(&key.public_raw)
        .bind(key.created_at)
        .run(&mut *tx)
        .await?;
        record(&mut tx, &Invalidation::Keys, key.created_at)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn retire_signing_keys(&self, now: Millis) -> StoreResult<u64> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let retired =
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(now)
                .run(&mut *tx)
                .await?;
        if retired > 0 {
            record(&mut tx, &Invalidation::Keys, now)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(retired)
    }
}
