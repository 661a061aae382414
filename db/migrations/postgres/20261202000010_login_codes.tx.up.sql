-- Passwordless sign-in: requestLoginCode records its requests beside those
-- for verification and recovery codes, resolved by the same background
-- loop (the codes table allowed 'login' from the start). The column's CHECK
-- is replaced; PostgreSQL names an inline one code_requests_purpose_check,
-- CockroachDB check_purpose, so both are dropped if present and the new one
-- is named.
ALTER TABLE code_requests DROP CONSTRAINT IF EXISTS code_requests_purpose_check;

--bun:split

ALTER TABLE code_requests DROP CONSTRAINT IF EXISTS check_purpose;

--bun:split

ALTER TABLE code_requests ADD CONSTRAINT code_requests_purpose_check
    CHECK (purpose IN ('verification', 'recovery', 'login'));
