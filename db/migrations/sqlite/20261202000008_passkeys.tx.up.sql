-- SQLite twin of the PostgreSQL migration: passkey ceremonies begun, and the
-- index that finds a passkey credential by its user handle.
CREATE TABLE passkey_challenges (
    id           TEXT      NOT NULL PRIMARY KEY,
    identity_id  TEXT      REFERENCES identities (id) ON DELETE CASCADE,
    kind         TEXT      NOT NULL CHECK (kind IN ('registration', 'login')),
    session_data TEXT      NOT NULL,
    client_key   BLOB,
    expires_at   TIMESTAMP NOT NULL,
    created_at   TIMESTAMP NOT NULL
);

--bun:split

CREATE INDEX passkey_challenges_expires_idx ON passkey_challenges (expires_at);

--bun:split

CREATE INDEX passkey_challenges_identity_idx ON passkey_challenges (identity_id, id);

--bun:split

CREATE INDEX passkey_challenges_client_idx ON passkey_challenges (client_key, id);

--bun:split

CREATE INDEX identity_credentials_passkey_handle_idx ON identity_credentials (json_extract(config, '$.user_handle'))
    WHERE type = 'passkey';
