-- Runtime tables every service has in its own schema: outbox, inbox, timers.

CREATE TABLE IF NOT EXISTS outbox (
    seq         bigserial PRIMARY KEY,
    event_id    text        NOT NULL UNIQUE,
    subject     text        NOT NULL,
    headers     jsonb       NOT NULL,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
-- The relay reads only unsent rows; sent rows stay as the re-publishable log.
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_at);

CREATE TABLE IF NOT EXISTS inbox (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE IF NOT EXISTS timers (
    id           bigserial   PRIMARY KEY,
    kind         text        NOT NULL,
    key          text        NOT NULL,
    due_at       timestamptz NOT NULL,
    payload      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    fired_at     timestamptz,
    cancelled_at timestamptz,
    UNIQUE (kind, key)
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;

CREATE TABLE IF NOT EXISTS dead_letters (
    id           bigserial   PRIMARY KEY,
    consumer     text        NOT NULL,
    subject      text        NOT NULL,
    event_id     text,
    headers      jsonb       NOT NULL,
    body         bytea       NOT NULL,
    error        text        NOT NULL,
    deliveries   int         NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at  timestamptz
);
