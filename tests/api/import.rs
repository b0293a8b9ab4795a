//! `keyway import strapi` end to end. Strapi databases are built here with the tables Strapi 3, 4 and
//! 5 create (on SQLite and on PostgreSQL), filled with real bcrypt hashes as Strapi's bcryptjs writes
//! them (`$2a$`), and imported by the real binary into a running app's database (SQLite, or its own
//! PostgreSQL database with `KEYWAY_TEST_BACKEND=postgres`). The people in them then use the API.

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tempfile::TempDir;
use tokio::process::Command;
use tokio::time::timeout;

use crate::helpers::*;
use crate::jwt::strapi_token_for;
use crate::testdb::PgDatabase;

/// Bound on one run of the import: generous for a loaded two-core machine.
const WAIT: Duration = Duration::from_secs(30);

/// When the fixtures' accounts were created and last changed in Strapi (milliseconds).
const CREATED: i64 = 1_600_000_000_123;
const UPDATED: i64 = 1_700_000_000_456;
const CREATED_ISO: &str = "2020-09-13T12:26:40.123Z";
const UPDATED_ISO: &str = "2023-11-14T22:13:20.456Z";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strapi {
    V3,
    V4,
    V5,
}

// ---- Strapi's schemas ----
//
// As Strapi creates them: SQLite through knex (backticks, `varchar(255)`, `datetime`, booleans,
// AUTOINCREMENT ids), PostgreSQL as pg_dump shows them (`serial`, `timestamp(6)`, or `timestamptz` for
// Strapi 3's bookshelf). Only the users-permissions tables and what they reference.

const SQLITE_V3: &str = "
create table `users-permissions_role` (`id` integer not null primary key autoincrement,
  `name` varchar(255) not null, `description` varchar(255) null, `type` varchar(255) null,
  `created_by` integer null, `updated_by` integer null);
CREATE UNIQUE INDEX `users-permissions_role_type_unique` on `users-permissions_role` (`type`);
create table `users-permissions_user` (`id` integer not null primary key autoincrement,
  `username` varchar(255) not null, `email` varchar(255) not null, `provider` varchar(255) null,
  `password` varchar(255) null, `resetPasswordToken` varchar(255) null,
  `confirmationToken` varchar(255) null, `confirmed` boolean null, `blocked` boolean null,
  `role` integer null, `created_by` integer null, `updated_by` integer null,
  `created_at` datetime null default CURRENT_TIMESTAMP, `updated_at` datetime null default CURRENT_TIMESTAMP);
CREATE UNIQUE INDEX `users-permissions_user_username_unique` on `users-permissions_user` (`username`);
";

const SQLITE_V4: &str = "
create table `admin_users` (`id` integer not null primary key autoincrement, `email` varchar(255) null);
create table `up_roles` (`id` integer not null primary key autoincrement, `name` varchar(255) null,
  `description` varchar(255) null, `type` varchar(255) null, `created_at` datetime null,
  `updated_at` datetime null, `created_by_id` integer null, `updated_by_id` integer null,
  constraint `up_roles_created_by_id_fk` foreign key(`created_by_id`) references `admin_users`(`id`) on delete SET NULL,
  constraint `up_roles_updated_by_id_fk` foreign key(`updated_by_id`) references `admin_users`(`id`) on delete SET NULL);
create table `up_users` (`id` integer not null primary key autoincrement, `username` varchar(255) null,
  `email` varchar(255) null, `provider` varchar(255) null, `password` varchar(255) null,
  `reset_password_token` varchar(255) null, `confirmation_token` varchar(255) null,
  `confirmed` boolean null, `blocked` boolean null, `created_at` datetime null, `updated_at` datetime null,
  `created_by_id` integer null, `updated_by_id` integer null,
  constraint `up_users_created_by_id_fk` foreign key(`created_by_id`) references `admin_users`(`id`) on delete SET NULL,
  constraint `up_users_updated_by_id_fk` foreign key(`updated_by_id`) references `admin_users`(`id`) on delete SET NULL);
CREATE INDEX `up_users_created_by_id_fk` ON `up_users` (`created_by_id`);
CREATE INDEX `up_users_updated_by_id_fk` ON `up_users` (`updated_by_id`);
create table `up_users_role_links` (`id` integer not null primary key autoincrement, `user_id` integer null,
  `role_id` integer null, `user_order` float null,
  constraint `up_users_role_links_fk` foreign key(`user_id`) references `up_users`(`id`) on delete CASCADE,
  constraint `up_users_role_links_inv_fk` foreign key(`role_id`) references `up_roles`(`id`) on delete CASCADE);
CREATE INDEX `up_users_role_links_fk` ON `up_users_role_links` (`user_id`);
CREATE INDEX `up_users_role_links_inv_fk` ON `up_users_role_links` (`role_id`);
CREATE UNIQUE INDEX `up_users_role_links_unique` ON `up_users_role_links` (`user_id`, `role_id`);
CREATE INDEX `up_users_role_links_order_inv_fk` ON `up_users_role_links` (`user_order`);
";

const SQLITE_V5: &str = "
create table `admin_users` (`id` integer not null primary key autoincrement, `email` varchar(255) null);
create table `up_roles` (`id` integer not null primary key autoincrement, `document_id` varchar(255) null,
  `name` varchar(255) null, `description` varchar(255) null, `type` varchar(255) null,
  `created_at` datetime null, `updated_at` datetime null, `published_at` datetime null,
  `created_by_id` integer null, `updated_by_id` integer null, `locale` varchar(255) null,
  constraint `up_roles_created_by_id_fk` foreign key(`created_by_id`) references `admin_users`(`id`) on delete SET NULL,
  constraint `up_roles_updated_by_id_fk` foreign key(`updated_by_id`) references `admin_users`(`id`) on delete SET NULL);
CREATE INDEX `up_roles_documents_idx` ON `up_roles` (`document_id`, `locale`, `published_at`);
create table `up_users` (`id` integer not null primary key autoincrement, `document_id` varchar(255) null,
  `username` varchar(255) null, `email` varchar(255) null, `provider` varchar(255) null,
  `password` varchar(255) null, `reset_password_token` varchar(255) null,
  `confirmation_token` varchar(255) null, `confirmed` boolean null, `blocked` boolean null,
  `created_at` datetime null, `updated_at` datetime null, `published_at` datetime null,
  `created_by_id` integer null, `updated_by_id` integer null, `locale` varchar(255) null,
  constraint `up_users_created_by_id_fk` foreign key(`created_by_id`) references `admin_users`(`id`) on delete SET NULL,
  constraint `up_users_updated_by_id_fk` foreign key(`updated_by_id`) references `admin_users`(`id`) on delete SET NULL);
