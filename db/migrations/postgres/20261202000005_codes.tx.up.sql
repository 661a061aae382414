-- One-time codes (verification, recovery, invitations; passwordless login
-- later). A code is never stored, only its HMAC-SHA256 under a server secret
-- (secrets.default): a 6-digit code's hash cannot be brute-forced from a
-- leaked table without the secret. Short codes go to an address and are
-- found by it (purpose, address); long ones (admin-issued recovery codes,
-- invitations) carry 128 bits and more and are found by their hash.
CREATE TABLE codes (
    id          UUID        NOT NULL PRIMARY KEY,
    purpose     TEXT        NOT NULL CHECK (purpose IN ('verification', 'recovery', 'invitation', 'login')),
    identity_id UUID        NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    -- where the code went: empty for an admin-issued recovery code
    via         TEXT        NOT NULL DEFAULT '',
    address     TEXT        NOT NULL DEFAULT '',
    long        BOOLEAN     NOT NULL,
    hash        BYTEA       NOT NULL,
    attempts    INTEGER     NOT NULL DEFAULT 0,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL
);

--bun:split

-- Short codes are looked up by where they went, live ones only.
CREATE INDEX codes_address_idx ON codes (purpose, address) WHERE used_at IS NULL AND NOT long;

--bun:split

-- Long codes are looked up by their hash.
CREATE UNIQUE INDEX codes_long_hash_uq ON codes (hash) WHERE long;

--bun:split

CREATE INDEX codes_identity_idx ON codes (identity_id);

--bun:split

CREATE INDEX codes_expires_idx ON codes (expires_at);

--bun:split

-- Requests for a code by address (requestVerificationCode,
-- requestRecoveryCode), recorded as they come whether or not the address
-- exists, so the request costs the same either way; a background loop
-- resolves each (and sends a code when the address belongs to someone),
-- then deletes it. Several processes claim with FOR UPDATE SKIP LOCKED.
CREATE TABLE code_requests (
    id         UUID        NOT NULL PRIMARY KEY,
    purpose    TEXT        NOT NULL CHECK (purpose IN ('verification', 'recovery')),
    address    TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
