"""gridloop_handling."""
