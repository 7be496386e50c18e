"""Services stopped for a while: the report's path timed without the rest of the loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence


class Paused:
    """Services stopped (SIGSTOP) while a window is measured and let go (SIGCONT) when it
    ends, or, given its length, `RESUME_BEFORE_END_S` before (`make profile --pause`: so the
    counts after it can be read): the report's path with the rest of the loop's work away."""

    RESUME_BEFORE_END_S = 2.0

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.started = self.ended = 0.0
        self._stopped = False

    @contextlib.asynccontextmanager
    async def during(self, seconds: float | None = None) -> AsyncIterator[None]:
        if not self.pids:
            yield
            return
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)
        self._stopped = True
        self.started = time.perf_counter()
        resumer = (
            None
            if seconds is None
            else asyncio.get_running_loop().call_later(
                max(seconds - self.RESUME_BEFORE_END_S, 0.0), self.resume
            )
        )
        try:
            yield
        finally:
            if resumer is not None:
                resumer.cancel()
            self.resume()

    def resume(self) -> None:
        if self._stopped:
            self._stopped = False
            self.ended = time.perf_counter()
            for pid in self.pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
