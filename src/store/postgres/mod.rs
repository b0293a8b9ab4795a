//! The PostgreSQL store, for several nodes sharing one database. Same schema and same semantics as
//! the SQLite store, with the same queries (`../sql/`). Where SQLite gets atomicity for free (one
//! writer at a time), PostgreSQL runs transactions concurrently at READ COMMITTED: this module, with
//! `rotation.rs`, `throttle.rs` and `feed.rs`, says how it gets the same guarantees from row locks,
//! conditional updates and one advisory lock.

// The aggregates, each written once in `../sql/` and compiled here for `PgStore` (see
// `store/mod.rs`), with what PostgreSQL does its own way beside them.
sql_aggregates!();
mod feed;
mod rotation;
mod throttle;

use super::{
    AppliedMigration, DatabaseSettings, POSTGRES_POOL_SIZE, Pools, RowLock, SslMode, StoreError,
    StoreResult, db, run_migrations,
};
use feed::{record, subscribe};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use store::Run;

use std::borrow::Cow;
use std::str::FromStr;

pub struct PgStore {
    /// One pool for reads and writes: transactions run concurrently, and the row locks below, the
    /// conditional updates and the invalidation log's advisory lock keep them apart where it matters.
    pools: Pools<sqlx::Postgres>,
}

// What the files in `../sql/` ask of an engine, under the same names in `sqlite/mod.rs`.

/// The engine the files in `../sql/` are compiled for here.
type Engine = PgStore;
type Db = sqlx::Postgres;

/// Several nodes may share the database: rate limits and the login throttle keep their state in it
/// ([`Store::shared_by_nodes`](super::Store::shared_by_nodes)).
const SHARED_BY_NODES: bool = true;

/// PostgreSQL's TEXT cannot hold U+0000, which SQLite stores like any other character and which a
/// client can send (a JSON `"\u0000"` in a device id or a login identifier). Every string bound to a
/// query goes through here, values and lookup keys alike: NUL becomes U+FFFD, so what SQLite would
/// store PostgreSQL stores, what SQLite would match PostgreSQL matches, and no input becomes a
/// database error. The price: NUL and U+FFFD in the same place are the same text here, and a stored
/// NUL reads back as U+FFFD.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn opt_text(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(text)
}

/// Locks `row` with id `id` until `tx` ends, before a decision that reads and then writes: PostgreSQL
/// runs transactions concurrently at READ COMMITTED, and this orders them as SQLite's one writer does.
async fn lock(tx: &mut sqlx::Transaction<'_, Db>, row: RowLock, id: i64) -> StoreResult<()> {
    let sql = match row {
        RowLock::User => "SELECT id FROM users WHERE id = $1 FOR UPDATE",
        RowLock::Role => "SELECT id FROM roles WHERE id = $1 FOR UPDATE",
        // NO KEY UPDATE does not block the user's sessions and codes, whose foreign keys only need
        // KEY SHARE.
        RowLock::UserForCodes => "SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE",
    };
    sqlx::query(sql)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

/// Before an account is inserted under an explicit id (an import keeps Strapi's): unlike SQLite's
/// AUTOINCREMENT, an identity column does not notice explicit ids, so its sequence is moved past this
/// one first, or a later registration would draw it and fail. `users_id_seq` is the name PostgreSQL
/// gives the identity sequence of `users.id` (0001_init.sql). GREATEST never moves it back, so ids
/// already drawn by registrations in flight are never drawn again. setval is not transactional: an
/// insert that then fails leaves a harmless gap.
async fn reserve_user_id(store: &Engine, id: i64) -> StoreResult<()> {
    sqlx::query("SELECT setval('users_id_seq', GREATEST($1, last_value)) FROM users_id_seq")
        .bind(id)
        .run(store.writer())
        .await?;
    Ok(())
}

/// A role by type, else by name. `COLLATE "C"` folds ASCII letters only, exactly as SQLite's lower()
/// does; the database's own collation would also fold others (É → é), and which names match would
/// depend on the engine.
const ROLE_BY_NAME_OR_KIND: &str = "SELECT id, name, description, type FROM roles \
     WHERE type = $1 OR lower(name COLLATE \"C\") = lower($1 COLLATE \"C\") \
     ORDER BY type = $1 DESC LIMIT 1";

/// Whether an email ($1) or username ($2) is taken in either column; ASCII-only lower(), as on
/// SQLite (see [`ROLE_BY_NAME_OR_KIND`]).
const IDENTITY_TAKEN: &str = "SELECT EXISTS (SELECT 1 FROM users \
     WHERE email IN ($1, lower($2 COLLATE \"C\")) OR username IN ($1, $2))";

/// The signing keys, newest first; keys created in the same millisecond by insertion (`seq`,
/// SQLite's rowid).
const SIGNING_KEYS: &str = "SELECT kid, alg, private_der, public_raw, created_at, retired_at \
     FROM signing_keys ORDER BY created_at DESC, seq DESC";

fn ssl_mode(mode: SslMode) -> PgSslMode {
    match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require => PgSslMode::Require,
        SslMode::VerifyCa => PgSslMode::VerifyCa,
        SslMode::VerifyFull => PgSslMode::VerifyFull,
    }
}

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

