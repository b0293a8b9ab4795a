-- One-time codes sent by email: password reset and email confirmation. Only a SHA-256 hash of each
-- code is kept; a code works once and only until it expires. A new code of the same purpose replaces
-- the user's older ones. The PostgreSQL twin of migrations/sqlite/0003_codes.sql.
CREATE TABLE one_time_codes (
    hash       TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX one_time_codes_user ON one_time_codes (user_id, purpose);
