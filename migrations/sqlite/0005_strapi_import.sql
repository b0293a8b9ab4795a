-- Accounts brought over by `keyway import strapi` remember the id they had in Strapi. The import keeps
-- that id as the account's own (so tokens Strapi issued name the right account), and a re-run finds the
-- accounts it imported by this column, never mistaking an account made in Keyway for one of them.
-- NULL for every account created in Keyway; a unique index, because SQLite cannot add a UNIQUE column.

ALTER TABLE users ADD COLUMN strapi_id INTEGER;
CREATE UNIQUE INDEX users_strapi_id ON users (strapi_id);
