"""gridloop_scoring."""
