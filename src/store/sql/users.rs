//! Accounts and roles, on both engines (this file is compiled once per engine: see `store/mod.rs`).
//! SQLite's one writer orders every change; on PostgreSQL a row lock stands in for it where a
//! decision reads before it writes.

use super::store::Run;
use super::{
    Db, Engine, IDENTITY_TAKEN, ROLE_BY_NAME_OR_KIND, lock, opt_text, record, reserve_user_id, text,
};
use crate::store::users::{ImportedRow, RoleUse, UserRow, imported_select, user_select};
use crate::store::{
    HashUpgrade, ImportedAccount, ImportedUser, Invalidation, Millis, NewRole, NewUser,
    RoleRemoval, RowLock, StoreError, StoreResult, User, UserCredentials, UserRole, UserStore, db,
};
use async_trait::async_trait;

/// Binds an account's own fields to a statement's first seven parameters: username, email, provider,
/// password hash, confirmed, blocked, role. `NewUser` and `ImportedUser` name them alike.
macro_rules! bind_account {
    ($query:expr, $account:expr) => {{
        let account = $account;
        $query
            .bind(text(&account.username))
            .bind(text(&account.email))
            .bind(text(&account.provider))
            .bind(opt_text(&account.password_hash))
            .bind(account.confirmed)
            .bind(account.blocked)
            .bind(account.role_id)
    }};
}

#[async_trait]
impl UserStore for Engine {
    async fn role_by_kind(&self, kind: &str) -> StoreResult<Option<UserRole>> {
        sqlx::query_as("SELECT id, name, description, type FROM roles WHERE type = $1")
            .bind(text(kind))
            .fetch_optional(self.reader())
            .await
            .map_err(db)
    }

    async fn role_by_name_or_kind(&self, name: &str) -> StoreResult<Option<UserRole>> {
        sqlx::query_as(ROLE_BY_NAME_OR_KIND)
            .bind(text(name))
            .fetch_optional(self.reader())
            .await
            .map_err(db)
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let id = insert_user(self.writer(), &user).await.map_err(db)?;
        self.inserted_user(id).await
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let query = sqlx::query_as(concat!(user_select!(), "WHERE u.id = $1")).bind(id);
        Ok(self.user_row(query).await?.map(User::from))
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let query =
            sqlx::query_as(concat!(user_select!(), "WHERE u.username = $1")).bind(text(username));
        Ok(self.user_row(query).await?.map(User::from))
    }

    async fn local_credentials(
        &self,
        email_lowercase: &str,
        username: &str,
    ) -> StoreResult<Option<UserCredentials>> {
        let query = sqlx::query_as(concat!(
            user_select!(),
            "WHERE u.provider = 'local' AND (u.email = $1 OR u.username = $2) ORDER BY u.id LIMIT 1"
        ))
        .bind(text(email_lowercase))
        .bind(text(username));
        Ok(self.user_row(query).await?.map(UserRow::credentials))
    }

    async fn identity_taken(&self, username: &str, email: &str) -> StoreResult<bool> {
        sqlx::query_scalar(IDENTITY_TAKEN)
            .bind(text(email))
            .bind(text(username))
            .fetch_one(self.reader())
            .await
            .map_err(db)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(concat!(user_select!(), "ORDER BY u.id"))
            .fetch_all(self.reader())
            .await
            .map_err(db)?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    async fn user_by_email(&self, email_lowercase: &str) -> StoreResult<Option<User>> {
        let query = sqlx::query_as(concat!(user_select!(), "WHERE u.email = $1"))
            .bind(text(email_lowercase));
        Ok(self.user_row(query).await?.map(User::from))
    }

    async fn set_confirmed(&self, user_id: i64, now: Millis) -> StoreResult<()> {
        let update =
            sqlx::query("UPDATE users SET confirmed = TRUE, updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(user_id);
        self.change_user(update, user_id, now).await?;
        Ok(())
    }

    async fn set_password_hash(&self, user_id: i64, hash: &str, now: Millis) -> StoreResult<()> {
        let update = sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2, password_changed_at = $2, \
             security_stamp = security_stamp + 1 WHERE id = $3",
        )
        .bind(text(hash))
        .bind(now)
        .bind(user_id);
        self.change_user(update, user_id, now).await?;
        Ok(())
    }

    async fn replace_password_hash(&self, upgrade: &HashUpgrade<'_>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4",
        )
        .bind(text(upgrade.new))
        .bind(upgrade.at)
        .bind(upgrade.user_id)
        .bind(text(upgrade.old))
        .run(self.writer()).await?;
        Ok(done == 1)
    }