CREATE INDEX `up_users_documents_idx` ON `up_users` (`document_id`, `locale`, `published_at`);
create table `up_users_role_lnk` (`id` integer not null primary key autoincrement, `user_id` integer null,
  `role_id` integer null, `user_ord` float null,
  constraint `up_users_role_lnk_fk` foreign key(`user_id`) references `up_users`(`id`) on delete CASCADE,
  constraint `up_users_role_lnk_ifk` foreign key(`role_id`) references `up_roles`(`id`) on delete CASCADE);
CREATE INDEX `up_users_role_lnk_fk` ON `up_users_role_lnk` (`user_id`);
CREATE INDEX `up_users_role_lnk_ifk` ON `up_users_role_lnk` (`role_id`);
CREATE UNIQUE INDEX `up_users_role_lnk_uq` ON `up_users_role_lnk` (`user_id`, `role_id`);
CREATE INDEX `up_users_role_lnk_oifk` ON `up_users_role_lnk` (`user_ord`);
";

const POSTGRES_V3: &str = r#"
CREATE TABLE "users-permissions_role" (id serial PRIMARY KEY, name varchar(255) NOT NULL,
  description varchar(255), type varchar(255), created_by integer, updated_by integer);
CREATE UNIQUE INDEX "users-permissions_role_type_unique" ON "users-permissions_role" (type);
CREATE TABLE "users-permissions_user" (id serial PRIMARY KEY, username varchar(255) NOT NULL,
  email varchar(255) NOT NULL, provider varchar(255), password varchar(255),
  "resetPasswordToken" varchar(255), "confirmationToken" varchar(255), confirmed boolean,
  blocked boolean, role integer, created_by integer, updated_by integer,
  created_at timestamptz DEFAULT CURRENT_TIMESTAMP, updated_at timestamptz DEFAULT CURRENT_TIMESTAMP);
CREATE UNIQUE INDEX "users-permissions_user_username_unique" ON "users-permissions_user" (username);
"#;

const POSTGRES_V4: &str = "
CREATE TABLE admin_users (id serial PRIMARY KEY, email varchar(255));
CREATE TABLE up_roles (id serial PRIMARY KEY, name varchar(255), description varchar(255),
  type varchar(255), created_at timestamp(6) without time zone, updated_at timestamp(6) without time zone,
  created_by_id integer REFERENCES admin_users (id) ON DELETE SET NULL,
  updated_by_id integer REFERENCES admin_users (id) ON DELETE SET NULL);
CREATE TABLE up_users (id serial PRIMARY KEY, username varchar(255), email varchar(255),
  provider varchar(255), password varchar(255), reset_password_token varchar(255),
  confirmation_token varchar(255), confirmed boolean, blocked boolean,
  created_at timestamp(6) without time zone, updated_at timestamp(6) without time zone,
  created_by_id integer REFERENCES admin_users (id) ON DELETE SET NULL,
  updated_by_id integer REFERENCES admin_users (id) ON DELETE SET NULL);
CREATE TABLE up_users_role_links (id serial PRIMARY KEY,
  user_id integer REFERENCES up_users (id) ON DELETE CASCADE,
  role_id integer REFERENCES up_roles (id) ON DELETE CASCADE, user_order double precision,
  CONSTRAINT up_users_role_links_unique UNIQUE (user_id, role_id));
CREATE INDEX up_users_role_links_fk ON up_users_role_links (user_id);
CREATE INDEX up_users_role_links_inv_fk ON up_users_role_links (role_id);
";

const POSTGRES_V5: &str = "
CREATE TABLE admin_users (id serial PRIMARY KEY, email varchar(255));
CREATE TABLE up_roles (id serial PRIMARY KEY, document_id varchar(255), name varchar(255),
  description varchar(255), type varchar(255), created_at timestamp(6) without time zone,
  updated_at timestamp(6) without time zone, published_at timestamp(6) without time zone,
  created_by_id integer REFERENCES admin_users (id) ON DELETE SET NULL,
  updated_by_id integer REFERENCES admin_users (id) ON DELETE SET NULL, locale varchar(255));
CREATE TABLE up_users (id serial PRIMARY KEY, document_id varchar(255), username varchar(255),
  email varchar(255), provider varchar(255), password varchar(255),
  reset_password_token varchar(255), confirmation_token varchar(255), confirmed boolean,
  blocked boolean, created_at timestamp(6) without time zone,
  updated_at timestamp(6) without time zone, published_at timestamp(6) without time zone,
  created_by_id integer REFERENCES admin_users (id) ON DELETE SET NULL,
  updated_by_id integer REFERENCES admin_users (id) ON DELETE SET NULL, locale varchar(255));
CREATE INDEX up_users_documents_idx ON up_users (document_id, locale, published_at);
CREATE TABLE up_users_role_lnk (id serial PRIMARY KEY,
  user_id integer REFERENCES up_users (id) ON DELETE CASCADE,
  role_id integer REFERENCES up_roles (id) ON DELETE CASCADE, user_ord double precision,
  CONSTRAINT up_users_role_lnk_uq UNIQUE (user_id, role_id));
";

/// A Strapi user to put into a fixture database.
#[derive(Clone)]
struct StrapiUser {
    id: i64,
    username: Option<String>,
    email: Option<String>,
    provider: Option<&'static str>,
    password: Option<String>,
    confirmed: bool,
    blocked: bool,
    role: Option<i64>,
    created_at: i64,
    updated_at: i64,
    /// Strapi 5.
    document_id: Option<String>,
    published: bool,
}

impl StrapiUser {
    /// A confirmed `name` <name@example.com> whose password is [`password_of`]`(name)`, hashed as
    /// Strapi hashes it (bcrypt, `$2a$`; cost 4 keeps the suite quick).
    fn new(id: i64, name: &str) -> Self {
        Self {
            id,
            username: Some(name.to_owned()),
            email: Some(format!("{name}@example.com")),
            provider: Some("local"),
            password: Some(strapi_hash(&password_of(name), 4)),
            confirmed: true,
            blocked: false,
            role: Some(1),
            created_at: CREATED,
            updated_at: UPDATED,
            document_id: Some(format!("doc{id:0>21}")),
            published: true,
        }
    }
}

