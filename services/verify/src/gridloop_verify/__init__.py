"""gridloop verify service — 任务核查 · 结单: on-site verification and closing."""
