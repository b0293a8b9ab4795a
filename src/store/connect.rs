//! Opening a database: the settings, the choice of engine by URL, and the migrations bookkeeping
//! both engines share.

use super::{PgStore, SqliteStore, Store, StoreError, StoreResult};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// How to open the database, beyond its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// Most connections the pool keeps; `None` is the engine's default ([`SQLITE_POOL_SIZE`],
    /// [`POSTGRES_POOL_SIZE`]).
    pub pool_size: Option<u32>,
    /// PostgreSQL: the server cancels a statement that runs longer (`statement_timeout`), so a stuck
    /// query frees its connection instead of starving the pool. Zero means no limit. Ignored by SQLite,
    /// whose waits are bounded by its busy timeout.
    pub statement_timeout: Duration,
    /// PostgreSQL: TLS to the server. `None` leaves it to the URL's `sslmode`, else `prefer`.
    pub ssl_mode: Option<SslMode>,
    /// SQLite: open a database file (or its `-wal`, `-shm`) that other local users may read or
    /// write. Off by default: the file holds the private signing keys.
    pub allow_readable_file: bool,
    /// SQLite: create the database file when it does not exist. `serve` and `migrate` do; the admin
    /// commands do not, so one run in the wrong directory reports the missing file instead of
    /// answering from a new, empty database it just made.
    pub create_if_missing: bool,
}

/// SQLite's default pool of readers (writes have one connection of their own). Each connection is a
/// thread of its own in sqlx; on a small machine more of them cost more in thread switches than
/// they gain (bench/: refreshes/s rose from ~2,300 with 8 readers to ~2,700 with 2).
pub const SQLITE_POOL_SIZE: u32 = 2;
/// PostgreSQL: longest the first connection may take. sqlx's pool would retry a refused connection
/// for its whole 30 s acquire timeout and then report only the timeout; one direct attempt under this
/// bound reports the cause (refused, authentication, name resolution) at once.
pub const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// PostgreSQL's default pool: enough for concurrent requests while leaving most of the server's
/// default 100 connections to other nodes and tools.
pub const POSTGRES_POOL_SIZE: u32 = 10;
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            pool_size: None,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            ssl_mode: None,
            allow_readable_file: false,
            create_if_missing: true,
        }
    }
}

/// libpq's `sslmode`, the same names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain otherwise (the default).
    Prefer,
    /// TLS or nothing, without checking the certificate.
    Require,
    /// TLS with a certificate signed by a trusted CA.
    VerifyCa,
    /// TLS with a trusted certificate for the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A migration that `keyway migrate` (or a start) applied to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i64,
    pub description: String,
}

/// The engine a database URL names.
enum Engine {
    /// With the URL SQLite should open (a bare path gets its scheme).
    Sqlite(String),
    Postgres,
}

fn engine_of(url: &str) -> StoreResult<Engine> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" => Ok(Engine::Sqlite(url.to_owned())),
        "postgres" | "postgresql" => Ok(Engine::Postgres),
        _ if !url.contains("://") => Ok(Engine::Sqlite(format!("sqlite://{url}"))),
        other => Err(StoreError::UnsupportedUrl(format!(
            "unknown scheme '{other}'; use sqlite://PATH or postgres://USER@HOST/DATABASE"
        ))),
    }
}

/// Opens the store named by a database URL — `sqlite://path`, `sqlite::memory:`, a bare file path, or
/// `postgres://…` / `postgresql://…` — and applies the pending migrations.
pub async fn connect(
    url: &SecretString,
    settings: &DatabaseSettings,
) -> StoreResult<Arc<dyn Store>> {
    let url = url.expose_secret();
    let opened: StoreResult<Arc<dyn Store>> = match engine_of(url)? {
        Engine::Sqlite(sqlite) => match SqliteStore::open(&sqlite, settings).await {
            Ok((store, _)) => Ok(Arc::new(store)),
            Err(e) => Err(e),
        },
        Engine::Postgres => match PgStore::open(url, settings).await {
            Ok((store, _)) => Ok(Arc::new(store)),
            Err(e) => Err(e),
        },
    };
    opened.map_err(|e| naming(url, e))
}

