-- Retention (retention.py) finds old rows by age. BRIN indexes: rows arrive in time order, so
-- a block range's minimum and maximum time are tight, and keeping them costs the hot path's
-- inserts next to nothing (a B-tree on these columns would be one more index entry each).
CREATE INDEX IF NOT EXISTS inbox_processed_brin ON inbox USING brin (processed_at);
CREATE INDEX IF NOT EXISTS timers_created_brin ON timers USING brin (created_at);
CREATE INDEX IF NOT EXISTS commands_created_brin ON commands USING brin (created_at);
