"""The injected clock: services ask it for now, tests move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time, UTC-aware, optionally shifted (for demos and end-to-end tests)."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


class OffsetFileClock:
    """Wall-clock time plus an offset (seconds) read from a file, re-read at most every 0.1 s.

    Off by default; end-to-end tests and demos set `CLOCK_FILE` to move every service's time
    together (e.g. past a deadline) without waiting for it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = timedelta(0)
        self._read_at = 0.0

    def now(self) -> datetime:
        import time

        mono = time.monotonic()
        if mono - self._read_at > 0.1:
            self._read_at = mono
            try:
                with open(self.path, encoding="utf-8") as f:
                    self._offset = timedelta(seconds=float(f.read().strip() or 0))
            except (OSError, ValueError):
                pass
        return datetime.now(UTC) + self._offset
