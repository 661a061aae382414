-- Multi-factor authentication. An identity's available_aal says whether it
-- has a second factor (TOTP, lookup secrets), kept in the same transaction as
-- those credentials change, so that the session read (which joins the
-- identity) knows without another query whether a session must reach AAL2.
-- ADD COLUMN with a constant default rewrites nothing on PostgreSQL 11+.
ALTER TABLE identities ADD COLUMN available_aal TEXT NOT NULL DEFAULT 'aal1'
    CHECK (available_aal IN ('aal1', 'aal2'));

--bun:split

ALTER TABLE sessions ADD COLUMN aal TEXT NOT NULL DEFAULT 'aal1' CHECK (aal IN ('aal1', 'aal2'));

--bun:split

-- An authenticator app being set up: its key (encrypted with secrets.cipher)
-- waits here until confirmTotp proves the app has it, or it expires.
CREATE TABLE totp_setups (
    identity_id UUID        NOT NULL PRIMARY KEY REFERENCES identities (id) ON DELETE CASCADE,
    sealed_url  TEXT        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
