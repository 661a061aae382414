DROP INDEX identity_credentials_passkey_handle_idx;

--bun:split

DROP TABLE passkey_challenges;
