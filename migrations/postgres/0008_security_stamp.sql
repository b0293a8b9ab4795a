-- The per-account security stamp and the time of the last password change. The PostgreSQL twin of
-- migrations/sqlite/0008_security_stamp.sql, which says why.

ALTER TABLE users
    ADD COLUMN security_stamp      BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN password_changed_at BIGINT;
