-- The intake service's own tables (runtime tables come from gridloop_runtime).
SELECT 1;
