//! The embedded SQLite store: one file, WAL journal, foreign keys on. The default, so `keyway serve`
//! needs nothing else installed.

// The aggregates, each written once in `../sql/` and compiled here for `SqliteStore` (see
// `store/mod.rs`), with what SQLite does its own way beside them.
sql_aggregates!();
mod rotation;
mod throttle;

use super::{
    AppliedMigration, DatabaseSettings, Invalidation, InvalidationFeed, Millis, Pools, RowLock,
    SQLITE_POOL_SIZE, StoreError, StoreResult, db, run_migrations,
};
use sqlx::Transaction;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use std::str::FromStr;
use std::time::Duration;

/// Writes with `RETURNING` are read with `fetch_all`, never `fetch_one` or `fetch_optional`: those stop
/// stepping at the first row, the statement never reports that it is done, and SQLite runs its WAL
/// hook — the automatic checkpoint — only when one does. A workload of such writes alone (the
/// benchmark seeder's account creation) never checkpointed and grew the WAL to 24 GB for a million
/// accounts; `wal_stays_bounded_under_returning_writes` below keeps it from coming back.
///
/// Two pools on one file: readers, which WAL lets run beside a writer, and a single writer
/// connection. SQLite allows one writer at a time anyway; with several writing connections the losers
/// sleep in SQLite's busy handler (1, 2, 5, 10… ms), which under load cut refreshes to a fraction
/// of what one connection does and put 200 ms into the p99. One writer connection turns that into an
/// ordinary async queue.
pub struct SqliteStore {
    /// Readers, which WAL lets run beside the writer, and the one writer connection.
    pools: Pools<sqlx::Sqlite>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies the embedded migrations; returns
    /// the store and what it applied.
    pub async fn open(
        url: &str,
        settings: &DatabaseSettings,
    ) -> StoreResult<(Self, Vec<AppliedMigration>)> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(e.to_string()))?
            .create_if_missing(settings.create_if_missing)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if !is_in_memory(url) {
            let path = options.get_filename();
            if !settings.create_if_missing && !path.exists() {
                return Err(StoreError::Missing(format!(
                    "no database file at {} (run `keyway migrate` to create one, or point \
                     --database-url / KEYWAY_DATABASE_URL at the existing one)",
                    std::path::absolute(path)
                        .unwrap_or_else(|_| path.to_owned())
                        .display()
                )));
            }
            protect_files(path, settings.allow_readable_file)?;
        }
        // The writer first: it creates the file and the schema before any reader looks.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        let applied = migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(settings.pool_size.unwrap_or(SQLITE_POOL_SIZE))
            .connect_with(options)
            .await
            .map_err(db)?;
        let pools = Pools { reader, writer };
        Ok((Self { pools }, applied))
    }
}

/// `sqlite::memory:` and `?mode=memory` URLs: no file to protect.
fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The database file holds the private signing keys: whoever reads it can forge tokens. A new one is
/// created owner-only (0600, whatever the umask) before SQLite opens it, and SQLite gives `-wal` and
/// `-shm` the database file's permissions. An existing file, `-wal` or `-shm` that others may read or
/// write stops start-up with the fix, unless `allow` (the `allow_readable_database` setting).
#[cfg(unix)]
fn protect_files(path: &std::path::Path, allow: bool) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let cannot = |e: std::io::Error| {
        StoreError::Database(format!("cannot create {}: {e}", path.display()).into())
    };
    match created {
        // The mode given to open() is masked by the umask; set it outright.
        Ok(file) => file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(cannot)?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(cannot(e)),
    }
    if allow {
        return Ok(());
    }
    let mut open_to_others = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            open_to_others.push(file.display().to_string());
        }
    }
    if open_to_others.is_empty() {
        return Ok(());
    }
    Err(StoreError::Unprotected(format!(
        "{} can be read by other users of this machine, and the database holds the private \
         signing keys (anyone who reads it can forge tokens). Fix it with: chmod 600 {} \
         (or set allow_readable_database = true, KEYWAY_ALLOW_READABLE_DATABASE=true, to accept it)",
        open_to_others.join(", "),
        open_to_others.join(" ")
    )))
}

