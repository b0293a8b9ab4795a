//! The Strapi schemas on PostgreSQL: `serial` ids cast to BIGINT, timestamps to milliseconds.

use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::{RoleLink, RoleRow, Snapshot, UserRow, Version, read_snapshot, role_row, user_row};

/// Milliseconds since the epoch from a `timestamp` (Strapi 4 and 5, read as UTC) or `timestamptz`
/// (Strapi 3) column.
macro_rules! pg_millis {
    ($col:literal) => {
        concat!("(EXTRACT(EPOCH FROM ", $col, ") * 1000)::BIGINT")
    };
}

/// A PostgreSQL boolean as 0 or 1, as on SQLite, so one decoder reads both; NULL is false.
macro_rules! pg_flag {
    ($col:literal) => {
        concat!("(CASE WHEN ", $col, " THEN 1 ELSE 0 END)::BIGINT")
    };
}

macro_rules! pg_published {
    () => {
        "(CASE WHEN published_at IS NULL THEN 0 ELSE 1 END)::BIGINT"
    };
}

/// Ids are `serial` (INTEGER) in Strapi; cast to BIGINT, Keyway's id type.
macro_rules! pg_users {
    ($table:literal, $document_id:expr, $published:expr) => {
        concat!(
            "SELECT id::BIGINT AS id, ",
            $document_id,
            " AS document_id, username, email, provider, \
             password, ",
            pg_flag!("confirmed"),
            " AS confirmed, ",
            pg_flag!("blocked"),
            " AS blocked, ",
            pg_millis!("created_at"),
            " AS created_ms, ",
            pg_millis!("updated_at"),
            " AS updated_ms, ",
            $published,
            " AS published FROM ",
            $table,
            " ORDER BY id"
        )
    };
}

macro_rules! pg_roles {
    ($table:literal, $document_id:expr, $published:expr, $updated:expr) => {
        concat!(
            "SELECT id::BIGINT AS id, ",
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
    conn: &mut PgConnection,
    version: Version,
) -> Result<Snapshot, sqlx::Error> {
    match version {
        Version::V3 => read_snapshot!(
            conn,
            version,
            (
                pg_users!("\"users-permissions_user\"", "NULL::TEXT", "1::BIGINT"),
                pg_roles!(
                    "\"users-permissions_role\"",
                    "NULL::TEXT",
                    "1::BIGINT",
                    "NULL::BIGINT"
                ),
                "SELECT id::BIGINT AS user_id, role::BIGINT AS role_id \
                 FROM \"users-permissions_user\" WHERE role IS NOT NULL ORDER BY id"
            )
        ),
        Version::V4 => read_snapshot!(
            conn,
            version,
            (
                pg_users!("up_users", "NULL::TEXT", "1::BIGINT"),
                pg_roles!(
                    "up_roles",
                    "NULL::TEXT",
                    "1::BIGINT",
                    pg_millis!("updated_at")
                ),
                "SELECT user_id::BIGINT AS user_id, role_id::BIGINT AS role_id \
                 FROM up_users_role_links WHERE user_id IS NOT NULL AND role_id IS NOT NULL \
                 ORDER BY user_id, role_id"
            )
        ),
        Version::V5 => read_snapshot!(
            conn,
            version,
            (
                pg_users!("up_users", "document_id", pg_published!()),
                pg_roles!(
                    "up_roles",
                    "document_id",
                    pg_published!(),
                    pg_millis!("updated_at")
                ),
                "SELECT user_id::BIGINT AS user_id, role_id::BIGINT AS role_id \
                 FROM up_users_role_lnk WHERE user_id IS NOT NULL AND role_id IS NOT NULL \
                 ORDER BY user_id, role_id"
            )
        ),
    }
}
