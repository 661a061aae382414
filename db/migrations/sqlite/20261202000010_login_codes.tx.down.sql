-- Pending sign-in code requests cannot stay under the old CHECK: they are
-- dropped (the person asks again), and the table is rebuilt with it.
CREATE TABLE code_requests_old (
    id         TEXT      NOT NULL PRIMARY KEY,
    purpose    TEXT      NOT NULL CHECK (purpose IN ('verification', 'recovery')),
    address    TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL
);

--bun:split

INSERT INTO code_requests_old (id, purpose, address, created_at)
SELECT id, purpose, address, created_at FROM code_requests WHERE purpose <> 'login';

--bun:split

DROP TABLE code_requests;

--bun:split

ALTER TABLE code_requests_old RENAME TO code_requests;
