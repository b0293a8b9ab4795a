//! Fresh databases for tests: which engine the HTTP suite runs on, and a PostgreSQL database of its
//! own for each test that needs one.
//!
//! PostgreSQL is found at `KEYWAY_TEST_POSTGRES_URL` (default [`DEFAULT_POSTGRES_URL`]); every test
//! database is created there with a random name and dropped when the test lets go of it. A test that
//! needs PostgreSQL and cannot reach it fails, saying so: a skipped backend would look like a pass.

use secrecy::SecretString;
use sqlx::Connection;
use std::time::{SystemTime, UNIX_EPOCH};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Test databases are named `keyway_test_<unix seconds>_<random>`; ones older than this are left-overs
/// of a run that was killed before it could drop them, and are dropped by the next run.
const STALE_AFTER_SECS: u64 = 3600;
const PREFIX: &str = "keyway_test_";

/// The engine the HTTP suite runs on: `KEYWAY_TEST_BACKEND=postgres`, or SQLite (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_env() -> Self {
        match std::env::var("KEYWAY_TEST_BACKEND").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Self::Sqlite,
            Ok("postgres") => Self::Postgres,
            Ok(other) => panic!("KEYWAY_TEST_BACKEND={other}: use sqlite (default) or postgres"),
        }
    }
}

/// The server test databases are created on (its own database is only used to create and drop them).
pub fn postgres_base_url() -> String {
    std::env::var("KEYWAY_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// A PostgreSQL database that exists for one test. Dropping it drops the database (best effort:
/// a failure is printed, and a killed run's databases are swept by the next one).
pub struct PgDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let admin_url = postgres_base_url();
        let mut admin = admin_connection(&admin_url).await;
        sweep_stale(&mut admin).await;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let name = format!("{PREFIX}{secs}_{:016x}", rand::random::<u64>());
        // The name is ours (digits, hex, underscores): safe to splice into the statement.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("KEYWAY_TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        Self {
            url: url.to_string(),
            name,
            admin_url,
        }
    }

    pub fn url(&self) -> SecretString {
        SecretString::from(self.url.clone())
    }

    pub fn url_str(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on from within; a thread with
        // a runtime of its own does the async work, and joining it keeps the test from ending (and
        // the process from exiting) before the database is gone.
        let (name, admin_url) = (self.name.clone(), self.admin_url.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping a test database");
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                // FORCE ends the connections the test's app may still hold.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop test database {}: panicked", self.name),
        }
    }
}

async fn admin_connection(url: &str) -> sqlx::PgConnection {
    match sqlx::PgConnection::connect(url).await {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL is not reachable at {} ({e}). These tests need it: run ./scripts/test.sh, \
             which starts one on 127.0.0.1:5432, or point KEYWAY_TEST_POSTGRES_URL at a server \
             where this user may create databases.",
            keyway::store::redact_url(url)
        ),
    }
}

/// Drops test databases a killed run left behind. Only old ones: a younger one may belong to a test
/// running right now in another process.
async fn sweep_stale(admin: &mut sqlx::PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE starts_with(datname, 'keyway_test_')",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for name in names {
        let created: Option<u64> = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse().ok());
        let safe = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if safe && created.is_some_and(|t| now.saturating_sub(t) > STALE_AFTER_SECS) {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut *admin)
            .await;
        }
    }
}
