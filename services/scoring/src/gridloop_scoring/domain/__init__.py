"""评价考核 rules as plain Python: periods, the fold of case events into counted items, rates,
composite scores and the per-person thresholds. No I/O."""
