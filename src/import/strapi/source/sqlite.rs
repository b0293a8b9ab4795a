//! The Strapi schemas on SQLite: datetimes and booleans as knex left them, turned into integers.

use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use super::{RoleLink, RoleRow, Snapshot, UserRow, Version, read_snapshot, role_row, user_row};

/// Milliseconds since the epoch from a SQLite datetime column, whatever Strapi put there: integer
/// milliseconds as they are, a real truncated, digits-only text as a number, other text through
/// julianday (`YYYY-MM-DD HH:MM:SS[.SSS]`, ISO 8601 with `T`, `Z` or an offset). NULL when unreadable.
macro_rules! sqlite_millis {
    ($col:literal) => {
        concat!(
            "(CASE typeof(",
            $col,
            ") WHEN 'integer' THEN ",
            $col,
            " WHEN 'real' THEN CAST(",
            $col,
            " AS INTEGER)",
            " WHEN 'text' THEN CASE WHEN ",
            $col,
            " GLOB '[0-9]*' AND ",
            $col,
            " NOT GLOB '*[^0-9]*'",
            " THEN CAST(",
            $col,
            " AS INTEGER)",
            " ELSE CAST(ROUND((julianday(",
            $col,
            ") - 2440587.5) * 86400000.0) AS INTEGER) END END)"
        )
    };
}

/// A SQLite boolean as 0 or 1; NULL (never set) is false, as Strapi reads it.
macro_rules! sqlite_flag {
    ($col:literal) => {
        concat!(
            "(CASE WHEN ",
            $col,
            " IN (1, '1', 'true', 't') THEN 1 ELSE 0 END)"
        )
    };
}

/// Strapi 5's draft rows have no `published_at`.
macro_rules! sqlite_published {
    () => {
        "(CASE WHEN published_at IS NULL THEN 0 ELSE 1 END)"
    };
}

macro_rules! sqlite_users {
    ($table:literal, $document_id:expr, $published:expr) => {
        concat!(
            "SELECT id, ",
            $document_id,
            " AS document_id, username, email, provider, password, ",
            sqlite_flag!("confirmed"),
            " AS confirmed, ",
            sqlite_flag!("blocked"),
            " AS blocked, ",
            sqlite_millis!("created_at"),
            " AS created_ms, ",
            sqlite_millis!("updated_at"),
            " AS updated_ms, ",
            $published,
            " AS published FROM ",
            $table,
            " ORDER BY id"
        )
    };
}

macro_rules! sqlite_roles {
    ($table:literal, $document_id:expr, $published:expr, $updated:expr) => {
        concat!(
            "SELECT id, ",
            $document_id,
            " AS document_id, name, description, type, ",
            $published,
            " AS published, ",
            $updated,
            " AS updated_ms FROM ",
            $table,
            " ORDER BY id"
        )
    };
}

pub(super) async fn snapshot(
    conn: &mut SqliteConnection,
    version: Version,
) -> Result<Snapshot, sqlx::Error> {
    match version {
        Version::V3 => read_snapshot!(
            conn,
            version,
            (
                sqlite_users!("\"users-permissions_user\"", "NULL", "1"),
                // Strapi 3 roles have no timestamps.
                sqlite_roles!("\"users-permissions_role\"", "NULL", "1", "NULL"),
                "SELECT id AS user_id, role AS role_id FROM \"users-permissions_user\" \
                 WHERE role IS NOT NULL ORDER BY id"
            )
        ),
        Version::V4 => read_snapshot!(
            conn,
            version,
            (
                sqlite_users!("up_users", "NULL", "1"),
                sqlite_roles!("up_roles", "NULL", "1", sqlite_millis!("updated_at")),
                "SELECT user_id, role_id FROM up_users_role_links \
                 WHERE user_id IS NOT NULL AND role_id IS NOT NULL ORDER BY user_id, role_id"
            )
        ),
        Version::V5 => read_snapshot!(
            conn,
            version,
            (
                sqlite_users!("up_users", "document_id", sqlite_published!()),
                sqlite_roles!(
                    "up_roles",
                    "document_id",
                    sqlite_published!(),
                    sqlite_millis!("updated_at")
                ),
                "SELECT user_id, role_id FROM up_users_role_lnk \
                 WHERE user_id IS NOT NULL AND role_id IS NOT NULL ORDER BY user_id, role_id"
            )
        ),
    }
}

// ---- PostgreSQL ----
