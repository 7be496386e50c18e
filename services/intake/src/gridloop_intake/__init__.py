"""gridloop_intake."""
