"""gridloop_city."""
