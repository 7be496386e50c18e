"""The dispatch rules without I/O: routing, deadlines, the chase ladder, the case and its tasks."""
