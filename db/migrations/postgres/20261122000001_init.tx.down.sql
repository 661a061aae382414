DROP TABLE login_throttles;

--bun:split

DROP TABLE sessions;

--bun:split

DROP TABLE identity_recovery_addresses;

--bun:split

DROP TABLE identity_verifiable_addresses;

--bun:split

DROP TABLE identity_credential_identifiers;

--bun:split

DROP TABLE identity_credentials;

--bun:split

DROP TABLE identities;