/// A bcrypt hash the way Strapi's bcryptjs writes it: `$2a$` (the crate writes `$2b$`, the same
/// algorithm).
fn strapi_hash(password: &str, cost: u32) -> String {
    let hash = bcrypt::hash(password, cost).expect("bcrypt");
    format!("$2a${}", &hash[4..])
}

/// Bob's hash is Strapi's default cost (10), computed once: the slow one every real Strapi has.
fn cost_10_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| strapi_hash(&password_of("bob"), 10))
}

enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// A Strapi database of one version, on SQLite (a file in its own directory, where Strapi keeps it:
/// `.tmp/data.db`) or on a PostgreSQL database of its own.
struct StrapiDb {
    version: Strapi,
    url: String,
    pool: Pool,
    _dir: Option<TempDir>,
    _pg: Option<PgDatabase>,
}

impl StrapiDb {
    async fn sqlite(version: Strapi) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join(".tmp")).unwrap();
        let path = dir.path().join(".tmp/data.db");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let ddl = match version {
            Strapi::V3 => SQLITE_V3,
            Strapi::V4 => SQLITE_V4,
            Strapi::V5 => SQLITE_V5,
        };
        sqlx::raw_sql(ddl).execute(&pool).await.unwrap();
        Self {
            version,
            // A bare path, as an operator would type it.
            url: path.display().to_string(),
            pool: Pool::Sqlite(pool),
            _dir: Some(dir),
            _pg: None,
        }
    }

    async fn postgres(version: Strapi) -> Self {
        let db = PgDatabase::create().await;
        let pool = sqlx::PgPool::connect(db.url_str()).await.unwrap();
        let ddl = match version {
            Strapi::V3 => POSTGRES_V3,
            Strapi::V4 => POSTGRES_V4,
            Strapi::V5 => POSTGRES_V5,
        };
        sqlx::raw_sql(ddl).execute(&pool).await.unwrap();
        Self {
            version,
            url: db.url_str().to_owned(),
            pool: Pool::Postgres(pool),
            _dir: None,
            _pg: Some(db),
        }
    }

    /// The three roles every fixture has: Strapi's two and an operator's own.
    async fn with_roles(self) -> Self {
        self.role(
            1,
            "Authenticated",
            "Default role given to authenticated user.",
            "authenticated",
        )
        .await;
        self.role(
            2,
            "Public",
            "Default role given to unauthenticated user.",
            "public",
        )
        .await;
        self.role(3, "Editor", "Edits the shop", "editor").await;
        self
    }

    async fn role(&self, id: i64, name: &str, description: &str, kind: &str) {
        let document = format!("role{id:0>20}");
        match (&self.pool, self.version) {
            (Pool::Sqlite(pool), Strapi::V3) => {
                sqlx::query(
                    "INSERT INTO `users-permissions_role` (id, name, description, type) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(name)
                .bind(description)
                .bind(kind)
                .execute(pool)
                .await
                .unwrap();
            }
            (Pool::Postgres(pool), Strapi::V3) => {
                sqlx::query(
                    "INSERT INTO \"users-permissions_role\" (id, name, description, type) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(id as i32)
                .bind(name)
                .bind(description)
                .bind(kind)
                .execute(pool)
                .await
                .unwrap();
            }
            (Pool::Sqlite(pool), Strapi::V4) => {
                sqlx::query(
                    "INSERT INTO up_roles (id, name, description, type, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(id)
                .bind(name)
                .bind(description)
                .bind(kind)
                .bind(CREATED)
                .execute(pool)
                .await
                .unwrap();
            }
            (Pool::Postgres(pool), Strapi::V4) => {
                sqlx::query(
                    "INSERT INTO up_roles (id, name, description, type, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, now(), now())",
                )
                .bind(id as i32)
                .bind(name)
                .bind(description)
                .bind(kind)
                .execute(pool)
                .await
                .unwrap();
            }
            (Pool::Sqlite(pool), Strapi::V5) => {
                sqlx::query(
                    "INSERT INTO up_roles (id, document_id, name, description, type, created_at, \
                     updated_at, published_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
                )
                .bind(id)
                .bind(document)
                .bind(name)
                .bind(description)
                .bind(kind)
                .bind(CREATED)
                .execute(pool)
                .await
                .unwrap();
            }
            (Pool::Postgres(pool), Strapi::V5) => {
                sqlx::query(
                    "INSERT INTO up_roles (id, document_id, name, description, type, created_at, \
                     updated_at, published_at) VALUES ($1, $2, $3, $4, $5, now(), now(), now())",
                )
                .bind(id as i32)
                .bind(document)
                .bind(name)
                .bind(description)
                .bind(kind)
                .execute(pool)
                .await
                .unwrap();
            }
        }
    }

    /// Inserts a user (and its role link) as Strapi stores it. Timestamps: integer milliseconds on
    /// SQLite (what Strapi writes), except Strapi 3, whose rows here carry text the way a
    /// `CURRENT_TIMESTAMP` default writes it; `timestamp`/`timestamptz` on PostgreSQL.
    async fn user(&self, u: &StrapiUser) {
        let text_time = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S%.3f")
                .to_string()
        };
        let published = u.published.then_some(u.updated_at);
        match (&self.pool, self.version) {
            (Pool::Sqlite(pool), Strapi::V3) => {
                sqlx::query(
                    "INSERT INTO `users-permissions_user` (id, username, email, provider, password, \
                     confirmed, blocked, role, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(u.id)
                .bind(&u.username)
                .bind(&u.email)
                .bind(u.provider)
                .bind(&u.password)
                .bind(u.confirmed)
                .bind(u.blocked)
                .bind(u.role)
                .bind(text_time(u.created_at))
                .bind(text_time(u.updated_at))
                .execute(pool)
                .await
                .unwrap();
            }
            (Pool::Postgres(pool), Strapi::V3) => {
                sqlx::query(
                    "INSERT INTO \"users-permissions_user\" (id, username, email, provider, password, \
                     confirmed, blocked, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, \
                     $6, $7, $8, to_timestamp($9::float8 / 1000), to_timestamp($10::float8 / 1000))",
                )
                .bind(u.id as i32)
                .bind(&u.username)
                .bind(&u.email)
                .bind(u.provider)
                .bind(&u.password)
                .bind(u.confirmed)
                .bind(u.blocked)
                .bind(u.role.map(|r| r as i32))
                .bind(u.created_at)
                .bind(u.updated_at)
                .execute(pool)
                .await
                .unwrap();
            }
            (Pool::Sqlite(pool), version) => {
                let sql = if version == Strapi::V4 {
                    "INSERT INTO up_users (id, username, email, provider, password, confirmed, \
                     blocked, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                } else {
                    "INSERT INTO up_users (id, username, email, provider, password, confirmed, \
                     blocked, created_at, updated_at, document_id, published_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                };
                let mut insert = sqlx::query(sql)
                    .bind(u.id)
                    .bind(&u.username)
                    .bind(&u.email)
                    .bind(u.provider)
                    .bind(&u.password)
                    .bind(u.confirmed)
                    .bind(u.blocked)
                    .bind(u.created_at)
                    .bind(u.updated_at);
                if version == Strapi::V5 {
                    insert = insert.bind(&u.document_id).bind(published);
                }
                insert.execute(pool).await.unwrap();
                if let Some(role) = u.role {
                    let link = if version == Strapi::V4 {
                        "INSERT INTO up_users_role_links (user_id, role_id, user_order) \
                         VALUES ($1, $2, 1)"
                    } else {
                        "INSERT INTO up_users_role_lnk (user_id, role_id, user_ord) VALUES ($1, $2, 1)"
                    };
                    sqlx::query(link)
                        .bind(u.id)
                        .bind(role)
                        .execute(pool)
                        .await
                        .unwrap();
                }
            }
            (Pool::Postgres(pool), version) => {
                let sql = if version == Strapi::V4 {
                    "INSERT INTO up_users (id, username, email, provider, password, confirmed, \
                     blocked, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                     to_timestamp($8::float8 / 1000) AT TIME ZONE 'UTC', \
                     to_timestamp($9::float8 / 1000) AT TIME ZONE 'UTC')"
                } else {
                    "INSERT INTO up_users (id, username, email, provider, password, confirmed, \
                     blocked, created_at, updated_at, document_id, published_at) VALUES ($1, $2, \
                     $3, $4, $5, $6, $7, to_timestamp($8::float8 / 1000) AT TIME ZONE 'UTC', \
                     to_timestamp($9::float8 / 1000) AT TIME ZONE 'UTC', $10, \
                     to_timestamp($11::float8 / 1000) AT TIME ZONE 'UTC')"
                };
                let mut insert = sqlx::query(sql)
                    .bind(u.id as i32)
                    .bind(&u.username)
                    .bind(&u.email)
                    .bind(u.provider)
                    .bind(&u.password)
                    .bind(u.confirmed)
                    .bind(u.blocked)
                    .bind(u.created_at)
                    .bind(u.updated_at);
                if version == Strapi::V5 {
                    insert = insert.bind(&u.document_id).bind(published);
                }
                insert.execute(pool).await.unwrap();
                if let Some(role) = u.role {
                    let link = if version == Strapi::V4 {
                        "INSERT INTO up_users_role_links (user_id, role_id, user_order) \
                         VALUES ($1, $2, 1)"
                    } else {
                        "INSERT INTO up_users_role_lnk (user_id, role_id, user_ord) VALUES ($1, $2, 1)"
                    };
                    sqlx::query(link)
                        .bind(u.id as i32)
                        .bind(role as i32)
                        .execute(pool)
                        .await
                        .unwrap();
                }
            }
        }
    }

    /// Deletes a Strapi 5 user row (and, through the foreign key, its role link).
    async fn delete_v5_user(&self, id: i64) {
        match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query("DELETE FROM up_users_role_lnk WHERE user_id = $1")
                    .bind(id)
                    .execute(pool)
                    .await
                    .unwrap();
                sqlx::query("DELETE FROM up_users WHERE id = $1")
                    .bind(id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
            Pool::Postgres(pool) => {
                sqlx::query("DELETE FROM up_users WHERE id = $1")
                    .bind(id as i32)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }

    /// Runs a statement on a SQLite fixture (what an administrator's edit in Strapi would write).
    async fn sqlite_exec(&self, sql: &'static str) {
        let Pool::Sqlite(pool) = &self.pool else {
            panic!("sqlite_exec is for SQLite fixtures");
        };
        sqlx::raw_sql(sql).execute(pool).await.unwrap();
    }

    /// Changes a user's password the way Strapi's admin panel would: a new hash, a later `updated_at`.
    async fn change_password(&self, id: i64, hash: &str, updated_at: i64) {
        let (table, at) = match self.version {
            Strapi::V3 => (
                "\"users-permissions_user\"",
                "to_timestamp($2::float8 / 1000)",
            ),
            _ => (
                "up_users",
                "to_timestamp($2::float8 / 1000) AT TIME ZONE 'UTC'",
            ),
        };
        match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET password = $1, updated_at = $2 WHERE id = $3"
                )))
                .bind(hash)
                .bind(updated_at)
                .bind(id)
                .execute(pool)
                .await
                .unwrap();
            }
            Pool::Postgres(pool) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET password = $1, updated_at = {at} WHERE id = $3"
                )))
                .bind(hash)
                .bind(updated_at)
                .bind(id as i32)
                .execute(pool)
                .await
                .unwrap();
            }
        }
    }
}

