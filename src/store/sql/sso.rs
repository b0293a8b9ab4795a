//! Single sign-on state and identities, on both engines (this file is compiled once per engine:
//! see `store/mod.rs`).

use super::store::Run;
use super::users::insert_user;
use super::{Db, Engine, opt_text, text};
use crate::store::sso::TakenSsoState;
use crate::store::{
    Identity, Millis, NewUser, SsoStage, SsoState, SsoStore, StoreResult, User, db,
};
use async_trait::async_trait;

#[async_trait]
impl SsoStore for Engine {
    async fn put_sso_state(&self, state: &SsoState) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sso_states (hash, stage, provider, browser, payload, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(text(&state.hash))
        .bind(state.stage.as_str())
        .bind(text(&state.provider))
        .bind(text(&state.browser))
        .bind(text(&state.payload))
        .bind(state.expires_at)
        .run(self.writer())
        .await?;
        Ok(())
    }

    async fn take_sso_state(
        &self,
        hash: &str,
        stage: SsoStage,
        now: Millis,
    ) -> StoreResult<Option<SsoState>> {
        // Deleted whatever its stage or age, so a key is good for one attempt only.
        let row: Option<TakenSsoState> = sqlx::query_as(
            "DELETE FROM sso_states WHERE hash = $1 \
             RETURNING stage, provider, browser, payload, expires_at",
        )
        .bind(text(hash))
        .fetch_all(self.writer())
        .await
        .map_err(db)?
        .pop();
        Ok(row.and_then(|r| r.live(hash, stage, now)))
    }

    async fn identity_owner(&self, provider: &str, subject: &str) -> StoreResult<Option<i64>> {
        sqlx::query_scalar("SELECT user_id FROM identities WHERE provider = $1 AND subject = $2")
            .bind(text(provider))
            .bind(text(subject))
            .fetch_optional(self.reader())
            .await
            .map_err(db)
    }

    async fn link_identity(&self, identity: &Identity) -> StoreResult<()> {
        insert_identity(self.writer(), identity, identity.user_id)
            .await
            .map_err(db)
    }

    async fn create_user_with_identity(
        &self,
        user: NewUser,
        identity: &Identity,
    ) -> StoreResult<User> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let id = insert_user(&mut *tx, &user).await.map_err(db)?;
        insert_identity(&mut *tx, identity, id).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.inserted_user(id).await
    }

    async fn identities_of_user(&self, user_id: i64) -> StoreResult<Vec<Identity>> {
        sqlx::query_as(
            "SELECT provider, subject, user_id, email, created_at FROM identities \
             WHERE user_id = $1 ORDER BY created_at, provider",
        )
        .bind(user_id)
        .fetch_all(self.reader())
        .await
        .map_err(db)
    }
}

/// Links `identity` to account `user_id`.
async fn insert_identity<'e>(
    exec: impl sqlx::Executor<'e, Database = Db>,
    identity: &Identity,
    user_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO identities (provider, subject, user_id, email, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(text(&identity.provider))
    .bind(text(&identity.subject))
    .bind(user_id)
    .bind(opt_text(&identity.email))
    .bind(identity.created_at)
    .execute(exec)
    .await?;
    Ok(())
}
