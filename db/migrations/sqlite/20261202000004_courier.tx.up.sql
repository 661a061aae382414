-- The courier's outbox: every email and SMS is a row written in the same
-- transaction as the change that caused it, then delivered by a worker.
-- SQLite has one writer, so a claim in a write transaction is exclusive.
CREATE TABLE courier_messages (
    id              TEXT    NOT NULL PRIMARY KEY,
    via             TEXT    NOT NULL CHECK (via IN ('email', 'sms')),
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'processing', 'sent', 'abandoned')),
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL DEFAULT '',
    body            TEXT    NOT NULL,
    html_body       TEXT    NOT NULL DEFAULT '',
    template_type   TEXT    NOT NULL,
    send_count      INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    next_attempt_at TIMESTAMP NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);

--bun:split

CREATE INDEX courier_messages_due_idx ON courier_messages (next_attempt_at) WHERE status IN ('queued', 'processing');

--bun:split

CREATE INDEX courier_messages_recipient_idx ON courier_messages (recipient, id);