    async fn set_blocked(&self, user_id: i64, blocked: bool, now: Millis) -> StoreResult<bool> {
        let update = sqlx::query(
            "UPDATE users SET blocked = $1, updated_at = $2, security_stamp = security_stamp + 1 \
             WHERE id = $3",
        )
        .bind(blocked)
        .bind(now)
        .bind(user_id);
        self.change_user(update, user_id, now).await
    }

    async fn delete_user(&self, user_id: i64) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // Lock the user first: a session inserted concurrently (its foreign-key check needs a share
        // lock on this row) then waits for us and fails, instead of slipping in between the list below
        // and the delete, and being cascaded away without an invalidation.
        lock(&mut tx, RowLock::User, user_id).await?;
        let sessions: Vec<String> =
            sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .run(&mut *tx)
            .await?;
        let now = chrono::Utc::now().timestamp_millis();
        for sid in sessions {
            record(&mut tx, &Invalidation::Session(sid), now)
                .await
                .map_err(db)?;
        }
        commit_user_change(tx, user_id, now).await?;
        Ok(done == 1)
    }

    async fn create_role(&self, role: &NewRole) -> StoreResult<UserRole> {
        sqlx::query_as(
            "INSERT INTO roles (name, description, type) VALUES ($1, $2, $3) \
             RETURNING id, name, description, type",
        )
        .bind(text(&role.name))
        .bind(text(&role.description))
        .bind(text(&role.kind))
        .fetch_all(self.writer())
        .await
        .map_err(db)?
        .pop()
        .ok_or_else(|| StoreError::Database("role vanished after insert".into()))
    }

    async fn list_roles(&self) -> StoreResult<Vec<(UserRole, i64)>> {
        let rows: Vec<RoleUse> = sqlx::query_as(
            "SELECT r.id, r.name, r.description, r.type, \
             (SELECT count(*) FROM users u WHERE u.role_id = r.id) AS users \
             FROM roles r ORDER BY r.id",
        )
        .fetch_all(self.reader())
        .await
        .map_err(db)?;
        Ok(rows.into_iter().map(<(UserRole, i64)>::from).collect())
    }

    async fn rename_role(&self, role_id: i64, name: &str, now: Millis) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done = sqlx::query("UPDATE roles SET name = $1 WHERE id = $2")
            .bind(text(name))
            .bind(role_id)
            .run(&mut *tx)
            .await?;
        let users: Vec<i64> = sqlx::query_scalar("SELECT id FROM users WHERE role_id = $1")
            .bind(role_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        for id in users {
            record(&mut tx, &Invalidation::User(id), now)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(done == 1)
    }

    async fn delete_role(&self, role_id: i64) -> StoreResult<RoleRemoval> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        // The role's row locked first (on SQLite the one writer already keeps everything else out):
        // an assignment (its foreign-key check takes a share lock on it) waits for this transaction
        // and then fails, instead of landing between count and delete.
        lock(&mut tx, RowLock::Role, role_id).await?;
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role_id = $1")
            .bind(role_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if users > 0 {
            return Ok(RoleRemoval::InUse(users));
        }
        let done = sqlx::query("DELETE FROM roles WHERE id = $1")
            .bind(role_id)
            .run(&mut *tx)
            .await?;
        tx.commit().await.map_err(db)?;
        Ok(if done == 1 {
            RoleRemoval::Removed
        } else {
            RoleRemoval::NotFound
        })
    }

    async fn set_user_role(&self, user_id: i64, role_id: i64, now: Millis) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done = sqlx::query("UPDATE users SET role_id = $1, updated_at = $2 WHERE id = $3")
            .bind(role_id)
            .bind(now)
            .bind(user_id)
            .run(&mut *tx)
            .await?;
        if done == 1 {
            record(&mut tx, &Invalidation::User(user_id), now)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(done == 1)
    }

    async fn insert_imported_user(&self, u: &ImportedUser) -> StoreResult<()> {
        reserve_user_id(self, u.strapi_id).await?;
        let mut tx = self.writer().begin().await.map_err(db)?;
        let insert = sqlx::query(
            "INSERT INTO users (username, email, provider, password_hash, confirmed, blocked, \
             role_id, document_id, id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        );
        bind_account!(insert, &u.account)
            .bind(text(&u.account.document_id))
            .bind(u.strapi_id)
            .bind(u.account.created_at)
            .bind(u.updated_at)
            .run(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO strapi_users (user_id, strapi_id, password_digest, confirmed, blocked) \
             VALUES ($1, $1, $2, $3, $4)",
        )
        .bind(u.strapi_id)
        .bind(opt_text(&u.strapi.password_digest))
        .bind(u.strapi.confirmed)
        .bind(u.strapi.blocked)
        .run(&mut *tx)
        .await?;
        tx.commit().await.map_err(db)
    }

    async fn imported_user(
        &self,
        strapi_id: i64,
        document_id: Option<&str>,
    ) -> StoreResult<Option<ImportedAccount>> {
        // The CAST: PostgreSQL needs a type for a NULL document id.
        let row: Option<ImportedRow> = sqlx::query_as(concat!(
            imported_select!(),
            "WHERE s.strapi_id = $1 OR u.document_id = CAST($2 AS TEXT) \
             ORDER BY s.strapi_id = $1 DESC LIMIT 1"
        ))
        .bind(strapi_id)
        .bind(document_id.map(text))
        .fetch_optional(self.reader())
        .await
        .map_err(db)?;
        Ok(row.map(ImportedAccount::from))
    }

    async fn update_imported_user(
        &self,
        user_id: i64,
        u: &ImportedUser,
        now: Millis,
    ) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let update = sqlx::query(
            "UPDATE users SET username = $1, email = $2, provider = $3, password_hash = $4, \
             confirmed = $5, blocked = $6, role_id = $7, updated_at = $8, \
             security_stamp = security_stamp + 1, password_changed_at = \
             CASE WHEN password_hash IS NOT DISTINCT FROM $4 THEN password_changed_at ELSE $10 END \
             WHERE id = $9",
        );
        let done = bind_account!(update, &u.account)
            .bind(u.updated_at)
            .bind(user_id)
            .bind(now)
            .run(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE strapi_users SET strapi_id = $1, password_digest = $2, confirmed = $3, \
             blocked = $4 WHERE user_id = $5",
        )
        .bind(u.strapi_id)
        .bind(opt_text(&u.strapi.password_digest))
        .bind(u.strapi.confirmed)
        .bind(u.strapi.blocked)
        .bind(user_id)
        .run(&mut *tx)
        .await?;
        commit_user_change(tx, user_id, now).await?;
        Ok(done == 1)
    }
}

