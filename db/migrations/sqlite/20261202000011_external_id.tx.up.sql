-- SQLite twin of the PostgreSQL migration: an identity's external id, NULL
-- when unset, unique when set.
ALTER TABLE identities ADD COLUMN external_id TEXT;

--bun:split

CREATE UNIQUE INDEX identities_external_id_uq ON identities (external_id) WHERE external_id IS NOT NULL;
