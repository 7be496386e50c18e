"""gridloop_verify."""
