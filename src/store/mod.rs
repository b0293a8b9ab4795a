//! Persistence. One object-safe trait, [`Store`], that the core talks to; one implementation per
//! database engine. Handlers never see a database type: engine errors become [`StoreError`] here, and a
//! unique-constraint violation becomes [`StoreError::Conflict`] so the core can answer "already taken"
//! without a racy read-then-write.

/// Declares the aggregates written once in `sql/` as modules of the engine module that invokes it
/// (see below). A `#[path]` in a macro resolves against the invoking file, `<engine>/mod.rs`.
macro_rules! sql_aggregates {
    () => {
        #[path = "../sql/audit.rs"]
        mod audit;
        #[path = "../sql/codes.rs"]
        mod codes;
        #[path = "../sql/invalidations.rs"]
        mod invalidations;
        #[path = "../sql/keys.rs"]
        mod keys;
        #[path = "../sql/limits.rs"]
        mod limits;
        #[path = "../sql/sessions.rs"]
        mod sessions;
        #[path = "../sql/sso.rs"]
        mod sso;
        #[path = "../sql/store.rs"]
        mod store;
        #[path = "../sql/users.rs"]
        mod users;
    };
}

mod audit;
mod codes;
mod connect;
mod invalidations;
mod keys;
mod limits;
// One implementation of each aggregate, compiled twice. `sql/<aggregate>.rs` holds
// `impl <Aggregate>Store for Engine` written once; `sqlite/mod.rs` and `postgres/mod.rs` each include
// every such file as a module of their own (`sql_aggregates!()`, above) and define
// `Engine` as their store type. Each copy is type-checked against one concrete engine, so sqlx is
// used as with a single database — no `sqlx::Any` (no timestamps, no UUIDs), no generic
// `DB: sqlx::Database` bounds — and the engines cannot drift apart. Both engines take the same SQL
// text (`$1, $2 …`: sqlx-sqlite reads `$N` as the N-th argument). What does differ is a small surface
// each engine module provides under the same names: `reader()`/`writer()` (SQLite's reader pool and
// one writer connection; PostgreSQL's one pool), `text` (PostgreSQL cannot store NUL), `lock` (row
// locks, PostgreSQL only), `reserve_user_id` (an import's explicit ids), `record` and `subscribe`
// (the invalidation log), `SHARED_BY_NODES`, and the few statements whose text differs. Where the logic itself differs (session rotation, the login throttle, the
// LISTEN feed, connecting) it stays in the engine's own files. Writes with `RETURNING` are read with
// `fetch_all` on both: SQLite needs it (see `SqliteStore`), and PostgreSQL does not mind.
#[allow(
    clippy::duplicate_mod,
    reason = "sql/ is compiled once per engine (above)"
)]
mod postgres;
mod sessions;
pub mod settings;
#[allow(
    clippy::duplicate_mod,
    reason = "sql/ is compiled once per engine (above)"
)]
mod sqlite;
mod sso;
mod users;

pub use audit::{AuditEvent, AuditStore};
pub use codes::{Code, CodePurpose, CodeStore, NewCode};
use connect::run_migrations;
pub use connect::{
    AppliedMigration, DEFAULT_STATEMENT_TIMEOUT, DatabaseSettings, POSTGRES_CONNECT_TIMEOUT,
    POSTGRES_POOL_SIZE, SQLITE_POOL_SIZE, SslMode, connect, migrate, redact_url,
};
pub use invalidations::{
    FeedEvent, FeedState, FeedStatus, Invalidation, InvalidationFeed, InvalidationStore,
};
pub use keys::{KeyStore, StoredKey};
pub use limits::{
    LimitStore, THROTTLE_WINDOW_MS, ThrottleAttempt, ThrottleKeys, ThrottleRule, ThrottleSuccess,
    ThrottleVerdict,
};
pub use postgres::PgStore;
pub use sessions::{RefreshRecord, Revoke, Rotation, Session, SessionStore};
pub use sqlite::SqliteStore;
pub use sso::{Identity, SsoStage, SsoState, SsoStore};
pub use users::{
    HashUpgrade, ImportedAccount, ImportedUser, NewRole, NewUser, RoleRemoval, StrapiState, User,
    UserCredentials, UserRole, UserStore,
};

use async_trait::async_trait;

/// Milliseconds since the Unix epoch. Stored as a 64-bit integer on every engine so that timestamps
/// mean the same thing everywhere and sort cheaply.
pub type Millis = i64;

/// A [`Millis`] as Strapi writes timestamps (`2026-11-26T20:32:17.407Z`): in every API answer and
/// in the admin commands' listings.
pub fn iso(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("unsupported database URL: {0}")]
    UnsupportedUrl(String),
    /// The database's files are open to other local users (the message says how to fix it).
    #[error("{0}")]
    Unprotected(String),
    /// An admin command found no database where the configuration points (the message names it).
    #[error("{0}")]
    Missing(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A row a decision locks before it reads and then writes, where the engine needs row locks for that
/// (PostgreSQL; SQLite's one writer already orders such decisions).
#[derive(Debug, Clone, Copy)]
enum RowLock {
    /// The account, against anything that inserts a row pointing at it (a session), until the
    /// transaction ends.
    User,
    /// The account, against another issuer of its codes; rows pointing at it may still be inserted.
    UserForCodes,
    /// The role, against an assignment of it.
    Role,
}

/// An engine's connections: reads go to `reader`, writes to `writer`. PostgreSQL has one pool for
/// both; SQLite a pool of readers and its one writer connection (see `SqliteStore`). The files in
/// `sql/` reach them through `reader()` and `writer()`, defined once in `sql/store.rs`.
struct Pools<DB: sqlx::Database> {
    reader: sqlx::Pool<DB>,
    writer: sqlx::Pool<DB>,
}

/// An engine error as the store reports it: a unique violation is a [`StoreError::Conflict`] on
/// either engine, anything else a [`StoreError::Database`].
fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(Box::new(e)),
    }
}

#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + CodeStore
    + LimitStore
    + SsoStore
    + KeyStore
    + AuditStore
    + InvalidationStore
    + Send
    + Sync
    + 'static
{
    /// `Ok` when the database answers a trivial query.
    async fn ping(&self) -> StoreResult<()>;

    /// Deletes what can no longer matter: sessions ended before `sessions_before`, invalidations
    /// recorded before `invalidations_before`.
    async fn prune(&self, sessions_before: Millis, invalidations_before: Millis)
    -> StoreResult<()>;

    /// Whether several processes can share this database as one service (PostgreSQL): then rate
    /// limits and login throttling keep their state here, so that adding nodes does not multiply an
    /// attacker's allowance. A SQLite file serves one machine and they stay in memory.
    fn shared_by_nodes(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::iso;

    #[test]
    fn timestamps_use_strapis_format() {
        assert_eq!(iso(1_795_725_137_407), "2026-11-26T20:32:17.407Z");
    }
}
