-- Sessions that can be ended: device metadata, idle and absolute lifetimes, and the refresh-token family.

ALTER TABLE sessions ADD COLUMN device_id TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN device_name TEXT;
ALTER TABLE sessions ADD COLUMN last_active_at INTEGER NOT NULL DEFAULT 0;
-- expires_at (0001) is the absolute end; idle_expires_at moves forward with every refresh.
ALTER TABLE sessions ADD COLUMN idle_expires_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN revoked_reason TEXT;
UPDATE sessions SET last_active_at = created_at, idle_expires_at = expires_at;
CREATE INDEX sessions_user_device ON sessions (user_id, device_id);

-- Every refresh token ever issued for a session, stored only as a SHA-256 hash. A used token keeps its
-- row: presenting it again after the grace window is reuse, and ends the whole session. Its successor
-- is HMAC(token, nonce), so a replay inside the grace window can be answered with the same successor
-- without ever storing a token.
CREATE TABLE refresh_tokens (
    hash       TEXT    PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    nonce      BLOB
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Changes that other processes on the same database must apply to their caches (a CLI `user block`
-- while `serve` runs, or another node). Servers poll it; rows are pruned after a while.
CREATE TABLE invalidations (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT    NOT NULL,
    key  TEXT    NOT NULL,
    at   INTEGER NOT NULL
);
