//! Reading a Strapi database: which major version made it, and its users, roles and role links as
//! plain values. This is the one place outside `store` that speaks SQL, because the schema is
//! Strapi's, not Keyway's. The database is opened read-only and read in one snapshot (a single
//! read transaction), so a Strapi that is still running cannot hand us a user whose role link was
//! written after we read the links; nothing here ever writes to it.
//!
//! The three schemas, as Strapi creates them (SQLite and PostgreSQL alike):
//! - Strapi 3 (bookshelf): `users-permissions_user` with a `role` column, `users-permissions_role`.
//! - Strapi 4: `up_users`, `up_roles`, and the link table `up_users_role_links (user_id, role_id)`.
//! - Strapi 5: the same tables with `document_id`, `published_at` and `locale`, and the link table
//!   renamed `up_users_role_lnk`. A document may have a draft and a published row.
//!
//! Columns are read leniently because Strapi's own constraints are: every value may be NULL, a SQLite
//! datetime may be integer milliseconds (what knex makes of a JavaScript `Date`), text (an ISO string,
//! or what a `CURRENT_TIMESTAMP` default writes) or real, and booleans are 0/1. The queries turn all
//! of that into the same column names and types on both engines (a boolean is 0 or 1 on SQLite,
//! which has no other, and sqlx reads that as a `bool`), so each row type derives one decoder.

mod postgres;
mod sqlite;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use crate::store::{Millis, redact_url};

/// The major version of Strapi whose schema a database has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3,
    V4,
    V5,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V3 => "Strapi 3",
            Self::V4 => "Strapi 4",
            Self::V5 => "Strapi 5",
        })
    }
}

/// One row of Strapi's role table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RoleRow {
    pub id: i64,
    /// Strapi 5 only.
    pub document_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Strapi's machine name (`authenticated`, `public`, or one derived from an operator's role name).
    #[sqlx(rename = "type")]
    pub kind: Option<String>,
    /// False only for a Strapi 5 draft row.
    pub published: bool,
    #[sqlx(rename = "updated_ms")]
    pub updated_at: Option<Millis>,
}

/// One row of Strapi's user table. No `Debug`: it carries a password hash.
#[derive(Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    /// Strapi 5 only.
    pub document_id: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub provider: Option<String>,
    /// bcrypt (`$2a$10$…` from bcryptjs), or NULL for accounts of an OAuth provider.
    pub password: Option<String>,
    pub confirmed: bool,
    pub blocked: bool,
    #[sqlx(rename = "created_ms")]
    pub created_at: Option<Millis>,
    #[sqlx(rename = "updated_ms")]
    pub updated_at: Option<Millis>,
    /// False only for a Strapi 5 draft row.
    pub published: bool,
}

/// A user's role: Strapi 3's `role` column, Strapi 4 and 5's link table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct RoleLink {
    pub user_id: i64,
    pub role_id: i64,
}

/// Everything the import needs, read in one snapshot.
pub struct Snapshot {
    pub version: Version,
    pub roles: Vec<RoleRow>,
    /// Ordered by id.
    pub users: Vec<UserRow>,
    /// Ordered by user, then role.
    pub links: Vec<RoleLink>,
}

/// Why a source could not be read. Nothing has been written when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "unsupported Strapi database URL '{0}': give a SQLite file (a path, or sqlite://PATH) or \
         postgres://USER@HOST/DATABASE"
    )]
    UnsupportedUrl(String),
    #[error("cannot open the Strapi database {url}: {cause}")]
    Open { url: String, cause: String },
    #[error(
        "{url} does not look like a Strapi 3, 4 or 5 database: {detail} (SQLite and PostgreSQL \
         databases are supported; on PostgreSQL the tables are looked up in the search_path)"
    )]
    Unrecognised { url: String, detail: String },
    #[error("cannot read the Strapi database {url}: {cause}")]
    Read { url: String, cause: String },
}

/// How one engine spells the few expressions the queries need; everything else is the same SQL.
pub(super) struct Dialect {
    /// The names of the tables the connection sees.
    tables: &'static str,
    /// An integer column as Keyway's `i64` (PostgreSQL's `serial` is a 32-bit INTEGER).
    int: fn(&str) -> String,
    /// A NULL of the text and of the integer columns (PostgreSQL wants the type of a bare NULL).
    null_text: &'static str,
    null_int: &'static str,
    /// True, for "published" in the schemas without drafts.
    yes: &'static str,
    /// Milliseconds since the epoch from a datetime column, NULL when unreadable.
    millis: fn(&str) -> String,
    /// A boolean column; NULL (never set) is false, as Strapi reads it.
    flag: fn(&str) -> String,
    /// True for a published Strapi 5 row, false for a draft (which has no `published_at`).
    published: &'static str,
}

/// The three queries of a snapshot.
struct Queries {
    users: String,
    roles: String,
    links: String,
}

