"""The handler table and the batch unit of work over pure per-case rules.

A service declares, in one `Rules` table, what it handles — event types, timer kinds and
command types — and the pure rule for each:

    rule(state, message, step) -> None

`state` is this service's state of one case (its own aggregate, loaded by the service's
`CaseStore`); the rule changes it in memory, `step.emit`s the events it causes and asks for
timers with `step.schedule` / `step.cancel`. A rule does no I/O: it is unit-tested with a
state, a message and a `Step`.

The runtime does the rest, a batch at a time (`apply_batch`): claim the messages' ids in the
inbox, load the state of every case the batch touches (the store's `load`: one statement per
table, `= ANY($1)`), apply the messages in stream order, then write the changed states (the
store's `save`, set-based), the outbox rows and the timer changes, and commit once. The
subscriptions and the parsing come from the table; a message whose data breaks its contract
is `Permanent` (dead-lettered at once), and a batch that fails is retried one message per
transaction (consumer.py), so one poisoned message holds back nobody.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import structlog
from gridloop_contracts import Envelope
from gridloop_contracts.base import Event
from gridloop_contracts.problems import Permanent
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from . import audit, metrics, tracing
from .clock import Clock
from .commands import run_command
from .db import Conn
from .outbox import Committed, UnitOfWorkFactory, Work, write_all
from .step import Step, Timer
from .writes import Writes

S = TypeVar("S")

log = structlog.get_logger(__name__)

EventRule = Callable[[S, Any, Step], None]
TimerRule = Callable[[S, Timer, Step], None]


class CaseStore(Protocol[S]):
    """A service's state of its cases: loaded and saved a batch at a time."""

    async def load(self, conn: Conn, case_ids: Sequence[str]) -> dict[str, S]:
        """The state of each case, with one statement per table (`= ANY($1)`), locked for
        this transaction (`FOR UPDATE`); a case not seen yet gets a fresh state."""
        ...

    async def save(self, conn: Conn, states: Sequence[S], writes: Writes | None = None) -> None:
        """Write what changed in these states back, set-based (`unnest`/`COPY`). With
        `writes`, the writes may be gathered there instead, to go with the unit of work's
        timers and outbox rows in one statement (writes.py); without, they are done here."""
        ...


@dataclass
class Rules(Generic[S]):
    """The handler table of a service: what it handles and the rule for each."""

    store: CaseStore[S]
    # event model → rule(state, event, step); the consumer's subjects are derived from it
    events: Mapping[type[Event], EventRule[S]] = field(default_factory=dict)
    # timer kind → rule(state, timer, step)
    timers: Mapping[str, TimerRule[S]] = field(default_factory=dict)
    # which case a timer belongs to (by default: its key up to the first '/')
    timer_case: Callable[[Timer], str] = field(default=lambda t: t.key.split("/", 1)[0])

    def __post_init__(self) -> None:
        self._by_type = {m.type_name: (m, r) for m, r in self.events.items()}

    @property
    def subjects(self) -> list[str]:
        """The CASES subjects this table consumes (only these reach the service)."""
        return subjects_of(self.events)

    def parse(self, env: Envelope) -> tuple[Event, EventRule[S]] | None:
        """The event's data as its contract model and its rule; None for a type not in the
        table (ignored). Data that breaks the contract can never succeed: `Permanent`."""
        found = self._by_type.get(env.type)
        if found is None:
            return None
        model, rule = found
        try:
            return model.model_validate(env.data), rule
        except ValidationError as exc:
            raise Permanent(f"{env.type} {env.id}: {exc}") from exc

    @staticmethod
    def case_of(env: Envelope, event: Event) -> str:
        case_id = getattr(event, "case_id", None) or env.subject
        if not case_id:
            raise Permanent(f"{env.type} {env.id}: no case id")
        return str(case_id)


def subjects_of(models: Iterable[type[Event]]) -> list[str]:
    """The CASES subjects these events come on."""
    return sorted({f"case.{m.subject_token}" for m in models})


@dataclass
class Inbound:
    """One message of a batch, decoded: its envelope, the NATS subject it came on."""

    env: Envelope
    subject: str | None = None
    headers: Mapping[str, str] | None = None


