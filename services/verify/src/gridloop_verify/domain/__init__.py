"""任务核查的规则: the verify service's rules as plain Python (no I/O, no bus, no SQL)."""
