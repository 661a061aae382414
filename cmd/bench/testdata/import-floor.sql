-- The PostgreSQL side of an import batch, with nothing else: the rows of
-- 1,000 identities (identity, password credential, identifier, verifiable
-- and recovery address, UUIDv7-like keys in order, as importIdentities
-- writes them) inserted by INSERT … SELECT from generate_series, in one
-- transaction, with no client, no query text to parse and no network. What
-- is left is the heap, the 15 indexes and the 5 foreign-key checks: the floor
-- an import batch cannot beat with this schema. BENCHMARKS.md reports it.
--
--   createdb floor && go run . migrate up   (with DSN=postgres://…/floor)
--   for i in 1 2 3 4 5; do psql -q floor -v base=$((i*100000)) -f cmd/bench/testdata/import-floor.sql; done
--
-- Each run prints the time of each statement; their sum is one batch.
\timing on
BEGIN;
CREATE TEMP TABLE ids AS
  SELECT (lpad(to_hex(:base + g), 12, '0') || '7000' || '8000' || lpad(to_hex(g), 12, '0'))::uuid AS id,
         (lpad(to_hex(:base + g), 12, '0') || '7001' || '8000' || lpad(to_hex(g), 12, '0'))::uuid AS cid,
         g
  FROM generate_series(1, 1000) AS g;
INSERT INTO identities
  SELECT id, 'default', 'active', now(), '{"email":"x"}'::json, NULL, NULL, now(), now() FROM ids;
INSERT INTO identity_credentials
  SELECT cid, id, 'password', '{"hashed_password":"$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"}'::json, 0, now(), now() FROM ids;
INSERT INTO identity_credential_identifiers
  SELECT (lpad(to_hex(:base + g), 12, '0') || '7002' || '8000' || lpad(to_hex(g), 12, '0'))::uuid, id, cid, 'password', 'user' || (:base + g) || '@example.com', now(), now() FROM ids;
INSERT INTO identity_verifiable_addresses
  SELECT (lpad(to_hex(:base + g), 12, '0') || '7003' || '8000' || lpad(to_hex(g), 12, '0'))::uuid, id, 'email', 'user' || (:base + g) || '@example.com', false, 'pending', NULL, now(), now() FROM ids;
INSERT INTO identity_recovery_addresses
  SELECT (lpad(to_hex(:base + g), 12, '0') || '7004' || '8000' || lpad(to_hex(g), 12, '0'))::uuid, id, 'email', 'user' || (:base + g) || '@example.com', now(), now() FROM ids;
COMMIT;
