DROP TABLE login_throttles;

--bun:split

CREATE TABLE login_throttles (
    key             TEXT        NOT NULL PRIMARY KEY,
    failures        INTEGER     NOT NULL,
    last_failure_at TIMESTAMP NOT NULL,
    blocked_until   TIMESTAMP
);
