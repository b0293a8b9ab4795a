//! The Strapi schemas on SQLite: datetimes and booleans as knex left them, turned into integers.

use super::Dialect;

pub(super) const DIALECT: Dialect = Dialect {
    tables: "SELECT name FROM sqlite_master WHERE type = 'table'",
    int: |col| col.to_owned(),
    null_text: "NULL",
    null_int: "NULL",
    yes: "1",
    millis,
    // SQLite has no boolean type: 0 or 1, which sqlx reads as a `bool`.
    flag: |col| format!("(CASE WHEN {col} IN (1, '1', 'true', 't') THEN 1 ELSE 0 END)"),
    published: "(CASE WHEN published_at IS NULL THEN 0 ELSE 1 END)",
};

/// Milliseconds since the epoch from a SQLite datetime column, whatever Strapi put there: integer
/// milliseconds as they are, a real truncated, digits-only text as a number, other text through
/// julianday (`YYYY-MM-DD HH:MM:SS[.SSS]`, ISO 8601 with `T`, `Z` or an offset). NULL when unreadable.
fn millis(col: &str) -> String {
    format!(
        "(CASE typeof({col}) WHEN 'integer' THEN {col} \
         WHEN 'real' THEN CAST({col} AS INTEGER) \
         WHEN 'text' THEN CASE WHEN {col} GLOB '[0-9]*' AND {col} NOT GLOB '*[^0-9]*' \
         THEN CAST({col} AS INTEGER) \
         ELSE CAST(ROUND((julianday({col}) - 2440587.5) * 86400000.0) AS INTEGER) END END)"
    )
}
