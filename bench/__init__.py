"""`make bench`: the whole system measured in one run, as ratios to the raw bus and database."""
