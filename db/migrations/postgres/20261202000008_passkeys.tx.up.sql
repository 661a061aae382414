-- Passkey ceremonies begun and not yet finished. session_data is
-- go-webauthn's SessionData (the challenge, the user handle and the
-- credentials allowed), kept server-side so that a browser can only answer
-- a challenge it was given. A challenge is used once (taken by a DELETE …
-- RETURNING) and lives 5 minutes; expired rows are pruned. identity_id is
-- the identity registering, or signing in with an identifier; NULL for a
-- discoverable sign-in. client_key is the SHA-256 of the client address a
-- sign-in began from, which bounds the challenges one address holds open.
-- The passkeys themselves are the identity's "passkey" credential in
-- identity_credentials, in Kratos's config layout.
CREATE TABLE passkey_challenges (
    id           UUID        NOT NULL PRIMARY KEY,
    identity_id  UUID        REFERENCES identities (id) ON DELETE CASCADE,
    kind         TEXT        NOT NULL CHECK (kind IN ('registration', 'login')),
    session_data JSON        NOT NULL,
    client_key   BYTEA,
    expires_at   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

--bun:split

CREATE INDEX passkey_challenges_expires_idx ON passkey_challenges (expires_at);

--bun:split

CREATE INDEX passkey_challenges_identity_idx ON passkey_challenges (identity_id, id);

--bun:split

CREATE INDEX passkey_challenges_client_idx ON passkey_challenges (client_key, id);

--bun:split

-- A discoverable sign-in names the identity only by the user handle the
-- authenticator returns. It is found through the credential's identifier
-- row (as Kratos stores it); this index finds it by the config itself when
-- that row is missing (an identity write rebuilds identifiers from traits).
CREATE INDEX identity_credentials_passkey_handle_idx ON identity_credentials ((config->>'user_handle'))
    WHERE type = 'passkey';
