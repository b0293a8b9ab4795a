-- Single sign-on. `identities` links an account to a provider's subject (`sub`, or GitHub's numeric
-- id): one account may have several, one identity belongs to one account.
CREATE TABLE identities (
    provider   TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user ON identities (user_id);

-- Sign-ins in progress, by the SHA-256 of their single-use key: `authorize` rows are keyed by the
-- OAuth `state` and hold the PKCE verifier and nonce until the provider answers; `finish` rows are keyed
-- by the code the front end trades for a session and hold the identity the provider asserted.
-- `browser` is the hash of the cookie that binds each row to the browser that started the sign-in.
CREATE TABLE sso_states (
    hash       TEXT    PRIMARY KEY,
    stage      TEXT    NOT NULL,
    provider   TEXT    NOT NULL,
    browser    TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sso_states_expiry ON sso_states (expires_at);
