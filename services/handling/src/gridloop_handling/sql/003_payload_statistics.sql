-- No planner statistics for a direct reply's headers and body (as the runtime's 007).
ALTER TABLE replies ALTER COLUMN headers SET STATISTICS 0, ALTER COLUMN body SET STATISTICS 0;
