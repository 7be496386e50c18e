-- No planner statistics for payload columns: no query filters on an event's body or headers,
-- a stored answer or a timer's payload, yet ANALYZE (the service's own, statistics.py, and
-- autovacuum's) read and compared every sampled value of them. Without them an ANALYZE of
-- the outbox takes a third of the time.
ALTER TABLE outbox ALTER COLUMN headers SET STATISTICS 0, ALTER COLUMN body SET STATISTICS 0;
ALTER TABLE dead_letters ALTER COLUMN headers SET STATISTICS 0,
    ALTER COLUMN body SET STATISTICS 0;
ALTER TABLE commands ALTER COLUMN answer SET STATISTICS 0;
ALTER TABLE timers ALTER COLUMN payload SET STATISTICS 0;
