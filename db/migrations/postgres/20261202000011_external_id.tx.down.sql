DROP INDEX identities_external_id_uq;

--bun:split

ALTER TABLE identities DROP COLUMN external_id;
