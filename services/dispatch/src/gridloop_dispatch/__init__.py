"""gridloop dispatch service — 指挥派遣: routing, deadlines, chasing and escalation."""