#[cfg(not(unix))]
fn protect_files(_: &std::path::Path, _: bool) -> StoreResult<()> {
    Ok(())
}

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

async fn migrate(pool: &SqlitePool) -> StoreResult<Vec<AppliedMigration>> {
    let mut conn = pool.acquire().await.map_err(db)?;
    run_migrations(&MIGRATOR, &mut conn).await
}

// What the files in `../sql/` ask of an engine, under the same names in `postgres/mod.rs`.

/// The engine the files in `../sql/` are compiled for here.
type Engine = SqliteStore;
type Db = sqlx::Sqlite;

/// A SQLite file serves one machine: rate limits and the login throttle stay in memory
/// ([`Store::shared_by_nodes`](super::Store::shared_by_nodes)).
const SHARED_BY_NODES: bool = false;

/// A string as it is bound: SQLite stores any character, NUL included (PostgreSQL cannot; see its
/// `text`).
fn text(s: &str) -> &str {
    s
}

fn opt_text(s: &Option<String>) -> Option<&str> {
    s.as_deref()
}

/// No row locks: the one writer connection already runs every decision that reads before it
/// writes from start to commit before the next begins.
async fn lock(_: &mut Transaction<'_, Db>, _: RowLock, _: i64) -> StoreResult<()> {
    Ok(())
}

/// Nothing to do before an account is inserted under an explicit id: that moves an AUTOINCREMENT
/// table's `sqlite_sequence` up to it, so ids handed out later come after every imported one.
async fn reserve_user_id(_: &Engine, _: i64) -> StoreResult<()> {
    Ok(())
}

/// Appends to the invalidation log inside `tx`; other processes on the same file poll it.
async fn record(
    tx: &mut Transaction<'_, Db>,
    change: &Invalidation,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let (kind, key) = change.parts();
    sqlx::query("INSERT INTO invalidations (kind, key, at) VALUES ($1, $2, $3)")
        .bind(kind)
        .bind(key)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// No push feed: processes sharing the file poll the log.
async fn subscribe(_: &Engine) -> StoreResult<Option<Box<dyn InvalidationFeed>>> {
    Ok(None)
}

/// A role by type, else by name: SQLite's lower() folds ASCII letters only.
const ROLE_BY_NAME_OR_KIND: &str = "SELECT id, name, description, type FROM roles \
     WHERE type = $1 OR lower(name) = lower($1) ORDER BY type = $1 DESC LIMIT 1";

/// Whether an email ($1) or username ($2) is taken in either column.
const IDENTITY_TAKEN: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE email IN ($1, lower($2)) \
     OR username IN ($1, $2))";

/// The signing keys, newest first; keys created in the same millisecond by insertion (rowid).
const SIGNING_KEYS: &str = "SELECT kid, alg, private_der, public_raw, created_at, retired_at \
     FROM signing_keys ORDER BY created_at DESC, rowid DESC";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewUser, UserStore};

    #[tokio::test]
    async fn wal_stays_bounded_under_returning_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let (store, _) = SqliteStore::open(
            &format!("sqlite://{}", path.display()),
            &DatabaseSettings::default(),
        )
        .await
        .unwrap();
        // Each account writes about five pages (the row and three unique indexes): 3,000 of them
        // are some 60 MB of WAL when nothing checkpoints, against SQLite's automatic checkpoint
        // every 1,000 pages (4 MB).
        for n in 0..3_000 {
            store
                .create_user(NewUser {
                    document_id: format!("doc{n:020}"),
                    username: format!("user_{n}"),
                    email: format!("user_{n}@example.com"),
                    provider: "local".into(),
                    password_hash: None,
                    confirmed: true,
                    blocked: false,
                    role_id: 1,
                    created_at: 0,
                })
                .await
                .unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
            .unwrap()
            .len();
        assert!(wal < 16 * 1024 * 1024, "WAL grew to {wal} bytes");
    }
}
