//! The Strapi schemas on PostgreSQL: `serial` ids cast to BIGINT, timestamps to milliseconds.

use super::Dialect;

pub(super) const DIALECT: Dialect = Dialect {
    // The search_path's tables, where Strapi's queries find them.
    tables: "SELECT table_name::TEXT FROM information_schema.tables \
             WHERE table_schema = ANY (current_schemas(false))",
    // Ids are `serial` (INTEGER) in Strapi; cast to BIGINT, Keyway's id type.
    int: |col| format!("{col}::BIGINT"),
    null_text: "NULL::TEXT",
    null_int: "NULL::BIGINT",
    yes: "TRUE",
    // A `timestamp` (Strapi 4 and 5, read as UTC) or `timestamptz` (Strapi 3) column.
    millis: |col| format!("(EXTRACT(EPOCH FROM {col}) * 1000)::BIGINT"),
    flag: |col| format!("COALESCE({col}, FALSE)"),
    published: "(published_at IS NOT NULL)",
};
