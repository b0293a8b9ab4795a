-- The login throttle decides on an attempt and counts it in one step, before the password is hashed
-- (auth/throttle.rs), so a bucket is one row that the deciding statement reads and writes at once.
-- Keys are SHA-256 digests (hex) of the account's lower-cased name, never what a client typed.

-- Replaced by throttle_buckets: a row per failure could only be counted after the hash.
DROP TABLE login_failures;

CREATE TABLE throttle_buckets (
    bucket  TEXT    PRIMARY KEY,
    -- The attempts counted in the last hour, as a JSON array of epoch milliseconds.
    times   TEXT    NOT NULL,
    -- The newest attempt, for pruning.
    last_at INTEGER NOT NULL,
    -- The verdict on the latest attempt (0: counted), read back by the statement that made it.
    wait_ms INTEGER NOT NULL
);
CREATE INDEX throttle_buckets_last_at ON throttle_buckets (last_at);

-- Trusted clients were keyed by user id; keys are digests now, so old rows could never match again.
DELETE FROM trusted_clients;
