"""`waits.wait_set`: an event waited for with a time limit, and woken ahead of work made
ready after the event was set (what the publisher relies on to send a commit's events before
the consumer's acks)."""

from __future__ import annotations

import asyncio

import pytest
from gridloop_runtime.waits import wait_set


async def test_an_event_already_set_is_answered_without_waiting() -> None:
    event = asyncio.Event()
    event.set()
    assert await wait_set(event, 0) is True


async def test_an_event_not_set_in_time_is_answered_false_after_the_limit() -> None:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await wait_set(event, 0.05) is False
    assert loop.time() - started >= 0.05
    assert not event.is_set()


async def test_an_event_set_while_waiting_wakes_the_waiter_before_work_queued_after_it() -> None:
    event = asyncio.Event()
    order: list[str] = []

    async def waiter() -> None:
        assert await wait_set(event, 5) is True
        order.append("woken")

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)  # the waiter is waiting now
    event.set()
    asyncio.get_running_loop().call_soon(order.append, "queued after the set")
    await task
    # asyncio.wait_for would have woken it a turn later, after the queued callback
    assert order == ["woken", "queued after the set"]


async def test_a_cancelled_waiter_is_cancelled_not_timed_out() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(wait_set(event, 5))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