/// The queries that read `version`'s schema, in `d`'s spelling, with the columns [`UserRow`],
/// [`RoleRow`] and [`RoleLink`] are read from.
fn queries(version: Version, d: &Dialect) -> Queries {
    // Strapi 3 keeps a user's role in a `role` column; 4 and 5 in a link table, renamed in 5.
    let (users, roles, link_table) = match version {
        Version::V3 => (
            "\"users-permissions_user\"",
            "\"users-permissions_role\"",
            None,
        ),
        Version::V4 => ("up_users", "up_roles", Some("up_users_role_links")),
        Version::V5 => ("up_users", "up_roles", Some("up_users_role_lnk")),
    };
    let (document_id, published) = match version {
        Version::V5 => ("document_id", d.published),
        Version::V3 | Version::V4 => (d.null_text, d.yes),
    };
    // Strapi 3 roles have no timestamps.
    let role_updated = match version {
        Version::V3 => d.null_int.to_owned(),
        Version::V4 | Version::V5 => (d.millis)("updated_at"),
    };
    let links = match link_table {
        None => format!(
            "SELECT {} AS user_id, {} AS role_id FROM {users} WHERE role IS NOT NULL ORDER BY id",
            (d.int)("id"),
            (d.int)("role"),
        ),
        Some(table) => format!(
            "SELECT {} AS user_id, {} AS role_id FROM {table} \
             WHERE user_id IS NOT NULL AND role_id IS NOT NULL ORDER BY user_id, role_id",
            (d.int)("user_id"),
            (d.int)("role_id"),
        ),
    };
    Queries {
        users: format!(
            "SELECT {} AS id, {document_id} AS document_id, username, email, provider, password, \
             {} AS confirmed, {} AS blocked, {} AS created_ms, {} AS updated_ms, \
             {published} AS published FROM {users} ORDER BY id",
            (d.int)("id"),
            (d.flag)("confirmed"),
            (d.flag)("blocked"),
            (d.millis)("created_at"),
            (d.millis)("updated_at"),
        ),
        roles: format!(
            "SELECT {} AS id, {document_id} AS document_id, name, description, type, \
             {published} AS published, {role_updated} AS updated_ms FROM {roles} ORDER BY id",
            (d.int)("id"),
        ),
        links,
    }
}

/// Recognises the Strapi version of the database behind `$tx` (an open read transaction) and reads
/// it in `$dialect`'s spelling: a macro, not a function, because the two engines' transactions are
/// different types.
macro_rules! read_snapshot {
    ($tx:expr, $dialect:expr, $shown:expr) => {
        async {
            use sqlx::AssertSqlSafe;
            let d: &Dialect = $dialect;
            let shown: &str = $shown;
            let read_err = |e: sqlx::Error| SourceError::Read {
                url: shown.to_owned(),
                cause: e.to_string(),
            };
            let names: Vec<String> = sqlx::query_scalar(d.tables)
                .fetch_all(&mut *$tx)
                .await
                .map_err(read_err)?;
            let version = recognise(&names.into_iter().collect(), shown)?;
            let q = queries(version, d);
            let users = sqlx::query_as(AssertSqlSafe(q.users))
                .fetch_all(&mut *$tx)
                .await
                .map_err(read_err)?;
            let roles = sqlx::query_as(AssertSqlSafe(q.roles))
                .fetch_all(&mut *$tx)
                .await
                .map_err(read_err)?;
            let links = sqlx::query_as(AssertSqlSafe(q.links))
                .fetch_all(&mut *$tx)
                .await
                .map_err(read_err)?;
            Ok::<_, SourceError>(Snapshot {
                version,
                roles,
                users,
                links,
            })
        }
        .await
    };
}

/// Opens the database `url` names read-only, recognises its Strapi version and reads it.
pub async fn read(url: &str) -> Result<Snapshot, SourceError> {
    let shown = redact_url(url);
    let read_err = |e: sqlx::Error| SourceError::Read {
        url: shown.clone(),
        cause: e.to_string(),
    };
    match Engine::of(url)? {
        Engine::Sqlite(options) => {
            let mut conn = options.connect().await.map_err(|e| open_error(&shown, e))?;
            // A read transaction is SQLite's snapshot: with WAL, writes Strapi commits meanwhile stay
            // invisible until it ends.
            let mut tx = conn.begin().await.map_err(read_err)?;
            let snapshot = read_snapshot!(tx, &sqlite::DIALECT, &shown)?;
            // Read-only: ending the snapshot is all a rollback does.
            let _ = tx.rollback().await;
            let _ = conn.close().await;
            Ok(snapshot)
        }
        Engine::Postgres(options) => {
            let mut conn = options.connect().await.map_err(|e| open_error(&shown, e))?;
            let mut tx = conn.begin().await.map_err(read_err)?;
            // One snapshot for every query of the transaction (READ COMMITTED takes one per query).
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(read_err)?;
            let snapshot = read_snapshot!(tx, &postgres::DIALECT, &shown)?;
            let _ = tx.rollback().await;
            let _ = conn.close().await;
            Ok(snapshot)
        }
    }
}