impl PgStore {
    /// Connects to the database and applies the embedded migrations (under sqlx's advisory lock, so
    /// nodes starting together apply each migration once); returns the store and what it applied.
    pub async fn open(
        url: &str,
        settings: &DatabaseSettings,
    ) -> StoreResult<(Self, Vec<AppliedMigration>)> {
        // The URL's own parameters (sslmode, sslrootcert, options, …) are honoured; the settings only
        // add to them (the configuration refuses an sslmode that contradicts the URL's).
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(e.to_string()))?
            .application_name("keyway");
        if let Some(mode) = settings.ssl_mode {
            options = options.ssl_mode(ssl_mode(mode));
        }
        // Appended after any `options` from the URL, so the setting wins; 0 turns the limit off.
        // Notices stay on the server: sqlx would log each one at INFO, and the only ones Keyway causes
        // are the "already exists, skipping" of the migration bookkeeping at every start.
        options = options.options([
            (
                "statement_timeout",
                settings.statement_timeout.as_millis().to_string(),
            ),
            ("client_min_messages", "warning".to_owned()),
        ]);
        // One direct attempt first, so a server that refuses, rejects the credentials or cannot be
        // resolved is reported with that cause within the bound (see POSTGRES_CONNECT_TIMEOUT).
        let first = tokio::time::timeout(
            super::POSTGRES_CONNECT_TIMEOUT,
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await;
        let first = match first {
            Ok(connected) => connected.map_err(db)?,
            Err(_) => {
                return Err(StoreError::Database(
                    format!(
                        "no answer from the server within {} s (a firewall dropping the \
                         connection, or a wrong host or port)",
                        super::POSTGRES_CONNECT_TIMEOUT.as_secs()
                    )
                    .into(),
                ));
            }
        };
        let _ = sqlx::Connection::close(first).await;
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size.unwrap_or(POSTGRES_POOL_SIZE))
            .connect_with(options)
            .await
            .map_err(db)?;
        let applied = migrate(&pool).await?;
        let pools = Pools {
            reader: pool.clone(),
            writer: pool,
        };
        Ok((Self { pools }, applied))
    }
}

async fn migrate(pool: &PgPool) -> StoreResult<Vec<AppliedMigration>> {
    // On failure this connection may still hold sqlx's session-level migration lock; that is harmless
    // because a failed migration fails `open`, and the pool goes with it.
    let mut conn = pool.acquire().await.map_err(db)?;
    // Migrations are exempt from the statement timeout: building an index on a big table, or waiting
    // for another node's migration lock, may rightly take longer than any request should.
    sqlx::query("SET statement_timeout = 0")
        .run(&mut *conn)
        .await?;
    let applied = run_migrations(&MIGRATOR, &mut conn).await?;
    // Back to the configured value (RESET returns to what the connection started with).
    sqlx::query("RESET statement_timeout")
        .run(&mut *conn)
        .await?;
    Ok(applied)
}