/// The people of the standard fixture, the same in every version:
/// alice (Authenticated), bob (Editor, Strapi's default cost-10 hash), carol (blocked),
/// dave (unconfirmed), Erin (a mixed-case email, no role), sso (a Google account, no password).
async fn standard(db: StrapiDb) -> StrapiDb {
    let db = db.with_roles().await;
    db.user(&StrapiUser::new(1, "alice")).await;
    db.user(&StrapiUser {
        password: Some(cost_10_hash().to_owned()),
        role: Some(3),
        ..StrapiUser::new(2, "bob")
    })
    .await;
    db.user(&StrapiUser {
        blocked: true,
        ..StrapiUser::new(3, "carol")
    })
    .await;
    db.user(&StrapiUser {
        confirmed: false,
        ..StrapiUser::new(4, "dave")
    })
    .await;
    db.user(&StrapiUser {
        email: Some("Erin@Example.COM".into()),
        role: None,
        ..StrapiUser::new(5, "erin")
    })
    .await;
    db.user(&StrapiUser {
        provider: Some("google"),
        password: None,
        ..StrapiUser::new(6, "sso")
    })
    .await;
    db
}

/// An app that requires confirmed emails (to see Strapi's "not confirmed" refusal) and accepts
/// tokens Strapi issued with [`TEST_SECRET`].
async fn keyway() -> TestApp {
    TestApp::spawn_with(|c| {
        c.auth.email_confirmation = true;
        c.tokens.secret = Some(SecretString::from(TEST_SECRET));
        c.tokens.accept_strapi_tokens = true;
    })
    .await
}

