"""The live feed: every `case.*` event on the bus, summarised and fanned out to the open
event streams, each principal seeing only what their role may see (server-sent events)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from gridloop_runtime import access
from gridloop_runtime.auth import Principal
from gridloop_runtime.bus import DUPLICATE_WINDOW_S

log = structlog.get_logger(__name__)

# Roles that see the events of the cases in their territory: the command centre, supervisors
# and grid heads; department staff see their department's (gridloop_runtime.access).
COMMAND_CENTRE = frozenset({"operator", "shift-leader", "dispatcher", "evaluator", "admin"})
READERS = COMMAND_CENTRE | {"supervisor", "grid-head"}
# Fields copied from the event into the summary the browser gets: enough to refresh a queue
# or move a marker, nothing about the reporter.
SUMMARY_FIELDS = (
    "case_id",
    "occurred_at",
    "category_code",
    "cell_code",
    "community_code",
    "subdistrict_code",
    "dept",
    "task_id",
    "deadline",
    "status",
)
# Event ids the hub remembers, to pass each event on once: a service's outbox publishes again
# what it published but could not mark sent (a replica killed, PostgreSQL away), and while
# JetStream keeps one copy in the stream (Nats-Msg-Id, within its duplicate window), a core
# subscription such as this one hears every publish. As long as that window, at most this many.
REMEMBER_IDS = 100_000


def summarise(
    subject: str, headers: Mapping[str, str] | None, data: Mapping[str, Any]
) -> dict[str, Any]:
    """What the browser is told of one case event."""
    h = {k.lower(): v for k, v in (headers or {}).items()}
    out: dict[str, Any] = {
        "event": subject.split(".", 1)[1] if "." in subject else subject,
        "type": h.get("ce-type"),
        "id": h.get("ce-id"),
    }
    for name in SUMMARY_FIELDS:
        if data.get(name) is not None:
            out[name] = data[name]
    co = data.get("co_handlers")
    if isinstance(co, list) and co:
        out["co_handlers"] = [str(c) for c in co]
    tasks = data.get("tasks")
    if isinstance(tasks, list):
        # a split: one task per unit
        out["depts"] = sorted({str(t.get("dept")) for t in tasks if isinstance(t, dict)})
    return out


def may_see(who: Principal, event: Mapping[str, Any]) -> bool:
    """Department staff see events of their department's cases; the command centre,
    supervisors and grid heads those of their territory: the rule of the services' reads."""
    depts = {event.get("dept"), *event.get("co_handlers", ()), *event.get("depts", ())}
    return access.may_read(
        who,
        READERS,
        cell_code=event.get("cell_code") or event.get("community_code"),
        depts=depts,
        departments=True,
    )


@dataclass(eq=False)
class Listener:
    who: Principal
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(1000))
    dropped: int = 0


class EventHub:
    """Fan-out of case events to the open streams. A slow browser loses events (it is told
    so and reloads its view) rather than holding the others back."""

    def __init__(self, remember: int = REMEMBER_IDS, window_s: float = DUPLICATE_WINDOW_S) -> None:
        self._listeners: set[Listener] = set()
        self.closed = asyncio.Event()
        self._seen: OrderedDict[str, float] = OrderedDict()  # event id -> when first heard
        self._remember = remember
        self._window_s = window_s
        self.copies = 0  # events heard again and dropped

    def first_time(self, event_id: str | None) -> bool:
        """True the first time an event id is heard (within the window); an event without an
        id is always new."""
        if not event_id:
            return True
        if event_id in self._seen:
            self.copies += 1
            return False
        now = time.monotonic()
        self._seen[event_id] = now
        while self._seen and (
            len(self._seen) > self._remember
            or next(iter(self._seen.values())) < now - self._window_s
        ):
            self._seen.popitem(last=False)
        return True

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def publish(self, event: dict[str, Any]) -> int:
        delivered = 0
        for listener in list(self._listeners):
            if not may_see(listener.who, event):
                continue
            try:
                listener.queue.put_nowait(event)
                delivered += 1
            except asyncio.QueueFull:
                listener.dropped += 1
        return delivered

    def deliver(self, subject: str, headers: Mapping[str, str] | None, body: bytes) -> int:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            log.warning("undecodable case event", subject=subject)
            return 0
        if not isinstance(data, dict):
            return 0
        event = summarise(subject, headers, data)
        if not self.first_time(event["id"]):
            return 0
        return self.publish(event)

    @contextlib.contextmanager
    def listen(self, who: Principal) -> Any:
        listener = Listener(who)
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    async def stream(self, who: Principal, keepalive_s: float) -> AsyncIterator[bytes]:
        """The text/event-stream of one browser: `event: case` lines with the summary as
        JSON, a comment line as keep-alive, `event: gap` after lost events."""
        with self.listen(who) as listener:
            yield b"retry: 2000\n: connected\n\n"
            while not self.closed.is_set():
                getter = asyncio.ensure_future(listener.queue.get())
                closer = asyncio.ensure_future(self.closed.wait())
                done, _ = await asyncio.wait(
                    {getter, closer}, timeout=keepalive_s, return_when=asyncio.FIRST_COMPLETED
                )
                closer.cancel()
                if getter not in done:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                    if not self.closed.is_set():
                        yield b": keep-alive\n\n"
                    continue
                event = getter.result()
                if listener.dropped:
                    listener.dropped = 0
                    yield b"event: gap\ndata: {}\n\n"
                yield b"event: case\ndata: " + orjson.dumps(event) + b"\n\n"
