-- SQLite twin of the PostgreSQL migration: code_requests' CHECK allows
-- 'login'. SQLite cannot alter a CHECK, so the table is rebuilt as its
-- documentation describes (create the new table, copy, drop the old one,
-- rename); nothing references the table and it has no index or trigger of
-- its own, so nothing else needs rebuilding.
CREATE TABLE code_requests_new (
    id         TEXT      NOT NULL PRIMARY KEY,
    purpose    TEXT      NOT NULL CHECK (purpose IN ('verification', 'recovery', 'login')),
    address    TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL
);

--bun:split

INSERT INTO code_requests_new (id, purpose, address, created_at)
SELECT id, purpose, address, created_at FROM code_requests;

--bun:split

DROP TABLE code_requests;

--bun:split

ALTER TABLE code_requests_new RENAME TO code_requests;
