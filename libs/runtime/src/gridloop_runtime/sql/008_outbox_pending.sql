-- The outbox rows not yet published are listed in outbox_pending. Publishing a row deletes its
-- narrow line there, where it used to rewrite the outbox row itself (`sent_at`): a whole new
-- version of the row, message and all, and an entry in each of its indexes, for every event.
-- Rows written from this release on are inserted with `sent_at` set (the time they were
-- written) and a line in outbox_pending until they are published; `sent_at IS NULL` still
-- marks a row an earlier release wrote and has not published. The sweeper sends both, and an
-- earlier release's replicas, which read only `sent_at IS NULL`, take the new rows for sent:
-- both releases run side by side during a rollout (docs/operations.md, Upgrade).
CREATE TABLE IF NOT EXISTS outbox_pending (
    seq bigint PRIMARY KEY
);
