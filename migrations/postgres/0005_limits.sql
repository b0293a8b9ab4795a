-- Rate-limit and login-throttle state, for when several nodes share one database (see auth/throttle.rs).
-- The PostgreSQL twin of migrations/sqlite/0005_limits.sql.

-- A fixed window per route and client address: when it started and how many requests it has seen.
CREATE TABLE rate_windows (
    key     TEXT    PRIMARY KEY,
    started BIGINT  NOT NULL,
    count   INTEGER NOT NULL
);
CREATE INDEX rate_windows_started ON rate_windows (started);

-- Failed logins per throttle bucket (an account, or a trusted client's own bucket on it).
CREATE TABLE login_failures (
    bucket TEXT    NOT NULL,
    at     BIGINT  NOT NULL
);
CREATE INDEX login_failures_bucket_at ON login_failures (bucket, at);
CREATE INDEX login_failures_at ON login_failures (at);

-- Clients that logged in successfully on an account, and until when that keeps them trusted.
CREATE TABLE trusted_clients (
    account TEXT    NOT NULL,
    ip      TEXT    NOT NULL,
    until   BIGINT  NOT NULL,
    PRIMARY KEY (account, ip)
);
CREATE INDEX trusted_clients_until ON trusted_clients (until);
