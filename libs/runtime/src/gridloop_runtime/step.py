"""What a rule works with besides its state: the clock, the triggering event, the events it
emits and the timer changes it asks for. No database, no bus, no web framework: pure rules
and their unit tests import this alone; the unit of work writes what a step collected."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gridloop_contracts import Envelope, Event, to_binary
from gridloop_contracts.base import Timestamp

from . import tracing
from .clock import Clock

OutboxRow = tuple[str, str, dict[str, str], bytes]


@dataclass(frozen=True)
class Timer:
    """A fired timer row, as a timer rule gets it."""

    id: int
    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any]


def default_subject(event: Event) -> str:
    """`gridloop.<noun>.<verb>.vN` → `<noun>.<verb>` for nouns whose subject needs no code."""
    parts = event.type_name.split(".")
    if len(parts) == 4 and parts[1] in ("case", "score"):
        return f"{parts[1]}.{event.subject_token or parts[2]}"
    raise ValueError(f"{event.type_name} needs an explicit subject")


class Step:
    """What a rule gets besides the state it changes: the clock, the triggering event and its
    subject, `emit` for the events it causes and the timer changes it asks for. Nothing here
    touches the database or the bus: the unit of work writes it all once the rule returns."""

    def __init__(
        self,
        *,
        source: str,
        clock: Clock,
        trigger: Envelope | None = None,
        subject: str | None = None,
    ) -> None:
        self.source = source
        self.clock = clock
        self.trigger = trigger
        # The NATS subject the triggering message came on (consumers only): for streams
        # whose subject carries meaning, such as intake.<channel>.<source>.
        self.subject = subject
        self._pending: list[tuple[str, Envelope]] = []
        self.timer_ops: list[TimerOp] = []
        # The W3C trace headers the events emitted carry, where the step's work runs under
        # a span that is not the current one (a batch handler's message); None: the current.
        self.trace: dict[str, str] | None = None

    def now(self) -> datetime:
        return self.clock.now()

    def emit(
        self,
        event: Event,
        *,
        subject: str | None = None,
        case_id: str | None = None,
        id: str | None = None,
        time: Timestamp | None = None,
    ) -> Envelope:
        """Record an outgoing event; it is published only if this transaction commits."""
        env = self.envelope(event, case_id=case_id, id=id, time=time)
        self._pending.append((subject or default_subject(event), env))
        return env

    def envelope(
        self,
        event: Event,
        *,
        case_id: str | None = None,
        id: str | None = None,
        time: Timestamp | None = None,
    ) -> Envelope:
        """An event in the envelope `emit` would give it, not recorded for the outbox (an
        answer that goes to a reply subject only)."""
        ce_subject = case_id if case_id is not None else getattr(event, "case_id", None)
        return Envelope.of(
            event,
            source=self.source,
            subject=ce_subject,
            id=id,
            time=time or self.clock.now(),
            extensions=self.trace if self.trace is not None else tracing.current_headers(),
        )

    def emit_envelope(self, subject: str, env: Envelope) -> None:
        self._pending.append((subject, env))

    # -- timers: applied set-based by the unit of work, in the order asked -------------
    def schedule(
        self, kind: str, key: str, due_at: datetime, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Set (or move, or re-arm) the timer (kind, key). It keeps the trace of this step's
        work, which what it causes when it fires continues (tracing.TIMER_TRACE)."""
        kept = dict(payload or {})
        trace = self.trace if self.trace is not None else tracing.current_headers()
        if trace:
            kept[tracing.TIMER_TRACE] = dict(trace)
        self.timer_ops.append(TimerOp("set", kind, key, due_at, kept))

    def cancel(self, key: str, kinds: Sequence[str] | None = None) -> None:
        """Cancel the pending timers with exactly this key (of these kinds, or any kind)."""
        for kind in kinds or (None,):
            self.timer_ops.append(TimerOp("cancel", kind, key))

    def mark(self) -> tuple[int, int]:
        """A point to roll the pending events and timer changes back to."""
        return len(self._pending), len(self.timer_ops)

    def rollback_to(self, mark: tuple[int, int]) -> None:
        del self._pending[mark[0] :]
        del self.timer_ops[mark[1] :]

    @property
    def pending(self) -> list[tuple[str, Envelope]]:
        return list(self._pending)

    def take_rows(self) -> list[OutboxRow]:
        """The pending events as outbox rows, handed over (a batch writes the rows of all its
        messages with one statement)."""
        rows = []
        for subject, env in self._pending:
            headers, body = to_binary(env)
            rows.append((env.id, subject, headers, body))
        self._pending.clear()
        return rows

    def take_timer_ops(self) -> list[TimerOp]:
        ops, self.timer_ops = self.timer_ops, []
        return ops


@dataclass(frozen=True)
class TimerOp:
    """One timer change a rule asked for: set (kind, key, due_at, payload) or cancel a key;
    `kind` None in a cancel means every kind."""

    op: str
    kind: str | None
    key: str
    due_at: datetime | None = None
    payload: dict[str, Any] = field(default_factory=dict)


TimerKey = tuple[str | None, str]


def plan_timer_ops(ops: Sequence[TimerOp]) -> tuple[list[TimerKey], list[TimerOp]]:
    """Timer changes asked in order, as two set-based steps with the same effect: the cancels
    (applied first), then the last setting of each (kind, key) that no later cancel undid
    (applied after, so it re-arms a row cancelled before it)."""
    sets: dict[tuple[str, str], TimerOp] = {}
    cancels: list[TimerKey] = []
    for op in ops:
        if op.op == "set":
            assert op.kind is not None
            sets.pop((op.kind, op.key), None)  # the last setting counts, in its order
            sets[(op.kind, op.key)] = op
        else:
            cancels.append((op.kind, op.key))
            for k in [k for k in sets if k[1] == op.key and op.kind in (None, k[0])]:
                del sets[k]
    return cancels, list(sets.values())
