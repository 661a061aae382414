-- SQLite twin of the PostgreSQL migration: OpenID Connect browser flows,
-- found by the SHA-256 of their state, bound to a browser by the SHA-256 of
-- a cookie, single use, ten minutes.
CREATE TABLE oidc_flows (
    id               TEXT      NOT NULL PRIMARY KEY,
    state_hash       BLOB      NOT NULL,
    binding_hash     BLOB      NOT NULL,
    provider         TEXT      NOT NULL,
    nonce            TEXT      NOT NULL,
    pkce_verifier    TEXT      NOT NULL,
    return_to        TEXT      NOT NULL,
    link_identity_id TEXT      REFERENCES identities (id) ON DELETE CASCADE,
    expires_at       TIMESTAMP NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    CONSTRAINT oidc_flows_state_hash_uq UNIQUE (state_hash)
);

--bun:split

CREATE INDEX oidc_flows_expires_idx ON oidc_flows (expires_at);

--bun:split

CREATE INDEX oidc_flows_link_identity_idx ON oidc_flows (link_identity_id) WHERE link_identity_id IS NOT NULL;
