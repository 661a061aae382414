-- The courier's outbox: every email and SMS is a row written in the same
-- transaction as the change that caused it, then delivered by a worker that
-- claims rows with FOR UPDATE SKIP LOCKED, so several processes never send
-- one message twice and a restart loses nothing.
CREATE TABLE courier_messages (
    id              UUID        NOT NULL PRIMARY KEY,
    via             TEXT        NOT NULL CHECK (via IN ('email', 'sms')),
    status          TEXT        NOT NULL CHECK (status IN ('queued', 'processing', 'sent', 'abandoned')),
    recipient       TEXT        NOT NULL,
    subject         TEXT        NOT NULL DEFAULT '',
    body            TEXT        NOT NULL,
    html_body       TEXT        NOT NULL DEFAULT '',
    template_type   TEXT        NOT NULL,
    send_count      INTEGER     NOT NULL DEFAULT 0,
    last_error      TEXT        NOT NULL DEFAULT '',
    -- a queued message is not tried before this time (retry backoff); a
    -- processing one belongs to its worker until then (a crashed worker's
    -- claim runs out and the message is tried again)
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

--bun:split

-- The worker's claim: due messages in order.
CREATE INDEX courier_messages_due_idx ON courier_messages (next_attempt_at) WHERE status IN ('queued', 'processing');

--bun:split

-- Admin listing, newest first, by recipient.
CREATE INDEX courier_messages_recipient_idx ON courier_messages (recipient, id);
