-- A per-account security stamp: bumped by every change that must undo decisions taken before it (a
-- password change or reset, a block or unblock, an import that rewrites the account). A login reads it
-- with the password hash and opens its session only where it is unchanged, so a login whose hash was
-- still being checked when the account was blocked or its password reset gets no session.
-- `password_changed_at` (milliseconds) is when the password last changed in Keyway or by an import:
-- Strapi-issued tokens, which have no session to end, are refused when issued before it.

ALTER TABLE users ADD COLUMN security_stamp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN password_changed_at INTEGER;