/// `keyway import strapi --from FROM` against the app's database, run like an operator would: the
/// compiled binary, in the app's directory, with nothing in its environment but the database URL.
async fn import(app: &TestApp, from: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyway"));
    cmd.current_dir(app.dir.path()).env_clear().env(
        "KEYWAY_DATABASE_URL",
        app.config.database_url.expose_secret(),
    );
    run(cmd, &["import", "strapi", "--from", from]).await
}

async fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    timeout(WAIT, cmd.output())
        .await
        .expect("the import finished in time")
        .expect("run keyway")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the run's exit status, and that no password hash ever reaches the terminal.
fn assert_exit(out: &Output, code: i32) {
    let (o, e) = (stdout(out), stderr(out));
    assert_eq!(out.status.code(), Some(code), "stdout:\n{o}\nstderr:\n{e}");
    assert!(
        !o.contains("$2a$") && !e.contains("$2a$"),
        "a hash was printed:\n{o}\n{e}"
    );
}

/// The summary line about users.
fn users_line(out: &Output) -> String {
    stdout(out)
        .lines()
        .find(|l| l.starts_with("users: "))
        .unwrap_or_else(|| panic!("no users line in:\n{}", stdout(out)))
        .to_owned()
}

async fn login_ok(app: &TestApp, identifier: &str, password: &str) -> Value {
    let res = app.login(identifier, password).await;
    assert_eq!(res.status(), StatusCode::OK, "login as {identifier}");
    res.json().await.unwrap()
}

