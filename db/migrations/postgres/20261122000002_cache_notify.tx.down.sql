DROP TRIGGER sessions_cache_notify ON sessions;

--bun:split

DROP TRIGGER identities_cache_notify ON identities;

--bun:split

DROP FUNCTION identityd_session_changed();

--bun:split

DROP FUNCTION identityd_identity_changed();
