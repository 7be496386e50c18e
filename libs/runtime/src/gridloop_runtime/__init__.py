"""gridloop_runtime."""