async def apply_batch(
    conn: Conn,
    rules: Rules[S],
    messages: Sequence[Inbound],
    *,
    source: str,
    clock: Clock,
) -> list[Committed]:
    """Apply a batch of messages (already claimed in the inbox) in one open transaction:
    load the states they touch, apply in order, save, write outbox rows and timer changes.
    Returns the outbox rows written, for the publisher once the transaction commits."""
    parsed: list[tuple[Inbound, Event, EventRule[S], str]] = []
    for m in messages:
        if m.env.source == source:
            # The service's own event, back on CASES because it also takes that type from
            # others: its rule ran when it emitted it; nothing is loaded for it.
            continue
        found = rules.parse(m.env)
        if found is None:
            continue
        event, rule = found
        parsed.append((m, event, rule, rules.case_of(m.env, event)))
    if not parsed:
        return []
    states = await rules.store.load(conn, list(dict.fromkeys(p[3] for p in parsed)))
    step = Step(source=source, clock=clock)
    for m, event, rule, case_id in parsed:
        step.trigger, step.subject = m.env, m.subject
        # The rule's span continues the trace the message came with: the events it emits
        # name it as their parent, so one report is one trace through every service.
        with tracing.continued(
            m.headers,
            f"consume {m.subject}",
            kind=SpanKind.CONSUMER,
            attributes={tracing.CASE_ID: case_id, tracing.EVENT_TYPE: m.env.type},
        ):
            rule(states[case_id], event, step)
    writes = Writes()
    await rules.store.save(conn, list(states.values()), writes)
    return await write_all(conn, step.take_timer_ops(), step.take_rows(), writes)


async def apply_timers(
    conn: Conn,
    rules: Rules[S],
    fired: Sequence[Timer],
    *,
    source: str,
    clock: Clock,
) -> list[Committed]:
    """Fire a batch of claimed timers in one open transaction: mark them fired, load the
    states they touch, apply each timer's rule, save, write. A rule may set its own timer
    again (the next step of a ladder): that re-arms the row just marked fired."""
    if not fired:
        return []
    await conn.execute(
        "UPDATE timers SET fired_at = $2 WHERE id = ANY($1::bigint[])",
        [t.id for t in fired],
        clock.now(),
    )
    keyed = [(t, rules.timer_case(t)) for t in fired]
    states = await rules.store.load(conn, list(dict.fromkeys(k for _, k in keyed)))
    step = Step(source=source, clock=clock)
    for t, case_id in keyed:
        step.trigger = None
        with tracing.timer_span(t.kind, t.payload, case_id):
            rules.timers[t.kind](states[case_id], t, step)
    writes = Writes()
    await rules.store.save(conn, list(states.values()), writes)
    return await write_all(conn, step.take_timer_ops(), step.take_rows(), writes)


CommandRule = Callable[[S, Step], dict[str, Any]]


async def run_case_command(
    uow: UnitOfWorkFactory,
    store: CaseStore[S],
    case_id: str,
    rule: CommandRule[S],
    *,
    command_id: str | None,
    kind: str,
    task_id: str | None = None,
) -> dict[str, Any]:
    """A command on one case in the same shape as the events: load the case's state (the
    store), apply the pure rule (it may raise `Refusal`), save, and write what the step
    collected, in one transaction; idempotent and audited as `run_command`. The rule
    returns the answer."""

    async def apply(work: Work) -> dict[str, Any]:
        states = await store.load(work.conn, [case_id])
        answer = rule(states[case_id], work)
        await store.save(work.conn, [states[case_id]], work.writes)
        return answer

    return await run_command(uow, command_id, kind, apply, case_id=case_id, task_id=task_id)


@dataclass(eq=False)
class _Waiting(Generic[S]):
    """A command waiting for its group: its rule, and the context of its request (the
    caller, the trace) that the rule and its audit entry run in."""

    case_id: str
    rule: CommandRule[S]
    command_id: str | None
    kind: str
    task_id: str | None
    context: contextvars.Context
    answer: asyncio.Future[dict[str, Any]]


