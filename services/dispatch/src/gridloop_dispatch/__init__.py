"""gridloop_dispatch."""
