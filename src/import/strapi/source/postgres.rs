//! The Strapi schemas on PostgreSQL: `serial` ids cast to BIGINT, timestamps to milliseconds.

use super::Dialect;

pub(super) const DIALECT: Dialect = Dialect {
    // Ids are `serial` (INTEGER) in Strapi; cast to BIGINT, Keyway's id type.
    int: |col| format!("{col}::BIGINT"),
    null_text: "NULL::TEXT",
    null_int: "NULL::BIGINT",
    one: "1::BIGINT",
    // A `timestamp` (Strapi 4 and 5, read as UTC) or `timestamptz` (Strapi 3) column.
    millis: |col| format!("(EXTRACT(EPOCH FROM {col}) * 1000)::BIGINT"),
    // As 0 or 1, as on SQLite, so one decoder reads both; NULL is false.
    flag: |col| format!("(CASE WHEN {col} THEN 1 ELSE 0 END)::BIGINT"),
    published: "(CASE WHEN published_at IS NULL THEN 0 ELSE 1 END)::BIGINT",
};
