-- SQLite twin of the PostgreSQL migration: an identity's available_aal, a
-- session's aal, and TOTP keys waiting for confirmation.
ALTER TABLE identities ADD COLUMN available_aal TEXT NOT NULL DEFAULT 'aal1'
    CHECK (available_aal IN ('aal1', 'aal2'));

--bun:split

ALTER TABLE sessions ADD COLUMN aal TEXT NOT NULL DEFAULT 'aal1' CHECK (aal IN ('aal1', 'aal2'));

--bun:split

CREATE TABLE totp_setups (
    identity_id TEXT      NOT NULL PRIMARY KEY REFERENCES identities (id) ON DELETE CASCADE,
    sealed_url  TEXT      NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
