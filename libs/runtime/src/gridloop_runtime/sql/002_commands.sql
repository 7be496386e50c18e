-- Answers of idempotent commands, keyed by the sender's command id.
CREATE TABLE IF NOT EXISTS commands (
    command_id  text        PRIMARY KEY,
    kind        text        NOT NULL,
    answer      jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
