-- Keyway's first schema. Timestamps are milliseconds since the Unix epoch (INTEGER), the same on every
-- engine. Uniqueness lives here, not in a read-then-write, so two concurrent registrations cannot both win.

CREATE TABLE roles (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    type        TEXT    NOT NULL UNIQUE
);

INSERT INTO roles (name, description, type) VALUES
    ('Authenticated', 'Default role given to authenticated user.', 'authenticated'),
    ('Public', 'Default role given to unauthenticated user.', 'public');

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id   TEXT    NOT NULL UNIQUE,
    username      TEXT    NOT NULL UNIQUE,
    -- Always stored lower-cased by the application; the index makes lookups exact and cheap.
    email         TEXT    NOT NULL UNIQUE,
    provider      TEXT    NOT NULL DEFAULT 'local',
    password_hash TEXT,
    confirmed     INTEGER NOT NULL DEFAULT 0,
    blocked       INTEGER NOT NULL DEFAULT 0,
    role_id       INTEGER NOT NULL REFERENCES roles (id),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- A session is one login; access tokens carry its id as `sid`.
CREATE TABLE sessions (
    id          TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    user_agent  TEXT,
    ip          TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- Keys the server generated for itself. A configured HS256 secret is never stored.
CREATE TABLE signing_keys (
    kid         TEXT    PRIMARY KEY,
    alg         TEXT    NOT NULL,
    private_der BLOB    NOT NULL,
    public_raw  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