class CaseCommands(Generic[S]):
    """Commands on one case each (`run_case_command`'s shape) that arrive while others are
    waiting: up to `limit` of them, on distinct cases, share one transaction (a group
    commit) — one load of their cases, their rules in order of arrival, one save, their
    answers and audit entries, one commit. A command that arrives while no group is being
    written runs at once, alone, as `run_case_command` runs it (so does one without a
    `command_id`); those that arrive while one is being written wait for its commit and go
    together in the next. A command its rule
    refuses, and every command of a group undone as a whole (another transaction stored the
    answer of one of its ids first, a conflict), runs again alone: refusals and resends are
    answered and audited as they always were. Each rule and audit entry runs in the context
    of its own request. A second command on a case waits for the next group."""

    def __init__(self, uow: UnitOfWorkFactory, store: CaseStore[S], *, limit: int = 32) -> None:
        self.uow = uow
        self.store = store
        self.limit = limit
        self.groups = 0  # groups committed, and the commands in them (for tests, metrics)
        self.grouped = 0
        self._waiting: list[_Waiting[S]] = []
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(
        self,
        case_id: str,
        rule: CommandRule[S],
        *,
        command_id: str | None,
        kind: str,
        task_id: str | None = None,
    ) -> dict[str, Any]:
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        w = _Waiting(case_id, rule, command_id, kind, task_id, contextvars.copy_context(), answer)
        if self.limit <= 1 or not command_id:
            return await self._run_alone(w)
        # an answer nobody waits for any more (the caller went away) is not an error to log
        answer.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append(w)
        if self._worker is None or self._worker.done():
            # in a context of its own: not the request's that happened to start it (its
            # log fields, its trace), each rule runs in its own request's
            self._worker = asyncio.create_task(self._work(), context=contextvars.Context())
        # the command runs to its end even when the caller goes away: its id answers a resend
        return await asyncio.shield(answer)

    async def _work(self) -> None:
        while self._waiting:
            group: list[_Waiting[S]] = []
            later: list[_Waiting[S]] = []
            cases: set[str] = set()
            for w in self._waiting:
                if len(group) < self.limit and w.case_id not in cases:
                    group.append(w)
                    cases.add(w.case_id)
                else:
                    later.append(w)
            self._waiting = later
            if len(group) == 1:
                self._alone(group[0])
                continue
            answers: dict[int, dict[str, Any]] = {}
            try:
                answers = await self._together(group)
            except Exception as exc:
                log.info("command group undone, its commands run alone", error=repr(exc))
            finally:
                for w in group:
                    if id(w) in answers:
                        if not w.answer.done():
                            w.answer.set_result(answers[id(w)])
                    else:
                        self._alone(w)

    async def _together(self, group: list[_Waiting[S]]) -> dict[int, dict[str, Any]]:
        done: list[tuple[_Waiting[S], dict[str, Any]]] = []
        answered: list[tuple[str, str, Any, tuple[Any, ...]]] = []
        async with self.uow(generic_plans=True) as work:
            states = await self.store.load(work.conn, [w.case_id for w in group])
            for w in group:
                assert w.command_id is not None  # only commands with an id wait for a group
                mark = work.mark()
                try:
                    answer = w.context.run(w.rule, states[w.case_id], work)
                    entry = w.context.run(
                        audit.answered_entry,
                        work,
                        w.kind,
                        w.command_id,
                        case_id=w.case_id,
                        task_id=w.task_id,
                    )
                except Exception:  # refused (or worse): it runs again alone, and says so
                    work.rollback_to(mark)
                    continue
                done.append((w, answer))
                answered.append((w.command_id, w.kind, to_jsonable_python(answer), entry))
            if done:
                await self.store.save(work.conn, [states[w.case_id] for w, _ in done], work.writes)
                audit.record_answers(work, answered)
        if done:
            self.groups += 1
            self.grouped += len(done)
            metrics.COMMAND_GROUPS.labels(self.uow.schema).inc()
            metrics.GROUPED_COMMANDS.labels(self.uow.schema).inc(len(done))
        return {id(w): a for w, a in done}

    async def _run_alone(self, w: _Waiting[S]) -> dict[str, Any]:
        return await run_case_command(
            self.uow,
            self.store,
            w.case_id,
            w.rule,
            command_id=w.command_id,
            kind=w.kind,
            task_id=w.task_id,
        )

    def _alone(self, w: _Waiting[S]) -> None:
        async def alone() -> None:
            try:
                answer = await self._run_alone(w)
            except asyncio.CancelledError:
                w.answer.cancel()
                raise
            except Exception as exc:
                if not w.answer.done():
                    w.answer.set_exception(exc)
            else:
                if not w.answer.done():
                    w.answer.set_result(answer)

        task = asyncio.create_task(alone(), context=w.context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
