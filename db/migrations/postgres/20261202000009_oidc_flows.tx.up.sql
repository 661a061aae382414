-- OpenID Connect browser flows between beginOidcSignIn (or linkOidcProvider)
-- and the provider's redirect back to the callback. The state sent to the
-- provider is stored only as its SHA-256 (it finds the row); the cookie that
-- binds the flow to the browser that began it is stored only as its
-- SHA-256 too, so a leaked table cannot finish anybody's flow. The nonce and
-- the PKCE verifier must be kept as they are (the token exchange sends the
-- verifier, the ID token echoes the nonce); they are worthless without the
-- provider's code, and a row lives ten minutes. A row is deleted as it is
-- used (single use), and expired rows are pruned.
CREATE TABLE oidc_flows (
    id               UUID        NOT NULL PRIMARY KEY,
    state_hash       BYTEA       NOT NULL,
    binding_hash     BYTEA       NOT NULL,
    provider         TEXT        NOT NULL,
    nonce            TEXT        NOT NULL,
    pkce_verifier    TEXT        NOT NULL,
    return_to        TEXT        NOT NULL,
    -- set when the flow links the provider to this identity instead of
    -- signing in (linkOidcProvider)
    link_identity_id UUID        REFERENCES identities (id) ON DELETE CASCADE,
    expires_at       TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT oidc_flows_state_hash_uq UNIQUE (state_hash)
);

--bun:split

CREATE INDEX oidc_flows_expires_idx ON oidc_flows (expires_at);

--bun:split

CREATE INDEX oidc_flows_link_identity_idx ON oidc_flows (link_identity_id) WHERE link_identity_id IS NOT NULL;
