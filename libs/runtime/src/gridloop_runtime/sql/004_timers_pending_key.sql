-- Pending timers by key: cancelling a task's or case's timers (exact keys or a key prefix)
-- must not walk every pending timer through the due-time index.
CREATE INDEX IF NOT EXISTS timers_pending_key ON timers (key text_pattern_ops, kind)
    WHERE fired_at IS NULL AND cancelled_at IS NULL;
