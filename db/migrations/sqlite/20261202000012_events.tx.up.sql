-- SQLite twin of the PostgreSQL migration: events and webhook deliveries.
CREATE TABLE events (
    id             TEXT      NOT NULL PRIMARY KEY,
    type           TEXT      NOT NULL,
    occurred_at    TIMESTAMP NOT NULL,
    identity_id    TEXT,
    actor_kind     TEXT      NOT NULL CHECK (actor_kind IN ('admin', 'identity', 'system')),
    actor_id       TEXT      NOT NULL DEFAULT '',
    client_ip      TEXT      NOT NULL DEFAULT '',
    user_agent     TEXT      NOT NULL DEFAULT '',
    changed_paths  TEXT      NOT NULL DEFAULT '[]',
    data           TEXT
);

--bun:split

CREATE INDEX events_identity_idx ON events (identity_id, id) WHERE identity_id IS NOT NULL;

--bun:split

CREATE INDEX events_type_idx ON events (type, id);

--bun:split

CREATE TABLE webhook_deliveries (
    id                 TEXT      NOT NULL PRIMARY KEY,
    event_id           TEXT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    url                TEXT      NOT NULL,
    status             TEXT      NOT NULL CHECK (status IN ('queued', 'processing', 'delivered', 'abandoned')),
    attempts           INTEGER   NOT NULL DEFAULT 0,
    last_response_code INTEGER,
    last_error         TEXT      NOT NULL DEFAULT '',
    next_attempt_at    TIMESTAMP NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);

--bun:split

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status IN ('queued', 'processing');

--bun:split

CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
