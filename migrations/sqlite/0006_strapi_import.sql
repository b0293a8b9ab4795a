-- What `keyway import strapi` remembers of each account it made. The account itself keeps its Strapi id
-- as its `users.id` (tokens Strapi issued carry it); this row says that it came from Strapi, which Strapi
-- row it mirrors now (Strapi 5 may re-create a document's row under a new id), and what Strapi had for
-- the fields Keyway can change too, so a later import applies only what changed in Strapi since. The
-- password is remembered as a SHA-256 digest of Strapi's hash: enough to notice a change, useless for
-- anything else. Accounts made in Keyway have no row; deleting an account deletes its row.

CREATE TABLE strapi_users (
    user_id         INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    strapi_id       INTEGER NOT NULL UNIQUE,
    password_digest TEXT,
    confirmed       INTEGER NOT NULL,
    blocked         INTEGER NOT NULL
);
