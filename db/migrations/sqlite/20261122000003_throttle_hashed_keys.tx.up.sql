-- Throttle keys become the SHA-256 of what they name (an address, an
-- identifier, an identity), so a key has a fixed size whatever the client
-- sends. The rows are transient (an hour at most by default): they are
-- dropped, not converted. Times are Unix milliseconds, so that the backoff
-- is plain integer arithmetic, computed alike on every engine.
DROP TABLE login_throttles;

--bun:split

CREATE TABLE login_throttles (
    key              BLOB    NOT NULL PRIMARY KEY,
    -- attempts counted within the window (refused ones are not counted)
    attempts         INTEGER NOT NULL,
    last_attempt_ms  INTEGER NOT NULL,
    -- no attempt is allowed before this time; 0 when none is blocked
    blocked_until_ms INTEGER NOT NULL DEFAULT 0
);

--bun:split

-- PruneLoginThrottles deletes by the last attempt.
CREATE INDEX login_throttles_last_attempt_idx ON login_throttles (last_attempt_ms);
