-- Accounts brought over by `keyway import strapi` remember the id they had in Strapi. The import keeps
-- that id as the account's own (so tokens Strapi issued name the right account), and a re-run finds the
-- accounts it imported by this column, never mistaking an account made in Keyway for one of them.
-- NULL for every account created in Keyway. The PostgreSQL twin of
-- migrations/sqlite/0005_strapi_import.sql.

ALTER TABLE users ADD COLUMN strapi_id BIGINT;
CREATE UNIQUE INDEX users_strapi_id ON users (strapi_id);
