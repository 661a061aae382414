-- Identities and everything that hangs off them. Keys are UUIDs made in Go
-- (v7, so they sort by creation and keyset pagination stays stable under
-- inserts); no SERIAL and no PostgreSQL-only functions, so CockroachDB runs it.
-- JSON (not JSONB) keeps documents as written, so numbers come back exactly as
-- they went in, the same text as on SQLite; nothing queries inside them.
CREATE TABLE identities (
    id               UUID        NOT NULL PRIMARY KEY,
    schema_id        TEXT        NOT NULL,
    state            TEXT        NOT NULL CHECK (state IN ('active', 'inactive')),
    state_changed_at TIMESTAMPTZ,
    traits           JSON        NOT NULL,
    metadata_public  JSON,
    metadata_admin   JSON,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

--bun:split

CREATE INDEX identities_state_id_idx ON identities (state, id);

--bun:split

CREATE INDEX identities_schema_id_id_idx ON identities (schema_id, id);

--bun:split

-- config holds the secret part of a credential (a password hash, an OIDC
-- subject list…); it never leaves the storage layer except to be compared.
CREATE TABLE identity_credentials (
    id          UUID        NOT NULL PRIMARY KEY,
    identity_id UUID        NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    type        TEXT        NOT NULL,
    config      JSON        NOT NULL,
    version     INTEGER     NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT identity_credentials_identity_type_uq UNIQUE (identity_id, type)
);

--bun:split

-- One row per identifier a credential signs in with, normalised (emails
-- lower-cased, phones E.164). The unique index is what makes a race between
-- two writers unable to create a duplicate.
CREATE TABLE identity_credential_identifiers (
    id            UUID        NOT NULL PRIMARY KEY,
    identity_id   UUID        NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    credential_id UUID        NOT NULL REFERENCES identity_credentials (id) ON DELETE CASCADE,
    type          TEXT        NOT NULL,
    identifier    TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT identity_credential_identifiers_type_identifier_uq UNIQUE (type, identifier)
);

--bun:split

CREATE INDEX identity_credential_identifiers_identity_idx ON identity_credential_identifiers (identity_id);

--bun:split

CREATE INDEX identity_credential_identifiers_credential_idx ON identity_credential_identifiers (credential_id);

--bun:split

CREATE TABLE identity_verifiable_addresses (
    id          UUID        NOT NULL PRIMARY KEY,
    identity_id UUID        NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    via         TEXT        NOT NULL,
    value       TEXT        NOT NULL,
    verified    BOOLEAN     NOT NULL DEFAULT FALSE,
    status      TEXT        NOT NULL,
    verified_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT identity_verifiable_addresses_via_value_uq UNIQUE (via, value)
);

--bun:split

CREATE INDEX identity_verifiable_addresses_identity_idx ON identity_verifiable_addresses (identity_id);

--bun:split

CREATE TABLE identity_recovery_addresses (
    id          UUID        NOT NULL PRIMARY KEY,
    identity_id UUID        NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    via         TEXT        NOT NULL,
    value       TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT identity_recovery_addresses_via_value_uq UNIQUE (via, value)
);

--bun:split

CREATE INDEX identity_recovery_addresses_identity_idx ON identity_recovery_addresses (identity_id);

--bun:split

-- Sessions: the token is never stored, only its SHA-256.
CREATE TABLE sessions (
    id                     UUID        NOT NULL PRIMARY KEY,
    token_hash             BYTEA       NOT NULL,
    identity_id            UUID        NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    active                 BOOLEAN     NOT NULL,
    issued_at              TIMESTAMPTZ NOT NULL,
    expires_at             TIMESTAMPTZ NOT NULL,
    authenticated_at       TIMESTAMPTZ NOT NULL,
    authentication_methods JSON        NOT NULL,
    ip_address             TEXT,
    user_agent             TEXT,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL,
    CONSTRAINT sessions_token_hash_uq UNIQUE (token_hash)
);

--bun:split

CREATE INDEX sessions_identity_idx ON sessions (identity_id, active);

--bun:split

-- Failed login attempts per key (an identifier or a client address), kept in
-- the database so the limit holds across server processes.
CREATE TABLE login_throttles (
    key             TEXT        NOT NULL PRIMARY KEY,
    failures        INTEGER     NOT NULL,
    last_failure_at TIMESTAMPTZ NOT NULL,
    blocked_until   TIMESTAMPTZ
);
