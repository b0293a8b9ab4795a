-- What `keyway import strapi` remembers of each account it made. The PostgreSQL twin of
-- migrations/sqlite/0005_strapi_import.sql, which says why.

CREATE TABLE strapi_users (
    user_id         BIGINT  PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    strapi_id       BIGINT  NOT NULL UNIQUE,
    password_digest TEXT,
    confirmed       BOOLEAN NOT NULL,
    blocked         BOOLEAN NOT NULL
);
