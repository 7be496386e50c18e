-- No planner statistics for payload columns (as the runtime's 007): no query filters on a
-- timeline line's data or actor, an archived case's snapshot, a report as sent or a case's
-- JSON lists, yet ANALYZE read and compared every sampled value of them. An ANALYZE of the
-- timeline takes a quarter of the time without them. The evidence search filters on
-- `data -> 'files'`: its expression index (timeline_files) keeps its own statistics.
ALTER TABLE timeline ALTER COLUMN data SET STATISTICS 0, ALTER COLUMN actor SET STATISTICS 0;
ALTER TABLE archive ALTER COLUMN case_data SET STATISTICS 0,
    ALTER COLUMN timeline SET STATISTICS 0;
ALTER TABLE reports ALTER COLUMN data SET STATISTICS 0;
ALTER TABLE cases ALTER COLUMN reporter SET STATISTICS 0,
    ALTER COLUMN attachments SET STATISTICS 0,
    ALTER COLUMN proposal SET STATISTICS 0,
    ALTER COLUMN targets SET STATISTICS 0,
    ALTER COLUMN subscribers SET STATISTICS 0,
    ALTER COLUMN files SET STATISTICS 0;
