-- SQLite twin of the PostgreSQL migration: one-time codes, stored only as
-- their HMAC-SHA256, and requests for codes waiting to be resolved.
CREATE TABLE codes (
    id          TEXT      NOT NULL PRIMARY KEY,
    purpose     TEXT      NOT NULL CHECK (purpose IN ('verification', 'recovery', 'invitation', 'login')),
    identity_id TEXT      NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    via         TEXT      NOT NULL DEFAULT '',
    address     TEXT      NOT NULL DEFAULT '',
    long        BOOLEAN   NOT NULL,
    hash        BLOB      NOT NULL,
    attempts    INTEGER   NOT NULL DEFAULT 0,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP,
    created_at  TIMESTAMP NOT NULL
);

--bun:split

CREATE INDEX codes_address_idx ON codes (purpose, address) WHERE used_at IS NULL AND NOT long;

--bun:split

CREATE UNIQUE INDEX codes_long_hash_uq ON codes (hash) WHERE long;

--bun:split

CREATE INDEX codes_identity_idx ON codes (identity_id);

--bun:split

CREATE INDEX codes_expires_idx ON codes (expires_at);

--bun:split

CREATE TABLE code_requests (
    id         TEXT      NOT NULL PRIMARY KEY,
    purpose    TEXT      NOT NULL CHECK (purpose IN ('verification', 'recovery')),
    address    TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL
);
