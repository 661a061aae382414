-- Events: one row per change, written in the same transaction as the
-- change. No foreign key to identities: the trail outlives the identity.
-- Ids are UUIDv7, so the primary key is also the time order (newest first
-- is a backward scan).
CREATE TABLE events (
    id             UUID        NOT NULL PRIMARY KEY,
    type           TEXT        NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
    identity_id    UUID,
    actor_kind     TEXT        NOT NULL CHECK (actor_kind IN ('admin', 'identity', 'system')),
    actor_id       TEXT        NOT NULL DEFAULT '',
    client_ip      TEXT        NOT NULL DEFAULT '',
    user_agent     TEXT        NOT NULL DEFAULT '',
    changed_paths  JSONB       NOT NULL DEFAULT '[]',
    data           JSONB
);

--bun:split

-- One identity's history, newest first.
CREATE INDEX events_identity_idx ON events (identity_id, id) WHERE identity_id IS NOT NULL;

--bun:split

CREATE INDEX events_type_idx ON events (type, id);

--bun:split

-- Webhook deliveries: the outbox of events for each configured webhook whose
-- patterns match, written with the event, claimed with FOR UPDATE SKIP
-- LOCKED like courier messages.
CREATE TABLE webhook_deliveries (
    id                 UUID        NOT NULL PRIMARY KEY,
    event_id           UUID        NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    url                TEXT        NOT NULL,
    status             TEXT        NOT NULL CHECK (status IN ('queued', 'processing', 'delivered', 'abandoned')),
    attempts           INTEGER     NOT NULL DEFAULT 0,
    last_response_code INTEGER,
    last_error         TEXT        NOT NULL DEFAULT '',
    next_attempt_at    TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

--bun:split

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status IN ('queued', 'processing');

--bun:split

CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