fn open_error(shown: &str, e: sqlx::Error) -> SourceError {
    SourceError::Open {
        url: shown.to_owned(),
        cause: e.to_string(),
    }
}

enum Engine {
    Sqlite(SqliteConnectOptions),
    Postgres(PgConnectOptions),
}

impl Engine {
    fn of(url: &str) -> Result<Self, SourceError> {
        let unsupported = || SourceError::UnsupportedUrl(redact_url(url));
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        let sqlite = |options: SqliteConnectOptions| {
            // Read-only and never created: a mistyped path must be an error, not a new empty file.
            Self::Sqlite(options.read_only(true).create_if_missing(false))
        };
        match scheme {
            "postgres" | "postgresql" => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|_| unsupported())?
                    .application_name("keyway import")
                    // Belt and braces: the import never writes to Strapi's database.
                    .options([("default_transaction_read_only", "on")]);
                Ok(Self::Postgres(options))
            }
            "sqlite" => Ok(sqlite(
                SqliteConnectOptions::from_str(url).map_err(|_| unsupported())?,
            )),
            // A bare path, such as Strapi's default `.tmp/data.db`. Taken as a file name, not parsed
            // as a URL, so any character a file name may hold works.
            _ if !url.contains("://") && !url.is_empty() => {
                if !std::path::Path::new(url).is_file() {
                    return Err(SourceError::Open {
                        url: url.to_owned(),
                        cause: "no such file".into(),
                    });
                }
                Ok(sqlite(SqliteConnectOptions::new().filename(url)))
            }
            _ => Err(unsupported()),
        }
    }
}

/// The Strapi version whose tables are present; the newest wins when an upgraded database kept
/// older tables.
fn recognise(tables: &HashSet<String>, shown: &str) -> Result<Version, SourceError> {
    let has = |t: &str| tables.contains(t);
    let unrecognised = |detail: &str| SourceError::Unrecognised {
        url: shown.to_owned(),
        detail: detail.to_owned(),
    };
    if has("up_users") {
        if !has("up_roles") {
            return Err(unrecognised("it has up_users but no up_roles"));
        }
        if has("up_users_role_lnk") {
            return Ok(Version::V5);
        }
        if has("up_users_role_links") {
            return Ok(Version::V4);
        }
        return Err(unrecognised(
            "it has up_users but neither up_users_role_lnk (Strapi 5) nor up_users_role_links \
             (Strapi 4)",
        ));
    }
    if has("users-permissions_user") {
        if has("users-permissions_role") {
            return Ok(Version::V3);
        }
        return Err(unrecognised(
            "it has users-permissions_user but no users-permissions_role",
        ));
    }
    Err(unrecognised(
        "it has neither up_users (Strapi 4 and 5) nor users-permissions_user (Strapi 3)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_tables_present_say_which_strapi_made_the_database() {
        let v = |names: &[&str]| recognise(&tables(names), "db").ok();
        assert_eq!(
            v(&["up_users", "up_roles", "up_users_role_lnk"]),
            Some(Version::V5)
        );
        assert_eq!(
            v(&["up_users", "up_roles", "up_users_role_links"]),
            Some(Version::V4)
        );
        // An upgraded database that kept Strapi 4's link table is read as what it is now.
        assert_eq!(
            v(&[
                "up_users",
                "up_roles",
                "up_users_role_links",
                "up_users_role_lnk"
            ]),
            Some(Version::V5)
        );
        assert_eq!(
            v(&["users-permissions_user", "users-permissions_role"]),
            Some(Version::V3)
        );
        for not_strapi in [
            &["users", "roles"][..],
            &["up_users"],
            &["users-permissions_user"],
            &[],
        ] {
            assert!(
                matches!(
                    recognise(&tables(not_strapi), "db"),
                    Err(SourceError::Unrecognised { .. })
                ),
                "{not_strapi:?}"
            );
        }
    }

    #[test]
    fn only_sqlite_and_postgres_urls_are_sources() {
        assert!(matches!(
            Engine::of("postgres://u:secret@db/strapi"),
            Ok(Engine::Postgres(_))
        ));
        assert!(matches!(
            Engine::of("sqlite://.tmp/data.db"),
            Ok(Engine::Sqlite(_))
        ));
        match Engine::of("mysql://strapi:secret@db/strapi") {
            Err(e @ SourceError::UnsupportedUrl(_)) => {
                let message = e.to_string();
                assert!(
                    message.contains("mysql://strapi:***@db/strapi"),
                    "{message}"
                );
                assert!(!message.contains("secret"), "{message}");
            }
            _ => panic!("mysql is not a source"),
        }
        assert!(matches!(
            Engine::of("/no/such/strapi.db"),
            Err(SourceError::Open { .. })
        ));
        assert!(matches!(
            Engine::of(""),
            Err(SourceError::UnsupportedUrl(_))
        ));
    }
}
