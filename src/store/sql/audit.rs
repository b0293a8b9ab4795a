//! The audit trail, on both engines (this file is compiled once per engine: see `store/mod.rs`).

use super::store::Run;
use super::{Engine, opt_text, text};
use crate::store::{AuditEvent, AuditStore, Millis, StoreResult, db};
use async_trait::async_trait;

#[async_trait]
impl AuditStore for Engine {
    async fn record_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_events (at, kind, user_id, ip, user_agent, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.at)
        .bind(text(&e.kind))
        .bind(e.user_id)
        .bind(opt_text(&e.ip))
        .bind(opt_text(&e.user_agent))
        .bind(opt_text(&e.detail))
        .run(self.writer())
        .await?;
        Ok(())
    }

    async fn audit_events(
        &self,
        user_id: Option<i64>,
        since: Option<Millis>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        // The casts type the parameters for PostgreSQL, where `$1 IS NULL` alone would leave them
        // unknown.
        sqlx::query_as(
            "SELECT at, kind, user_id, ip, user_agent, detail FROM ( \
               SELECT id, at, kind, user_id, ip, user_agent, detail FROM audit_events \
               WHERE (CAST($1 AS BIGINT) IS NULL OR user_id = $1) \
                 AND (CAST($2 AS BIGINT) IS NULL OR at >= $2) \
               ORDER BY at DESC, id DESC LIMIT $3 \
             ) AS newest ORDER BY at, id",
        )
        .bind(user_id)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await
        .map_err(db)
    }

    async fn prune_audit(&self, before: Millis) -> StoreResult<()> {
        sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before)
            .run(self.writer())
            .await?;
        Ok(())
    }
}
