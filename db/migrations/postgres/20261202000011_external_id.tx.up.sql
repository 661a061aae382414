-- An identity's id in another system (Kratos's external_id), set by admins
-- when importing: NULL when unset, unique when set. The unique index is what
-- makes two writers unable to give two identities the same one; it holds
-- only the identities that have one.
ALTER TABLE identities ADD COLUMN external_id TEXT;

--bun:split

CREATE UNIQUE INDEX identities_external_id_uq ON identities (external_id) WHERE external_id IS NOT NULL;