/// Applies the pending migrations to the database and closes it; returns what was applied (empty when
/// the schema was already current).
pub async fn migrate(
    url: &SecretString,
    settings: &DatabaseSettings,
) -> StoreResult<Vec<AppliedMigration>> {
    let url = url.expose_secret();
    let applied = match engine_of(url)? {
        Engine::Sqlite(sqlite) => SqliteStore::open(&sqlite, settings).await.map(|o| o.1),
        Engine::Postgres => PgStore::open(url, settings).await.map(|o| o.1),
    };
    applied.map_err(|e| naming(url, e))
}

/// A database error that says which database: engine messages ("unable to open database file",
/// "connection refused") do not, and an operator with several configurations needs to know.
fn naming(url: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Database(inner) => {
            StoreError::Database(format!("{}: {inner}", redact_url(url)).into())
        }
        other => other,
    }
}

/// sqlx's bookkeeping table, the one `sqlx::migrate!` uses.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Runs `migrator`'s pending migrations on `conn`; returns what it applied. Each engine calls it with
/// its own migrations, after any preparation of its own.
pub(super) async fn run_migrations<DB>(
    migrator: &sqlx::migrate::Migrator,
    conn: &mut sqlx::pool::PoolConnection<DB>,
) -> StoreResult<Vec<AppliedMigration>>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    let before = applied_versions(&mut **conn).await?;
    migrator
        .run(&mut *conn)
        .await
        .map_err(|e| StoreError::Database(Box::new(e)))?;
    Ok(newly_applied(migrator, &before))
}

/// Versions already recorded as applied. Taken under the migration lock so it cannot race another
/// process creating the bookkeeping table (a no-op lock on SQLite, whose writers are serialized anyway).
async fn applied_versions<C>(conn: &mut C) -> StoreResult<HashSet<i64>>
where
    C: sqlx::migrate::Migrate + ?Sized,
{
    let migrate_err = |e: sqlx::migrate::MigrateError| StoreError::Database(Box::new(e));
    conn.lock().await.map_err(migrate_err)?;
    let listed = match conn.ensure_migrations_table(MIGRATIONS_TABLE).await {
        Ok(()) => conn.list_applied_migrations(MIGRATIONS_TABLE).await,
        Err(e) => Err(e),
    };
    conn.unlock().await.map_err(migrate_err)?;
    Ok(listed
        .map_err(migrate_err)?
        .into_iter()
        .map(|m| m.version)
        .collect())
}

/// The up-migrations of `migrator` missing from `before`: what a run that started from `before` applied.
fn newly_applied(
    migrator: &sqlx::migrate::Migrator,
    before: &HashSet<i64>,
) -> Vec<AppliedMigration> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !before.contains(&m.version))
        .map(|m| AppliedMigration {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect()
}

/// The URL with any password replaced by `***`, for logs and the start-up line.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Engine, StoreError, engine_of, redact_url};

    #[test]
    fn the_url_scheme_chooses_the_engine() {
        for pg in [
            "postgres://u@db/k",
            "postgresql://u:p@db:5432/k?sslmode=require",
        ] {
            assert!(matches!(engine_of(pg), Ok(Engine::Postgres)), "{pg}");
        }
        let sqlite = |url: &str| match engine_of(url) {
            Ok(Engine::Sqlite(u)) => u,
            _ => panic!("{url} is not SQLite"),
        };
        assert_eq!(sqlite("sqlite://keyway.db"), "sqlite://keyway.db");
        assert_eq!(sqlite("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(sqlite("data/keyway.db"), "sqlite://data/keyway.db");
        assert!(matches!(
            engine_of("mysql://u@db/k"),
            Err(StoreError::UnsupportedUrl(m)) if m.contains("mysql")
        ));
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/keyway"),
            "postgres://app:***@db:5432/keyway"
        );
        assert_eq!(
            redact_url("postgres://app@db/keyway"),
            "postgres://app@db/keyway"
        );
        assert_eq!(redact_url("sqlite://keyway.db"), "sqlite://keyway.db");
        assert_eq!(redact_url("keyway.db"), "keyway.db");
        assert_eq!(
            redact_url("postgres://u:p@ss@host/db?sslmode=require"),
            "postgres://u:***@host/db?sslmode=require"
        );
    }
}
