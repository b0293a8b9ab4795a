//! The audit trail on SQLite.

use super::{SqliteStore, db};
use crate::store::{AuditEvent, AuditStore, Millis, StoreResult};
use async_trait::async_trait;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_events (at, kind, user_id, ip, user_agent, detail) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(e.at)
        .bind(&e.kind)
        .bind(e.user_id)
        .bind(&e.ip)
        .bind(&e.user_agent)
        .bind(&e.detail)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn audit_events(
        &self,
        user_id: Option<i64>,
        since: Option<Millis>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        sqlx::query_as(
            "SELECT at, kind, user_id, ip, user_agent, detail FROM ( \
               SELECT id, at, kind, user_id, ip, user_agent, detail FROM audit_events \
               WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR at >= ?2) \
               ORDER BY at DESC, id DESC LIMIT ?3 \
             ) ORDER BY at, id",
        )
        .bind(user_id)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    async fn prune_audit(&self, before: Millis) -> StoreResult<()> {
        sqlx::query("DELETE FROM audit_events WHERE at < ?")
            .bind(before)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(())
    }
}
