//! The PostgreSQL store, for several nodes sharing one database. Same schema and same semantics as
//! the SQLite store (`sqlite.rs`): read the two side by side. Where SQLite gets atomicity for free
//! (one writer at a time), this file says how it gets the same guarantee from row locks, conditional
//! updates and one advisory lock — PostgreSQL runs transactions concurrently at READ COMMITTED.

mod audit;

mod invalidations;

mod keys;

mod codes;

mod limits;

mod sso;

mod sessions;

mod users;

use super::{
    AppliedMigration, DatabaseSettings, Millis, POSTGRES_POOL_SIZE, SslMode, Store, StoreError,
    StoreResult, applied_versions, db, newly_applied,
};
use async_trait::async_trait;
use invalidations::record;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};

use std::borrow::Cow;
use std::str::FromStr;

pub struct PgStore {
    pool: PgPool,
}

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
    /// nodes starting together apply each migration once).
    pub async fn connect(url: &str, settings: &DatabaseSettings) -> StoreResult<Self> {
        Ok(Self::open(url, settings).await?.0)
    }

    /// [`connect`](Self::connect), also returning the migrations it applied.
    pub(super) async fn open(
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
        Ok((Self { pool }, applied))
    }
}

async fn migrate(pool: &PgPool) -> StoreResult<Vec<AppliedMigration>> {
    // On failure this connection may still hold sqlx's session-level migration lock; that is harmless
    // because a failed migration fails `open`, and the pool goes with it.
    let mut conn = pool.acquire().await.map_err(db)?;
    // Migrations are exempt from the statement timeout: building an index on a big table, or waiting
    // for another node's migration lock, may rightly take longer than any request should.
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let before = applied_versions(&mut *conn).await?;
    MIGRATOR
        .run(&mut *conn)
        .await
        .map_err(|e| StoreError::Database(Box::new(e)))?;
    // Back to the configured value (RESET returns to what the connection started with).
    sqlx::query("RESET statement_timeout")
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(newly_applied(&MIGRATOR, &before))
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn prune(
        &self,
        sessions_before: Millis,
        invalidations_before: Millis,
    ) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM sessions WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)",
        )
        .bind(sessions_before)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        for sql in [
            "DELETE FROM one_time_codes WHERE expires_at < $1",
            "DELETE FROM sso_states WHERE expires_at < $1",
        ] {
            sqlx::query(sql)
                .bind(sessions_before)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        }
        sqlx::query("DELETE FROM invalidations WHERE at < $1")
            .bind(invalidations_before)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        // Throttle state: windows and failures older than a day count for nothing (the longest
        // window is an hour), trust that ended a day ago is gone.
        for sql in [
            "DELETE FROM rate_windows WHERE started < $1",
            "DELETE FROM throttle_buckets WHERE last_at < $1",
            "DELETE FROM trusted_clients WHERE until < $1",
        ] {
            sqlx::query(sql)
                .bind(invalidations_before)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    fn shared_by_nodes(&self) -> bool {
        true
    }
}
