-- Throttle keys become the SHA-256 of what they name (an address, an
-- identifier, an identity), so a key has a fixed size whatever the client
-- sends. The rows are transient (an hour at most by default): they are
-- dropped, not converted. Times are Unix milliseconds, so that the backoff
-- is plain integer arithmetic, computed alike on every engine.
DROP TABLE login_throttles;

--bun:split

CREATE TABLE login_throttles (
    key              BYTEA   NOT NULL PRIMARY KEY,
    -- attempts counted within the window (refused ones are not counted)
    attempts         INTEGER NOT NULL,
    last_attempt_ms  BIGINT  NOT NULL,
    -- no attempt is allowed before this time; 0 when none is blocked
    blocked_until_ms BIGINT  NOT NULL DEFAULT 0
);

--bun:split

-- PruneLoginThrottles deletes by the last attempt.
CREATE INDEX login_throttles_last_attempt_idx ON login_throttles (last_attempt_ms);

--bun:split

-- identityd_throttle_reserve counts one attempt against every key at once,
-- or against none: when any key is blocked at p_now_ms it changes nothing
-- and returns the latest time until which one is blocked; otherwise it counts
-- the attempt on each key and returns 0. A key's count starts again when its
-- last attempt is older than p_window_ms. The attempt that reaches a key's
-- free count blocks the key for 1s, each further one for twice as long, up
-- to the key's cap. Every row is locked, in key order, before anything is
-- read, so concurrent attempts on one key are counted one after another and
-- no more than the free count get through; one call is one round trip.
CREATE FUNCTION identityd_throttle_reserve(p_keys BYTEA[], p_free INTEGER[], p_cap_ms BIGINT[], p_now_ms BIGINT, p_window_ms BIGINT)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    v_until  BIGINT;
    v_locked BIGINT;
BEGIN
    -- A key seen for the first time needs a row to lock. A row pruned
    -- between the insert and the lock is inserted again, or the attempt
    -- would go uncounted on it.
    FOR i IN 1..3 LOOP
        INSERT INTO login_throttles (key, attempts, last_attempt_ms)
        SELECT k, 0, p_now_ms FROM unnest(p_keys) AS k ORDER BY k
        ON CONFLICT (key) DO NOTHING;
        PERFORM 1 FROM login_throttles WHERE key = ANY (p_keys) ORDER BY key FOR UPDATE;
        GET DIAGNOSTICS v_locked = ROW_COUNT;
        EXIT WHEN v_locked >= cardinality(p_keys);
    END LOOP;
    SELECT max(blocked_until_ms) INTO v_until FROM login_throttles WHERE key = ANY (p_keys);
    IF v_until > p_now_ms THEN
        RETURN v_until;
    END IF;
    UPDATE login_throttles AS t SET
        attempts = n.attempts,
        last_attempt_ms = p_now_ms,
        blocked_until_ms = CASE WHEN n.attempts < n.free THEN 0
            ELSE p_now_ms + LEAST(1000::BIGINT << LEAST(n.attempts - n.free, 40), n.cap_ms) END
    FROM (
        SELECT c.key, c.free, c.cap_ms,
            CASE WHEN r.last_attempt_ms < p_now_ms - p_window_ms THEN 1 ELSE r.attempts + 1 END AS attempts
        FROM unnest(p_keys, p_free, p_cap_ms) AS c (key, free, cap_ms)
        JOIN login_throttles AS r ON r.key = c.key
    ) AS n
    WHERE t.key = n.key;
    RETURN 0;
END
$$;
