-- Every update or delete of an identity or a session tells listeners which
-- identity changed, on the channel identityd_cache, when its transaction
-- commits. Server processes keep the sessions whoami reads in memory and drop
-- an identity's entries on this signal (db/sessioncache.go). Triggers, not
-- the application, send it, so no writer can forget: another process, an
-- older version, a manual fix in psql. Inserts need no signal: nothing new
-- can be cached before it exists. PostgreSQL folds identical payloads within
-- one transaction, so revoking many sessions of one identity sends one.
CREATE FUNCTION identityd_identity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('identityd_cache', OLD.id::text);
    RETURN NULL;
END
$$;

--bun:split

CREATE FUNCTION identityd_session_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('identityd_cache', OLD.identity_id::text);
    RETURN NULL;
END
$$;

--bun:split

CREATE TRIGGER identities_cache_notify AFTER UPDATE OR DELETE ON identities
    FOR EACH ROW EXECUTE FUNCTION identityd_identity_changed();

--bun:split

CREATE TRIGGER sessions_cache_notify AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION identityd_session_changed();
