DROP TABLE totp_setups;

--bun:split

ALTER TABLE sessions DROP COLUMN aal;

--bun:split

ALTER TABLE identities DROP COLUMN available_aal;
