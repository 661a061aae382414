DROP FUNCTION identityd_throttle_reserve(BYTEA[], INTEGER[], BIGINT[], BIGINT, BIGINT);

--bun:split

DROP TABLE login_throttles;

--bun:split

CREATE TABLE login_throttles (
    key             TEXT        NOT NULL PRIMARY KEY,
    failures        INTEGER     NOT NULL,
    last_failure_at TIMESTAMPTZ NOT NULL,
    blocked_until   TIMESTAMPTZ
);
