//! The database settings, declared once: which database, how it is opened, and how often the
//! invalidation log is read. Validated into the URL and [`DatabaseSettings`] that `connect` takes.

use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;

use super::{DEFAULT_STATEMENT_TIMEOUT, DatabaseSettings, SslMode};
use crate::settings::{Checked, Dur, Invalid, at_least_one, secret, section};

section! {
    /// The database section.
    pub struct DatabaseSection {
        /// Database URL: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB.
        database_url: String = "sqlite://keyway.db".into(); Global, "`sqlite://keyway.db`";
        /// File holding the database URL (for URLs with a password).
        database_url_file: Option<PathBuf> = None; Global, "—";
        /// Most database connections kept open.
        database_pool_size: Option<u32> = None; Global, "`2` (SQLite), `10` (PostgreSQL)";
        /// PostgreSQL: longest a statement may run before the server cancels it (0 is no limit).
        database_statement_timeout: Dur = Dur(DEFAULT_STATEMENT_TIMEOUT); Global, "`30s`";
        /// PostgreSQL: TLS mode, as libpq's sslmode.
        database_sslmode: Option<SslMode> = None; Global, "the URL's `sslmode`, else `prefer`";
        /// SQLite: start even when other local users may read the database file (it holds the
        /// signing keys, so start-up stops and says `chmod 600 FILE`).
        allow_readable_database: bool = false; Global, "`false`";
        /// How often to read the invalidation log for other processes' changes.
        invalidation_poll: Dur = Dur(Duration::from_millis(500)); Serve, "`500ms`";
    }
}

/// The database as the settings describe it.
pub struct Database {
    pub url: SecretString,
    pub settings: DatabaseSettings,
    /// How often a server reads the invalidation log for changes other processes made.
    pub invalidation_poll: Duration,
}

impl DatabaseSection {
    pub fn validate(self) -> Checked<Database> {
        // The *_FILE setting wins over the URL itself, as for every secret.
        let url = secret(
            Some(self.database_url),
            "database_url_file",
            self.database_url_file.as_deref(),
        )?
        .unwrap_or_default();
        if let Some(mode) = self.database_sslmode
            && let Some(in_url) = url_sslmode(&url)
            && in_url != mode.as_str()
        {
            // Two answers to one question would leave the reader guessing which one is in force.
            return Err(Invalid::new(
                "database_sslmode",
                format!(
                    "is {} but the database URL says sslmode={in_url}; set one of them",
                    mode.as_str()
                ),
            ));
        }
        let pool_size = match self.database_pool_size {
            Some(n) => Some(at_least_one("database_pool_size", n, "")?),
            None => None,
        };
        Ok(Database {
            url: SecretString::from(url),
            settings: DatabaseSettings {
                pool_size,
                // Zero is allowed here, unlike the other durations: it is PostgreSQL's "no limit".
                statement_timeout: self.database_statement_timeout.0,
                ssl_mode: self.database_sslmode,
                allow_readable_file: self.allow_readable_database,
                ..DatabaseSettings::default()
            },
            invalidation_poll: self.invalidation_poll.positive("invalidation_poll")?,
        })
    }
}

/// The `sslmode` (or sqlx's `ssl-mode`) parameter of a PostgreSQL URL, lower-cased.
fn url_sslmode(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return None;
    }
    parsed
        .query_pairs()
        .find(|(k, _)| k == "sslmode" || k == "ssl-mode")
        .map(|(_, v)| v.to_ascii_lowercase())
}