impl Engine {
    /// The account `query` (a [`user_select!`] and its parameters) finds, if any.
    async fn user_row(
        &self,
        query: sqlx::query::QueryAs<'_, Db, UserRow, <Db as sqlx::Database>::Arguments>,
    ) -> StoreResult<Option<UserRow>> {
        query.fetch_optional(self.reader()).await.map_err(db)
    }

    /// The account just inserted with id `id`, as the callers of an insert return it.
    pub(super) async fn inserted_user(&self, id: i64) -> StoreResult<User> {
        self.user_by_id(id)
            .await?
            .ok_or_else(|| StoreError::Database("user vanished after insert".into()))
    }

    /// Runs `update`, a change to account `user_id`, and records a user invalidation with it in
    /// one transaction; whether it changed the account.
    async fn change_user(
        &self,
        update: sqlx::query::Query<'_, Db, <Db as sqlx::Database>::Arguments>,
        user_id: i64,
        now: Millis,
    ) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await.map_err(db)?;
        let done = update.run(&mut *tx).await?;
        commit_user_change(tx, user_id, now).await?;
        Ok(done == 1)
    }
}

/// Records that account `user_id` changed at `now`, as the last step of `tx` (see `record`), and
/// commits.
async fn commit_user_change(
    mut tx: sqlx::Transaction<'_, Db>,
    user_id: i64,
    now: Millis,
) -> StoreResult<()> {
    record(&mut tx, &Invalidation::User(user_id), now)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

/// Inserts an account; its id. (`fetch_all`: see the note on `RETURNING` in `SqliteStore`.)
pub(super) async fn insert_user<'e>(
    exec: impl sqlx::Executor<'e, Database = Db>,
    user: &NewUser,
) -> Result<i64, sqlx::Error> {
    let insert = sqlx::query_scalar(
        "INSERT INTO users (username, email, provider, password_hash, confirmed, blocked, \
         role_id, document_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
    );
    bind_account!(insert, user)
        .bind(text(&user.document_id))
        .bind(user.created_at)
        .fetch_all(exec)
        .await?
        .pop()
        .ok_or(sqlx::Error::RowNotFound)
}
