-- Pending sign-in code requests cannot stay under the old CHECK: they are
-- dropped (the person asks again).
DELETE FROM code_requests WHERE purpose = 'login';

--bun:split

ALTER TABLE code_requests DROP CONSTRAINT code_requests_purpose_check;

--bun:split

ALTER TABLE code_requests ADD CONSTRAINT code_requests_purpose_check
    CHECK (purpose IN ('verification', 'recovery'));
