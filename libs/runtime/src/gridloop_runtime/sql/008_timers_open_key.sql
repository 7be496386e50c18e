-- Pending timers by key, for the cancel alone (outbox.py): its look-up says "pending" as
-- `coalesce(fired_at, cancelled_at) IS NULL`, which this index's predicate matches and the
-- due-time index's does not. With `fired_at IS NULL AND cancelled_at IS NULL` a plan could
-- reach the pending rows through either index, and with statistics that undercount them (a
-- young table, or one grown since its analysis), or with a plan kept for any parameters,
-- PostgreSQL walked or hashed every pending timer to cancel those of one key.
CREATE INDEX IF NOT EXISTS timers_open_key ON timers (key, kind)
    WHERE coalesce(fired_at, cancelled_at) IS NULL;
-- The index it replaces (004): nothing else looks pending timers up by key.
DROP INDEX IF EXISTS timers_pending_key;
