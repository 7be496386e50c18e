"""Waiting for an `asyncio.Event` with a time limit, cheaply.

`asyncio.wait_for(event.wait(), t)` (Python 3.11) runs the wait as a task of its own: each
wait costs a task, and a set event reaches the waiter only a loop turn after the task it
woke, behind whatever else was made ready meanwhile. The runtime waits like this after
nearly every batch in light traffic (a consumer's linger, the publisher between commits), so
it waits on the event directly under `asyncio.timeout` instead."""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` seconds have passed; whether it is set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