async fn me(app: &TestApp, jwt: &str) -> Value {
    let res = app.me(jwt).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn stored_hash(app: &TestApp, id: i64) -> Option<String> {
    with_db!(app.db().await, |pool| sqlx::query_scalar(
        "SELECT password_hash FROM users WHERE id = $1"
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap())
}

/// Waits for the background upgrade of a bcrypt hash that a login starts.
async fn wait_for_argon2(app: &TestApp, id: i64) -> String {
    for _ in 0..100 {
        if let Some(hash) = stored_hash(app, id)
            .await
            .filter(|h| h.starts_with("$argon2id$"))
        {
            return hash;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the hash of user {id} was not upgraded to argon2id");
}

/// What every version's standard fixture must give once imported: old passwords work (and are then
/// upgraded), ids and timestamps are Strapi's, roles are right, blocked and unconfirmed people are
/// refused as Strapi refuses them.
async fn assert_standard_import(app: &TestApp, db: &StrapiDb) {
    let out = import(app, &db.url).await;
    assert_exit(&out, 0);
    let version = match db.version {
        Strapi::V3 => "Strapi 3",
        Strapi::V4 => "Strapi 4",
        Strapi::V5 => "Strapi 5",
    };
    assert!(
        stderr(&out).contains(&format!("read the {version} database: 6 users, 3 roles")),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("users: 6/6"), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "roles: 1 created (Editor (editor)), 2 matched (Authenticated (authenticated), \
             Public (public))"
        ),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        users_line(&out),
        format!(
            "users: 6 imported, 0 updated, 0 unchanged, 0 kept (changed in Keyway since), \
             0 conflicting, 0 invalid (6 in the {version} database)"
        )
    );
    assert!(stdout(&out).contains("1 without a role in Strapi got the default role"));
    assert!(stdout(&out).contains("1 without a password Keyway can verify"));

    assert!(
        stored_hash(app, 1).await.unwrap().starts_with("$2a$04$"),
        "kept as it was"
    );
    let body = login_ok(app, "alice", &password_of("alice")).await;
    let user = &body["user"];
    assert_eq!(user["id"], 1, "Strapi's id is kept: {body}");
    assert_eq!(user["createdAt"], CREATED_ISO, "{body}");
    assert_eq!(user["updatedAt"], UPDATED_ISO, "{body}");
    let alice = me(app, body["jwt"].as_str().unwrap()).await;
    assert_eq!(alice["role"]["type"], "authenticated", "{alice}");
    assert_eq!(alice["role"]["name"], "Authenticated", "{alice}");
    if db.version == Strapi::V5 {
        assert_eq!(alice["documentId"], "doc000000000000000000001", "{alice}");
    }
    wait_for_argon2(app, 1).await;
    login_ok(app, "alice@example.com", &password_of("alice")).await;

    let res = app.login("carol", &password_of("carol")).await;
    assert_error(
        res,
        400,
        "ApplicationError",
        "Your account has been blocked by an administrator",
    )
    .await;
    let res = app.login("dave", &password_of("dave")).await;
    assert_error(
        res,
        400,
        "ApplicationError",
        "Your account email is not confirmed",
    )
    .await;
    let res = app.login("dave", "not-daves-password").await;
    assert_invalid_login(res).await;

    // Emails are stored lower-cased, so Erin logs in with hers in any case; Strapi gave her no role,
    // Keyway the default one.
    let erin = login_ok(app, "ERIN@example.com", &password_of("erin")).await;
    assert_eq!(erin["user"]["email"], "erin@example.com");
    assert_eq!(erin["user"]["role"]["type"], "authenticated");
    let res = app.login("sso", "anything-at-all").await;
    assert_invalid_login(res).await;
}

// ---- every version, from either engine ----

#[tokio::test]
async fn strapi_3_users_log_in_with_their_old_passwords() {
    let app = keyway().await;
    assert_standard_import(&app, &standard(StrapiDb::sqlite(Strapi::V3).await).await).await;
}

#[tokio::test]
async fn strapi_4_users_log_in_with_their_old_passwords() {
    let app = keyway().await;
    let db = standard(StrapiDb::sqlite(Strapi::V4).await).await;
    assert_standard_import(&app, &db).await;

    // Strapi's default cost, `$2a$10$`, and an operator's own role.
    let body = login_ok(&app, "bob", &password_of("bob")).await;
    let bob = me(&app, body["jwt"].as_str().unwrap()).await;
    assert_eq!(bob["id"], 2);
    assert_eq!(bob["role"]["name"], "Editor", "{bob}");
    assert_eq!(bob["role"]["type"], "editor", "{bob}");
    assert_eq!(bob["role"]["description"], "Edits the shop", "{bob}");
    wait_for_argon2(&app, 2).await;
}

#[tokio::test]
async fn strapi_5_users_log_in_with_their_old_passwords() {
    let app = keyway().await;
    assert_standard_import(&app, &standard(StrapiDb::sqlite(Strapi::V5).await).await).await;
}

#[tokio::test]
async fn every_strapi_version_imports_from_postgres() {
    for version in [Strapi::V3, Strapi::V4, Strapi::V5] {
        eprintln!("── Strapi {version:?} on PostgreSQL");
        let app = keyway().await;
        assert_standard_import(&app, &standard(StrapiDb::postgres(version).await).await).await;
    }
}

// ---- running it again ----

#[tokio::test]
async fn a_second_import_changes_nothing() {
    let app = keyway().await;
    let db = standard(StrapiDb::sqlite(Strapi::V4).await).await;
    assert_exit(&import(&app, &db.url).await, 0);
    let users = app.auth.admin().list_users().await.unwrap();
    let hashes: Vec<_> = hashes_of(&app, &users).await;
    let seq = app.auth.store().last_invalidation().await.unwrap();

    let again = import(&app, &db.url).await;
    assert_exit(&again, 0);
    assert_eq!(
        users_line(&again),
        "users: 0 imported, 0 updated, 6 unchanged, 0 kept (changed in Keyway since), \
         0 conflicting, 0 invalid (6 in the Strapi 4 database)"
    );
    assert!(
        stdout(&again).contains("roles: 0 created, 3 matched"),
        "{}",
        stdout(&again)
    );
    assert_eq!(app.auth.admin().list_users().await.unwrap(), users);
    assert_eq!(hashes_of(&app, &users).await, hashes);
    assert_eq!(
        app.auth.store().last_invalidation().await.unwrap(),
        seq,
        "nothing for running servers to forget either"
    );
}

async fn hashes_of(app: &TestApp, users: &[keyway::store::User]) -> Vec<Option<String>> {
    let mut hashes = Vec::new();
    for u in users {
        hashes.push(stored_hash(app, u.id).await);
    }
    hashes
}

#[tokio::test]
async fn a_rerun_brings_over_what_changed_in_strapi_and_keeps_what_changed_in_keyway() {
    let app = keyway().await;
    let db = standard(StrapiDb::sqlite(Strapi::V4).await).await;
    assert_exit(&import(&app, &db.url).await, 0);

    // In Keyway: Alice and Bob log in (their hashes become argon2id), Erin changes her password,
    // an operator blocks Bob.
    let alice_jwt = login_ok(&app, "alice", &password_of("alice")).await["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    login_ok(&app, "bob", &password_of("bob")).await;
    let bobs_argon2 = wait_for_argon2(&app, 2).await;
    wait_for_argon2(&app, 1).await;
    let erin_jwt = login_ok(&app, "erin", &password_of("erin")).await["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    // The login's background upgrade of her bcrypt hash must land before her new password does:
    // the upgrade writes unconditionally, so finishing second it would bring the old password back.
    wait_for_argon2(&app, 5).await;
    let res = app
        .client
        .post(app.url("/api/auth/change-password"))
        .bearer_auth(&erin_jwt)
        .json(&serde_json::json!({
            "currentPassword": password_of("erin"),
            "password": "erins-keyway-passphrase",
            "passwordConfirmation": "erins-keyway-passphrase",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    app.auth.admin().set_blocked("bob", true).await.unwrap();

    // Meanwhile, in Strapi, which still runs: Alice changes her password, an administrator unblocks
    // Carol and gives Erin a new email.
    let later = chrono::Utc::now().timestamp_millis() + 60_000;
    db.change_password(1, &strapi_hash("alices-new-password", 4), later)
        .await;
    db.sqlite_exec("UPDATE up_users SET blocked = 0 WHERE id = 3")
        .await;
    db.sqlite_exec("UPDATE up_users SET email = 'erin@new.example' WHERE id = 5")
        .await;

    let out = import(&app, &db.url).await;
    assert_exit(&out, 0);
    assert_eq!(
        users_line(&out),
        "users: 0 imported, 3 updated, 2 unchanged, 1 kept (changed in Keyway since), \
         0 conflicting, 0 invalid (6 in the Strapi 4 database)"
    );
    // Alice's password is Strapi's new one, and as after a password change in Keyway her sessions
    // ended (the server learns of it from the invalidation log within half a second).
    login_ok(&app, "alice", "alices-new-password").await;
    let res = app.login("alice", &password_of("alice")).await;
    assert_invalid_login(res).await;
    let mut status = app.me(&alice_jwt).await.status();
    for _ in 0..60 {
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = app.me(&alice_jwt).await.status();
    }
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "her old session still works"
    );
    login_ok(&app, "carol", &password_of("carol")).await;
    // Erin has Strapi's new email and keeps the password she chose in Keyway.
    let erin = login_ok(&app, "erin@new.example", "erins-keyway-passphrase").await;
    assert_eq!(erin["user"]["id"], 5);
    // Strapi changed nothing of Bob's: Keyway's block and argon2id hash stay.
    let res = app.login("bob", &password_of("bob")).await;
    assert_error(
        res,
        400,
        "ApplicationError",
        "Your account has been blocked by an administrator",
    )
    .await;
    assert_eq!(stored_hash(&app, 2).await.unwrap(), bobs_argon2);

    let again = import(&app, &db.url).await;
    assert_exit(&again, 0);
    assert!(
        users_line(&again).starts_with("users: 0 imported, 0 updated"),
        "{}",
        stdout(&again)
    );
}

// ---- Strapi 5 documents ----

#[tokio::test]
async fn a_strapi_5_document_with_draft_and_published_rows_is_imported_once() {
    for db in [
        StrapiDb::sqlite(Strapi::V5).await,
        StrapiDb::postgres(Strapi::V5).await,
    ] {
        let app = keyway().await;
        let db = db.with_roles().await;
        // Fay's document: a draft edited after publishing (another password), then the published
        // row. Strapi's API, and its tokens, know the published one.
        let fays_hash = strapi_hash(&password_of("fay"), 4);
        let fay_row = |id: i64, published: bool, hash: &str, updated_at: i64| StrapiUser {
            document_id: Some("fayfayfayfayfayfayfayfay".into()),
            published,
            password: Some(hash.to_owned()),
            updated_at,
            role: Some(3),
            ..StrapiUser::new(id, "fay")
        };
        let draft_hash = strapi_hash("fays-draft-password", 4);
        db.user(&fay_row(10, false, &draft_hash, UPDATED + 5_000))
            .await;
        db.user(&fay_row(11, true, &fays_hash, UPDATED)).await;
        // Gus was only ever a draft: his latest row counts.
        let gus = |id: i64, updated_at: i64| StrapiUser {
            document_id: Some("gusgusgusgusgusgusgusgus".into()),
            published: false,
            updated_at,
            ..StrapiUser::new(id, "gus")
        };
        db.user(&gus(12, UPDATED)).await;
        db.user(&StrapiUser {
            email: Some("gus.new@example.com".into()),
            ..gus(13, UPDATED + 1_000)
        })
        .await;

        let out = import(&app, &db.url).await;
        assert_exit(&out, 0);
        assert!(
            users_line(&out).contains(
                "users: 2 imported, 0 updated, 0 unchanged, 0 kept (changed in Keyway since), \
                 0 conflicting, 0 invalid (2 in the Strapi 5 database; 2 draft or superseded rows"
            ),
            "{}",
            stdout(&out)
        );
        assert_eq!(app.auth.admin().list_users().await.unwrap().len(), 2);
        let body = login_ok(&app, "fay", &password_of("fay")).await;
        let fay = me(&app, body["jwt"].as_str().unwrap()).await;
        assert_eq!(fay["id"], 11, "the published row's id: {fay}");
        assert_eq!(fay["documentId"], "fayfayfayfayfayfayfayfay");
        assert_eq!(fay["role"]["type"], "editor");
        let res = app.login("fay", "fays-draft-password").await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let gus = login_ok(&app, "gus", &password_of("gus")).await;
        assert_eq!(gus["user"]["id"], 13);
        assert_eq!(gus["user"]["email"], "gus.new@example.com");

        // Both logged in, so both hashes are now Keyway's argon2id: a re-run keeps them.
        wait_for_argon2(&app, 11).await;
        wait_for_argon2(&app, 13).await;
        let again = import(&app, &db.url).await;
        assert_exit(&again, 0);
        assert!(
            users_line(&again)
                .contains("0 imported, 0 updated, 0 unchanged, 2 kept (changed in Keyway since)"),
            "{}",
            stdout(&again)
        );

        // Strapi publishes Fay again: her published row is re-created under a new id, with the same
        // values. Her account is found by its document and keeps its id.
        db.delete_v5_user(11).await;
        db.user(&fay_row(14, true, &fays_hash, UPDATED + 9_000))
            .await;
        for _ in 0..2 {
            let out = import(&app, &db.url).await;
            assert_exit(&out, 0);
            assert!(
                users_line(&out).starts_with("users: 0 imported, 0 updated"),
                "{}",
                stdout(&out)
            );
        }
        let fay = login_ok(&app, "fay", &password_of("fay")).await;
        assert_eq!(fay["user"]["id"], 11);
    }
}

// ---- conflicts ----

#[tokio::test]
async fn a_username_or_email_taken_in_the_other_column_is_a_conflict() {
    let app = keyway().await;
    // Carol (id 1, carol@example.com), and an account whose username is an address.
    app.create_user("carol", |_| {}).await;
    app.auth
        .admin()
        .create_user(keyway::auth::admin::AdminNewUser {
            username: keyway::domain::Username::parse("dan@example.org").unwrap(),
            email: keyway::domain::Email::parse("dan@keyway.test").unwrap(),
            password: keyway::domain::Password::parse(&password_of("dan")).unwrap(),
            role: None,
            confirmed: true,
            blocked: false,
        })
        .await
        .unwrap();
    let db = StrapiDb::sqlite(Strapi::V4).await.with_roles().await;
    // A username that is Carol's email, but for case (ASCII-folded, as at registration).
    db.user(&StrapiUser {
        username: Some("Carol@Example.com".into()),
        ..StrapiUser::new(7, "c7")
    })
    .await;
    db.user(&StrapiUser {
        email: Some("dan@example.org".into()),
        ..StrapiUser::new(8, "d8")
    })
    .await;
    let out = import(&app, &db.url).await;
    assert_exit(&out, 3);
    let text = stdout(&out);
    for said in [
        "username 'Carol@Example.com' is the email of Keyway account 1 ('carol')",
        "email 'dan@example.org' is the username of Keyway account 2 ('dan@example.org')",
    ] {
        assert!(text.contains(said), "{said}: {text}");
    }
}

#[tokio::test]
async fn accounts_made_in_keyway_are_reported_never_overwritten() {
    let app = keyway().await;
    // Keyway's own Alice, made before the import: she holds id 1 and the name alice.
    app.create_user("alice", |_| {}).await;
    let db = StrapiDb::sqlite(Strapi::V4).await.with_roles().await;
    db.user(&StrapiUser::new(1, "zed")).await;
    db.user(&StrapiUser {
        email: Some("alice@strapi.example".into()),
        ..StrapiUser::new(2, "alice")
    })
    .await;
    db.user(&StrapiUser {
        email: Some("Frank@Example.com".into()),
        ..StrapiUser::new(3, "frank")
    })
    .await;
    // Strapi compared emails as typed; Keyway lower-cases them, so this one now collides.
    db.user(&StrapiUser {
        email: Some("frank@example.com".into()),
        ..StrapiUser::new(4, "frankie")
    })
    .await;
    db.user(&StrapiUser::new(5, "hana")).await;
    db.user(&StrapiUser {
        username: None,
        ..StrapiUser::new(6, "nameless")
    })
    .await;

    for run in ["first", "second"] {
        let out = import(&app, &db.url).await;
        assert_exit(&out, 3);
        let text = stdout(&out);
        assert!(
            text.contains(
                "conflict: Strapi user 1 'zed' <zed@example.com>: its id 1 belongs to Keyway \
                 account 'alice'"
            ),
            "{run}: {text}"
        );
        assert!(
            text.contains(
                "conflict: Strapi user 2 'alice' <alice@strapi.example>: username 'alice' \
                 belongs to Keyway account 1 ('alice')"
            ),
            "{run}: {text}"
        );
        assert!(
            text.contains(
                "conflict: Strapi user 4 'frankie' <frank@example.com>: email \
                 'frank@example.com' belongs to Keyway account 3 ('frank')"
            ),
            "{run}: {text}"
        );
        assert!(
            text.contains("invalid: Strapi user 6 '' <nameless@example.com>"),
            "{run}: {text}"
        );
        let (imported, unchanged) = if run == "first" { (2, 0) } else { (0, 2) };
        assert_eq!(
            users_line(&out),
            format!(
                "users: {imported} imported, 0 updated, {unchanged} unchanged, 0 kept (changed in \
                 Keyway since), 3 conflicting, 1 invalid (6 in the Strapi 4 database)"
            ),
            "{run}"
        );
    }
    let out = import(&app, &db.url).await;
    assert!(
        stdout(&out).contains(
            "warning: Strapi ids 1 belong to other Keyway accounts: do not turn on \
             accept_strapi_tokens"
        ),
        "{}",
        stdout(&out)
    );

    // The same Strapi id under another name and email: rather another project's user than Hana.
    db.sqlite_exec(
        "UPDATE up_users SET username = 'someone', email = 'someone@example.com' WHERE id = 5",
    )
    .await;
    let out = import(&app, &db.url).await;
    assert_exit(&out, 3);
    assert!(
        stdout(&out).contains(
            "conflict: Strapi user 5 'someone' <someone@example.com>: it was imported as Keyway \
             account 5 'hana' <hana@example.com>, and both the username and the email differ now"
        ),
        "{}",
        stdout(&out)
    );

    // Keyway's Alice is untouched; Strapi's Alice cannot take her place.
    let alice = login_ok(&app, "alice", &password_of("alice")).await;
    assert_eq!(alice["user"]["email"], "alice@example.com");
    assert!(
        stored_hash(&app, 1)
            .await
            .unwrap()
            .starts_with("$argon2id$")
    );
    login_ok(&app, "frank@example.com", &password_of("frank")).await;
    login_ok(&app, "hana", &password_of("hana")).await;
    assert_eq!(app.auth.admin().list_users().await.unwrap().len(), 3);
}

// ---- tokens Strapi issued ----

#[tokio::test]
async fn tokens_strapi_issued_name_the_same_people_after_the_import() {
    let app = keyway().await;
    let db = standard(StrapiDb::sqlite(Strapi::V4).await).await;
    assert_exit(&import(&app, &db.url).await, 0);
    for (id, name) in [(1, "alice"), (2, "bob"), (5, "erin")] {
        let user = me(&app, &strapi_token_for(id)).await;
        assert_eq!(user["username"], name, "Strapi's token for id {id}: {user}");
    }
    let res = app.me(&strapi_token_for(3)).await;
    assert_error(res, 401, "UnauthorizedError", "Invalid credentials").await;
}

// ---- sources that cannot be used ----

#[tokio::test]
async fn unusable_sources_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let not_strapi = dir.path().join("other.db");
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&not_strapi)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let empty_pg = PgDatabase::create().await;
    let v4_without_links = StrapiDb::sqlite(Strapi::V4).await;
    if let Pool::Sqlite(pool) = &v4_without_links.pool {
        sqlx::raw_sql("DROP TABLE up_users_role_links")
            .execute(pool)
            .await
            .unwrap();
    }
    let not_strapi = not_strapi.display().to_string();
    let cases = [
        (
            "no-such-dir/data.db".to_owned(),
            "cannot open the Strapi database no-such-dir/data.db: no such file",
        ),
        (
            "sqlite://no-such-dir/data.db".to_owned(),
            "cannot open the Strapi database sqlite://no-such-dir/data.db",
        ),
        (
            "mysql://strapi:s3cret@db/strapi".to_owned(),
            "unsupported Strapi database URL 'mysql://strapi:***@db/strapi'",
        ),
        (
            "postgres://strapi:s3cret@127.0.0.1:1/strapi".to_owned(),
            "cannot open the Strapi database postgres://strapi:***@127.0.0.1:1/strapi",
        ),
        (
            not_strapi.clone(),
            "does not look like a Strapi 3, 4 or 5 database: it has neither up_users",
        ),
        (
            empty_pg.url_str().to_owned(),
            "does not look like a Strapi 3, 4 or 5 database",
        ),
        (
            v4_without_links.url.clone(),
            "it has up_users but neither up_users_role_lnk (Strapi 5) nor up_users_role_links",
        ),
    ];
    for (from, message) in cases {
        // Keyway's database is the default, sqlite://keyway.db in the working directory.
        let workdir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyway"));
        cmd.current_dir(workdir.path()).env_clear();
        let out = run(cmd, &["import", "strapi", "--from", &from]).await;
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(err.contains(message), "{from}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
        assert!(
            !workdir.path().join("keyway.db").exists(),
            "{from}: Keyway's database was created"
        );
    }
}

#[tokio::test]
async fn the_source_url_can_come_from_a_file_or_the_environment() {
    let app = keyway().await;
    let db = standard(StrapiDb::sqlite(Strapi::V4).await).await;
    let file = app.dir.path().join("strapi-url");
    std::fs::write(&file, format!("{}\n", db.url)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyway"));
    cmd.current_dir(app.dir.path()).env_clear().env(
        "KEYWAY_DATABASE_URL",
        app.config.database_url.expose_secret(),
    );
    let out = run(
        cmd,
        &[
            "import",
            "strapi",
            "--from-file",
            &file.display().to_string(),
        ],
    )
    .await;
    assert_exit(&out, 0);
    assert!(users_line(&out).starts_with("users: 6 imported"));

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyway"));
    cmd.current_dir(app.dir.path())
        .env_clear()
        .env(
            "KEYWAY_DATABASE_URL",
            app.config.database_url.expose_secret(),
        )
        .env("KEYWAY_IMPORT_FROM", &db.url);
    let out = run(cmd, &["import", "strapi"]).await;
    assert_exit(&out, 0);
    assert!(users_line(&out).contains("6 unchanged"));

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyway"));
    cmd.current_dir(app.dir.path()).env_clear();
    let out = run(cmd, &["import", "strapi"]).await;
    assert_eq!(out.status.code(), Some(2), "no source given: a usage error");
}
